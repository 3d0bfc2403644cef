"""``GET /_sim/state`` exports and ``PUT /_sim/state`` imports a versioned JSON snapshot
(format and rules in :mod:`citcon_sim.persistence.snapshot`), so a test suite can start
from a fixture:

    curl -s 'http://127.0.0.1:8080/_sim/state?pretty=yes' > fixture.json
    curl -s -X PUT --data-binary @fixture.json http://127.0.0.1:8080/_sim/state

An import replaces the whole state (like a reset, then a load); a snapshot that cannot be
used is a 400 and changes nothing.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import AsyncIterator
from typing import IO

from aiohttp import web
from aiohttp.payload import AsyncIterablePayload

from citcon_sim.domain.errors import BadRequest, PayloadTooLarge, StateError, Unavailable
from citcon_sim.faces.http import SIM, json_response
from citcon_sim.faces.routes import JSON, Reply, Route, RouteTable
from citcon_sim.web import schemas as S

# A snapshot is far larger than any merchant request: it gets its own, larger limit.
MAX_SNAPSHOT_BYTES = 512 * 1024 * 1024
_SPOOL_IN_MEMORY = 1 << 20  # an export larger than this spools to disk
_CHUNK = 1 << 16


async def export_state(request: web.Request) -> web.Response:
    """The snapshot, streamed: encoded piece by piece into a spool (memory up to
    ``_SPOOL_IN_MEMORY``, then an unlinked temporary file), then sent from there in
    chunks. Encoding into the spool, not the socket, keeps the document one instant's
    state: a write to the socket awaits, and other requests would change the state
    half-way through it. Memory stays about one transaction's encoding."""
    from citcon_sim.persistence.state import write_snapshot  # on use: not needed to start

    pretty = request.query.get("pretty", "").lower() in ("1", "yes", "true")
    spool = tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY)  # noqa: SIM115
    try:
        write_snapshot(request.app[SIM], spool.write, pretty=pretty)
    except OSError as exc:  # no room for the spool
        spool.close()
        raise Unavailable(f"state: cannot export ({exc.strerror or exc})") from None
    except BaseException:
        spool.close()
        raise
    spool.seek(0)
    # A plain Response (not prepared here): the middlewares still add their headers.
    return web.Response(body=AsyncIterablePayload(_chunks(spool)),
                        content_type="application/json", charset="utf-8")


async def _chunks(spool: IO[bytes]) -> AsyncIterator[bytes]:
    try:
        while chunk := spool.read(_CHUNK):
            yield chunk
    finally:
        spool.close()


async def import_state(request: web.Request) -> web.Response:
    sim = request.app[SIM]
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(1 << 16):
        size += len(chunk)
        if size > MAX_SNAPSHOT_BYTES:
            raise PayloadTooLarge(f"a snapshot is limited to {MAX_SNAPSHOT_BYTES} bytes")
        chunks.append(chunk)
    try:
        data = json.loads(b"".join(chunks))
    except (ValueError, RecursionError):
        raise BadRequest("state: the body is not valid JSON") from None
    try:
        from citcon_sim.persistence.state import restore

        summary = restore(sim, data)
    except StateError as exc:
        raise BadRequest(f"state: {exc}") from None
    return json_response({"restored": True, **summary})


_SNAPSHOT_PARTS = {"format": {"const": "citcon-sim-state"}, "version": S.INT,
                   "clock": {"type": "object"}, "merchants": {"type": "object"}}
_SNAPSHOT_LISTS = {"transactions": {"type": "array", "items": {"type": "object"}},
                   "ipn": {"type": "array", "items": {"type": "object"}}}

# On the /_sim sub-application.
ROUTES = RouteTable([
    Route("GET", "/state", export_state, "exportState",
          "The whole state as a versioned JSON snapshot",
          {200: Reply("Merchants (tokens in clear), transactions, IPNs, clock, ids.", {
              JSON: S.obj({**_SNAPSHOT_PARTS, "ids": {"type": "object"},
                           **_SNAPSHOT_LISTS})})},
          parameters=(S.query("pretty", {"enum": ["yes", "no"]}, "Indented JSON."),)),
    Route("PUT", "/state", import_state, "importState",
          "Replace the whole state with a snapshot",
          {200: Reply("Restored: what was loaded.", {JSON: S.obj({
              "restored": {"const": True}, "transactions": S.INT, "refunds": S.INT,
              "merchants": S.INT, "notifications": S.INT,
              "clock": {"type": "string", "format": "date-time"}})})},
          description="A snapshot from `GET /_sim/state`, or a hand-written fixture (most "
          "fields optional). A snapshot that cannot be used changes nothing.",
          errors=(400, 413), body={"type": "object", "properties": {
              **_SNAPSHOT_PARTS, **_SNAPSHOT_LISTS}},
          body_types=(JSON,)),
], prefix="/_sim", tags=("control",), security=S.ADMIN, replies={401: S.ADMIN_REQUIRED})
