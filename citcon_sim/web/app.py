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

from citcon_sim.domain.errors import (
    BadRequest,
    CitconError,
    NotFound,
    PayloadTooLarge,
    UnknownError,
)
from citcon_sim.domain.events import EarliestJobChanged
from citcon_sim.faces.http import SIM, envelope, json_response
from citcon_sim.faces.middleware import merchant_api
from citcon_sim.faces.online import handlers as api
from citcon_sim.web import control, dashboard, pages, security, state_routes

if TYPE_CHECKING:
    from citcon_sim.simulator import Simulator

log = logging.getLogger("citcon_sim")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


NOSNIFF = ("X-Content-Type-Options", "nosniff")


@web.middleware
async def front(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The application's one middleware. Each aiohttp middleware layer (and the signal a
    response header would otherwise come from) costs every request a coroutine, so the
    merchant API's scenarios and journal, the admin-token guard, the error envelope and
    ``X-Content-Type-Options: nosniff`` all start here.

    Every failure becomes the Citcon error envelope; never a traceback."""
    try:
        if request.path.startswith("/payment/"):
            response = await merchant_api(request, handler)
        elif request.app[SIM].config.admin_token and security.locked(request):
            response = await security.guard(request, handler)
        else:
            response = await handler(request)
    except CitconError as exc:
        response = envelope(exc)
    except web.HTTPRequestEntityTooLarge:
        response = envelope(PayloadTooLarge("request body is larger than the limit"))
    except web.HTTPNotFound:
        response = envelope(NotFound("no such endpoint"))
    except web.HTTPMethodNotAllowed as exc:
        error = BadRequest(f"{request.method} is not allowed here")
        response = json_response(error.envelope(), status=405)
        response.headers["Allow"] = ",".join(sorted(exc.allowed_methods))
    except web.HTTPException as exc:  # redirects and the like: aiohttp sends them
        exc.headers.setdefault(*NOSNIFF)
        raise
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception as exc:
        log.exception("unexpected error on %s %s", request.method, request.path)
        request.app[SIM].record_error(exc)
        response = envelope(UnknownError())
    if not response.prepared:  # a stream (the dashboard's events) sets its own
        response.headers.setdefault(*NOSNIFF)
    return response


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


async def _openapi(request: web.Request) -> web.StreamResponse:
    from . import openapi  # builds a large document: imported when first asked for

    return await openapi.serve(request)


def create_app(sim: Simulator) -> web.Application:
    app = web.Application(
        middlewares=[front], client_max_size=sim.config.max_body_bytes
    )
    app[SIM] = sim
    api.add_routes(app)
    control.add_routes(app)
    pages.add_routes(app)
    dashboard.add_routes(app)
    state_routes.add_routes(app)  # GET/PUT /_sim/state
    app.router.add_get("/openapi.json", _openapi)
    security.setup(app)  # redaction filters on aiohttp's loggers
    app.cleanup_ctx.append(_ticker)
    app.cleanup_ctx.append(_ipn_sender)
    return app
