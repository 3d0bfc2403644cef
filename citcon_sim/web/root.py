"""``GET /``: a person who opens the simulator's address in a browser lands on the dashboard;
an API client (curl's ``*/*``, ``application/json``) still gets the JSON 404 envelope, so a
merchant whose base URL lacks ``/payment`` sees the same error as before.

The choice follows the ``Accept`` header alone: browsers name ``text/html`` when they
navigate; API clients do not. The redirect is relative (``/_sim/``, with the query string,
so ``/?admin_token=…`` reaches a locked dashboard): nothing of the request's ``Host`` goes
into it, and the dashboard applies its own Host, Origin and admin-token rules
(``web.security``). ``Vary: Accept`` keeps a cache from serving one answer for the other.
"""

from __future__ import annotations

from aiohttp import web

from citcon_sim.faces.http import error_response
from citcon_sim.faces.routes import TEXT, Reply, Route, RouteTable
from citcon_sim.web import schemas as S

DASHBOARD = "/_sim/"
_HTML_TYPES = ("text/html", "application/xhtml+xml")


def _quality(params: list[str]) -> float:
    for param in params:
        key, _, value = param.strip().partition("=")
        if key.strip().lower() == "q":
            try:
                return min(max(float(value), 0.0), 1.0)
            except ValueError:
                return 0.0  # an unreadable weight counts as "not acceptable"
    return 1.0


def wants_html(accept: str) -> bool:
    """True when ``accept`` names an HTML type explicitly and rates it at least as high as
    JSON. A wildcard alone (``*/*``, curl's default) is not a browser asking for a page."""
    html = 0.0
    json_q = 0.0  # what application/json gets, by its own entry or a wildcard's
    json_specific = -1  # how specific the entry that set it was (type/sub > type/* > */*)
    for item in accept.split(","):
        media, *params = item.split(";")
        media = media.strip().lower()
        if not media:
            continue
        q = _quality(params)
        if media in _HTML_TYPES:
            html = max(html, q)
        specific = {"application/json": 2, "application/*": 1, "*/*": 0}.get(media)
        if specific is not None and specific > json_specific:
            json_q, json_specific = q, specific
    return html > 0 and html >= json_q


async def root(request: web.Request) -> web.Response:
    if wants_html(request.headers.get("Accept", "")):
        query = request.query_string
        response = web.Response(status=302, text="302: Found", headers={
            "Location": DASHBOARD + (f"?{query}" if query else "")})
    else:
        response = error_response(request, web.HTTPNotFound())  # the usual JSON 404
    response.headers["Vary"] = "Accept"
    return response


ROUTES = RouteTable([
    Route("GET", "/", root, "root", "Browsers: to the dashboard",
          {302: Reply("`Accept` names text/html (a browser): to `/_sim/`, query string kept.",
                      {TEXT: S.STR}, headers={"Location": {"required": True, "schema": S.STR}}),
           404: "NotFound"},
          description="Not part of any Citcon API: a browser opening the simulator's "
          "address is sent to the dashboard; any other client gets the 404 envelope."),
], tags=("control",))
