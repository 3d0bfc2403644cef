"""The baseline: a bare aiohttp app with one form-parsing hello handler.

Every simulator row is compared with this server, run the same way in the same
benchmark run (same interpreter, same pinned core, same load generator). It is also the
"minimal aiohttp app" of the start-up comparison, so it must stay minimal.
"""

from __future__ import annotations

import argparse

from aiohttp import web


async def hello(request: web.Request) -> web.Response:
    form = await request.post()  # a small urlencoded form, as the merchant API receives
    reference = form.get("reference", "world")
    return web.Response(text=f"hello {reference}\n")


def make_app() -> web.Application:
    app = web.Application()
    app.router.add_route("*", "/hello", hello)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    web.run_app(make_app(), host=args.host, port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
