"""The OpenAPI 3.1 description of everything the simulator serves, at ``GET /openapi.json``.

Generated from the route tables that also register the routes (``faces.routes``): the
merchant API (``faces.online.routes``), the control surface (``web.control``,
``web.state_routes``, ``web.dashboard``), the consumer pages (``web.pages``) and this
document's own route. The document is built once; each request gets a copy whose
``servers`` entry is the simulator's own base URL, so a client generator, Swagger UI or a
schema fuzzer pointed at ``/openapi.json`` talks to the right host.
"""

from __future__ import annotations

import copy
from functools import cache
from typing import Any

from aiohttp import web

from citcon_sim._version import __version__
from citcon_sim.faces import FACES
from citcon_sim.faces.http import SIM, json_response
from citcon_sim.faces.models import ErrorEnvelope
from citcon_sim.faces.routes import JSON, Reply, Route, RouteTable, Schemas
from citcon_sim.web import control, dashboard, pages, state_routes
from citcon_sim.web import schemas as S

OPENAPI_VERSION = "3.1.0"


async def serve(request: web.Request) -> web.Response:
    sim = request.app[SIM]
    return json_response(document(sim.base_url(request.host)))


ROUTES = RouteTable([
    Route("GET", "/openapi.json", serve, "openapi", "This document",
          {200: Reply("OpenAPI 3.1.", {JSON: {"type": "object", "required": ["openapi"]}})}),
], tags=("control",))


def tables() -> list[RouteTable]:
    """Every route table of the application ``create_app`` builds."""
    return [*(face.routes for face in FACES), control.ROUTES, state_routes.ROUTES,
            dashboard.ROUTES, pages.ROUTES, ROUTES]


@cache
def _static() -> dict[str, Any]:
    every = tables()
    schemas = Schemas([ErrorEnvelope, *(tp for table in every for tp in table.types())])
    paths: dict[str, dict[str, Any]] = {}
    for table in every:
        for path, item in table.openapi_paths(schemas).items():
            paths.setdefault(path, {}).update(item)
    for path, item in paths.items():
        for op in item.values():  # any request line or header can be too long for the parser
            op["responses"].setdefault("400", {"$ref": "#/components/responses/BadRequest"})
            if "requestBody" in op:  # a body slower than --body-timeout
                op["responses"].setdefault("408", {"$ref": "#/components/responses/RequestTimeout"})
            if path.startswith("/_sim") and path != "/_sim/health":  # web/security.py
                op["responses"].setdefault("403", {"$ref": "#/components/responses/Forbidden"})
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "citcon-sim",
            "version": __version__,
            "summary": "A local simulator of Citcon's merchant APIs (Online API, CHOP, UPI "
            "v1) over one ledger, with its control surface.",
            "description": "Merchant API (`/payment/*`): form-urlencoded bodies as Citcon "
            "documents them (the same parameters in a GET query string or as a JSON object "
            "work too); values are trimmed and empty values count as absent; unknown "
            "parameters are ignored. Errors answer the envelope "
            '`{"result":"fail","code":…,"message":…}`: HTTP 400 for 41xx, 401 without a '
            "token, 404 for an unknown path, 405 (with `Allow`) for a method a path does "
            "not list, 413 for a body over the limit, 500 for 4000. Control surface "
            "(`/_sim/*`, form or JSON bodies, JSON answers) and consumer pages "
            "(`/u_landing`) need no token.",
            "license": {"name": "MIT", "identifier": "MIT"},
        },
        "tags": [
            {"name": "merchant", "description": "Citcon's Online API (`/payment/*`) and CHOP "
             "(`/chop/*`), as simulated."},
            {"name": "control", "description": "Drive the simulator from tests, QA, demos."},
            {"name": "pages", "description": "What the consumer's browser sees."},
            {"name": "upi", "description": "Citcon's UPI v1 (`/v1/*`): JSON bodies, access "
             "tokens (`Authorization: Bearer <access_token>`), answers and errors in the "
             "`citcon_upi` envelope (docs/upi.md)."},
        ],
        "paths": paths,
        "components": {
            "schemas": {**schemas.components, **S.components()},
            "responses": S.RESPONSES,
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http", "scheme": "bearer",
                    "description": "The merchant token: `Authorization: Bearer <token>`. The "
                    "bare form `Authorization: <token>` is accepted too, as production does; "
                    "other schemes (`Basic …`) are refused with a 401. "
                    "Any non-empty token is its own merchant unless a merchants file lists "
                    "them.",
                },
                "adminBearer": {"type": "http", "scheme": "bearer",
                                "description": "The --admin-token, when one is set."},
                "adminHeader": {"type": "apiKey", "in": "header", "name": "X-Admin-Token"},
                "adminQuery": {"type": "apiKey", "in": "query", "name": "admin_token",
                               "description": "For a browser; also sets the cookie."},
                "adminCookie": {"type": "apiKey", "in": "cookie", "name": "citcon_sim_admin"},
            },
        },
    }


def document(base_url: str) -> dict[str, Any]:
    """The OpenAPI document, with ``base_url`` as its one server."""
    doc = copy.deepcopy(_static())
    doc["servers"] = [{"url": base_url.rstrip("/") or "/", "description": "This simulator."}]
    return doc
