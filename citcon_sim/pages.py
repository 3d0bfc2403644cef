"""Consumer-facing pages: the simulated wallet a QR code or pay URL leads to."""

from __future__ import annotations

import jinja2
from aiohttp import web

from .errors import CitconError
from .http_util import SIM, read_params
from .ledger import Status

_env = jinja2.Environment(
    loader=jinja2.PackageLoader("citcon_sim", "templates"),
    autoescape=True,
    enable_async=False,
)


def render(name: str, status: int = 200, **context: object) -> web.Response:
    html = _env.get_template(name).render(**context)
    return web.Response(text=html, content_type="text/html", status=status)


async def landing(request: web.Request) -> web.Response:
    sim = request.app[SIM]
    txn = sim.ledger.by_id.get(request.query.get("q", "").strip())
    if txn is None:
        return render("not_found.html", status=404)
    sim.ledger.refresh(txn)
    return render("wallet.html", txn=txn, sim=sim, Status=Status,
                  expires=sim.clock.format(txn.expires_at))


async def consumer_action(request: web.Request) -> web.StreamResponse:
    sim = request.app[SIM]
    txn_id, action = request.match_info["id"], request.match_info["action"]
    await read_params(request)
    ledger = sim.ledger
    try:
        if action == "pay":
            txn = ledger.consumer_pay(txn_id)
        elif action == "fail":
            txn = ledger.consumer_fail(txn_id)
        else:
            txn = ledger.consumer_cancel(txn_id)
    except CitconError:
        # A second click (double submission) lands on the final state, never pays twice.
        raise web.HTTPSeeOther(f"/u_landing?q={txn_id}") from None
    target = {
        Status.SUCCESS: txn.callback_url_success,
        Status.AUTHORIZED: txn.callback_url_success,
        Status.FAILED: txn.callback_url_fail,
        Status.CANCELLED: txn.callback_url_cancel or txn.callback_url_fail,
    }.get(txn.status)
    raise web.HTTPSeeOther(target or f"/u_landing?q={txn.id}")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/u_landing", landing)
    app.router.add_post(r"/u_landing/{id}/{action:pay|fail|cancel}", consumer_action)
