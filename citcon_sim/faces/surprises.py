"""Surprises a scenario can script around an API call (docs/scenarios.md, "Surprises"):
what the layers in front of a real gateway do to a merchant, and the notification that
beats the answer. The middleware applies them; every call they touch is tagged in the
journal (``surprise``).

Citcon's hosts sit behind a CDN (Cloudflare): a rate limit answers 429 with
``Retry-After``, an origin failure answers the CDN's own HTML page, not the API's JSON.
The page here is ours, in the shape such pages have (a title with the code, a short
explanation, a ray id); nothing of the API's error envelope is in it.
"""

from __future__ import annotations

import asyncio
import hashlib
import html
from typing import TYPE_CHECKING

from aiohttp import web

from citcon_sim.domain.events import IpnChanged

if TYPE_CHECKING:
    from citcon_sim.simulator import Simulator

_REASONS = {500: "Internal server error", 502: "Bad gateway", 503: "Service unavailable",
            504: "Gateway time-out", 520: "Web server is returning an unknown error",
            521: "Web server is down", 522: "Connection timed out",
            523: "Origin is unreachable", 524: "A timeout occurred"}


def rate_limited(seconds: int) -> web.Response:
    """429 with ``Retry-After``, as a rate limiter in front of the API answers it."""
    return web.Response(status=429, text="429 Too Many Requests\n",
                        headers={"Retry-After": str(seconds)})


def cdn_error_page(status: int, request: web.Request, at: float) -> web.Response:
    """The CDN's HTML error page for an origin failure (a 5xx); nothing reached the API."""
    reason = _REASONS.get(status, "Origin error")
    # A ray id like the CDN's: 16 hex digits, here derived from the call (deterministic).
    ray = hashlib.sha256(f"{request.path}|{at!r}".encode()).hexdigest()[:16]
    host = html.escape(request.host)
    page = (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{host} | {status}: {reason}</title></head>\n<body>"
        f"<h1>Error {status}</h1><h2>{reason}</h2>"
        f"<p>The web server behind {host} did not give the CDN a valid answer. "
        "Please try again in a few minutes.</p>"
        f"<p>Ray ID: <code>{ray}</code></p></body></html>\n"
    )
    return web.Response(status=status, text=page, content_type="text/html",
                        headers={"Server": "cloudflare", "CF-RAY": f"{ray}-SIM"})


def truncated(response: web.StreamResponse) -> web.StreamResponse:
    """The same answer with its body cut to half (at least one byte gone): the client
    reads a complete HTTP message whose JSON (or text) is broken. The work is done."""
    if not isinstance(response, web.Response) or not isinstance(response.body, bytes):
        return response
    body = response.body
    cut = web.Response(status=response.status, body=body[:max(0, len(body) // 2)],
                       headers={k: v for k, v in response.headers.items()
                                if k.lower() != "content-length"})
    return cut


async def ipn_first(sim: Simulator, txn_id: str | None) -> None:
    """Wait until the first delivery attempt of ``txn_id``'s notification has ended (so
    the merchant's endpoint hears of the payment before its API call is answered),
    bounded by one IPN timeout and a second. No notification due: no wait."""
    if txn_id is None:
        return
    notifications = sim.ipn.for_transaction(txn_id)
    if not notifications or not notifications[0].url:
        return
    if notifications[0].attempts:
        return
    done = asyncio.Event()

    def attempted(event: IpnChanged) -> None:
        if event.kind == "attempted" and event.notification.transaction_id == txn_id:
            done.set()
    unsubscribe = sim.events.subscribe(IpnChanged, attempted)
    try:
        await asyncio.wait_for(done.wait(), sim.config.ipn_timeout + 1)
    except TimeoutError:
        pass  # answer anyway: the client must not wait for ever on our account
    finally:
        unsubscribe()
