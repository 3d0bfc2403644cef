"""The aiohttp application: ``create_app(simulator)`` wires routes, middleware and the
background clock ticker. No module-level state: two simulators can run side by side."""

from __future__ import annotations

import asyncio
import logging
import math
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING

from aiohttp import web

from citcon_sim.console import Console
from citcon_sim.domain.errors import BadRequest, CitconError, NotFound, PayloadTooLarge
from citcon_sim.domain.events import EarliestJobChanged
from citcon_sim.faces import FACES
from citcon_sim.faces.face import Face
from citcon_sim.faces.http import SIM, error_response
from citcon_sim.faces.middleware import merchant_api
from citcon_sim.web import control, dashboard, limits, openapi, pages, root, security, state_routes

if TYPE_CHECKING:
    from citcon_sim.simulator import Simulator

log = logging.getLogger("citcon_sim")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


_FACE_PATHS = tuple(face.routes.prefix + "/" for face in FACES)


# On every answer (an aiohttp signal would cost each response one more coroutine per
# application it passes through); a stream sets it itself before it is prepared.
NOSNIFF = ("X-Content-Type-Options", "nosniff")
_OWN_ERRORS = (web.HTTPNotFound, web.HTTPMethodNotAllowed, web.HTTPRequestEntityTooLarge)


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure becomes an error envelope, never a traceback: aiohttp's own 404, 405
    and 413 included, in the shape of the face whose prefix the path is under; a client
    that went away, quietly. (A face's sub-application middleware answers a merchant
    call's errors itself, so that its journal records them.) A body still arriving gets
    ``--body-timeout`` seconds. Every answer gets ``nosniff``."""
    failure = request.app[SIM].failure
    if failure is not None and not request.path.startswith(_FACE_PATHS):
        return error_response(request, failure)  # --state failed; faces answer their own
    deadline = limits.body_deadline(request, request.app[SIM].config.body_timeout)
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        if not isinstance(exc, _OWN_ERRORS):  # a redirect: aiohttp sends it
            exc.headers.setdefault(*NOSNIFF)
            raise
        response = _answer(request, exc)
    except Exception as exc:
        response = _answer(request, exc)
    finally:
        if deadline is not None:
            deadline.cancel()
    if deadline is not None and deadline.expired:
        response.force_close()  # what is left of the body is not worth reading
    if not response.prepared:
        response.headers.setdefault(*NOSNIFF)
    return response


def _answer(request: web.Request, exc: Exception) -> web.Response:
    face = _face_answering(request, exc)
    if face is not None:
        response = face.error(_HTTP_ERRORS[type(exc)](f"{request.method} {request.path}"))
        if isinstance(exc, web.HTTPMethodNotAllowed):
            response.headers["Allow"] = ",".join(sorted(exc.allowed_methods))
        return response
    return error_response(request, exc)


class _MethodNotAllowed(BadRequest):
    http_status = 405


# aiohttp's own answers that a face other than the Online API puts in its error shape
# (an unknown path, another method, too large a body under its prefix).
_HTTP_ERRORS: dict[type[Exception], type[CitconError]] = {
    web.HTTPNotFound: NotFound, web.HTTPMethodNotAllowed: _MethodNotAllowed,
    web.HTTPRequestEntityTooLarge: PayloadTooLarge,
}


def _face_answering(request: web.Request, exc: Exception) -> Face | None:
    if type(exc) not in _HTTP_ERRORS:
        return None
    for face in FACES:
        if face.name != "online" and request.path.startswith(face.routes.prefix + "/"):
            return face
    return None


async def _ticker(app: web.Application) -> AsyncIterator[None]:
    """In running mode, fire scheduled jobs as wall time reaches them."""
    sim = app[SIM]
    loop = asyncio.get_running_loop()
    loop_thread = threading.get_ident()
    wake = asyncio.Event()
    deadline = math.inf  # virtual time the ticker sleeps until

    def on_earlier(event: EarliestJobChanged) -> None:
        # A job due before the ticker's wake-up (an IPN retry 15 s out while it sleeps
        # 1 s is not; a 0.2 s scripted payment outcome is): wake now, so it is not late.
        if event.due < deadline and not sim.clock.frozen:
            if threading.get_ident() == loop_thread:
                wake.set()
            else:
                loop.call_soon_threadsafe(wake.set)

    async def tick() -> None:
        nonlocal deadline
        while True:
            due = sim.scheduler.next_due()
            delay = 1.0 if due is None else min(1.0, max(0.0, due - sim.clock.time()))
            deadline = sim.clock.time() + delay
            wake.clear()
            try:
                await asyncio.wait_for(wake.wait(), delay)
            except TimeoutError:
                pass
            deadline = math.inf
            if not sim.clock.frozen:
                try:
                    sim.scheduler.run_due()
                except Exception as exc:  # a bad job must not stop the clock
                    log.exception("scheduled job failed")
                    sim.record_error(exc)  # test helpers re-raise it (check_assertions)

    unsubscribe = sim.events.subscribe(EarliestJobChanged, on_earlier)
    task = asyncio.create_task(tick())
    yield
    unsubscribe()
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass


async def _ipn_sender(app: web.Application) -> AsyncIterator[None]:
    """The IPN workers and their one client session live as long as the app."""
    sender = app[SIM].ipn
    await sender.start()
    yield
    await sender.close()


async def _demo(app: web.Application) -> AsyncIterator[None]:
    """``--demo``: the generated history, once the IPN workers run (its retried IPNs go
    through them), into an empty ledger only (not again when the app restarts)."""
    sim = app[SIM]
    if sim.config.demo and not sim.ledger.by_id:
        from citcon_sim import demo  # faker: only with --demo, not at every start-up

        await demo.populate(sim)
    yield


async def _console(app: web.Application) -> AsyncIterator[None]:
    """The console (``Config.console``) while the app runs; attached after the demo, whose
    generated history is not news."""
    sim = app[SIM]
    detach = Console.of(sim.config, sim.clock.format).attach(sim.events) \
        if sim.config.console else None
    yield
    if detach is not None:
        detach()


def create_app(sim: Simulator) -> web.Application:
    """The application: the wallet pages and ``/openapi.json`` on it; the merchant API
    (``/payment/``: scenarios and journal) and the control surface (``/_sim``: the admin
    token) as sub-applications, each with its own middleware."""
    app = web.Application(middlewares=[errors], client_max_size=sim.config.max_body_bytes)
    app[SIM] = sim
    sim_app = web.Application(middlewares=[security.admin_guard])
    sim_app[SIM] = sim
    control.ROUTES.register(sim_app)
    app.on_shutdown.append(control.end_listeners)  # `citcon-sim listen` streams end first
    state_routes.ROUTES.register(sim_app)
    dashboard.add_routes(app, sim_app)
    pages.ROUTES.register(app)
    root.ROUTES.register(app)  # / : browsers to the dashboard
    openapi.ROUTES.register(app)
    for face in FACES:  # each merchant API on its own sub-application
        merchant = web.Application(middlewares=[merchant_api(face)])
        merchant[SIM] = sim
        face.routes.register(merchant)
        app.add_subapp(face.routes.prefix, merchant)
    app.add_subapp(control.ROUTES.prefix, sim_app)
    security.setup(app)  # redaction filters on aiohttp's loggers
    app.cleanup_ctx.append(_ticker)
    app.cleanup_ctx.append(_ipn_sender)
    app.cleanup_ctx.append(_demo)
    app.cleanup_ctx.append(_console)
    return app
