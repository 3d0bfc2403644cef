"""The receiver lab's gateway when it is a simulator running elsewhere (``citcon-sim
check-receiver --url``): the one a receiver in a docker-compose stack already inquires.

Each check's transaction is made there through the real merchant API of the face (with
the merchant's token; on UPI an access token from the private key), moved with the
control surface (``/_sim/transactions/{id}/pay|fail``), and the receiver's inquiries are
read from its request journal (``/_sim/requests``). The notifications are still built
and posted by the lab, with the face's own encoder run in a private, unserved simulator
(the *shadow*) over a copy of the remote transaction: the signing code is this package's.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec

from citcon_sim.config import Config
from citcon_sim.domain.clock import TIME_FORMAT
from citcon_sim.receiver_lab.checks import Check, Setup
from citcon_sim.receiver_lab.runner import (
    AMOUNT,
    CURRENCY,
    VENDOR,
    Notice,
    Order,
    encode_notice,
    lab_reference,
    shadow_payment,
)
from citcon_sim.remote.client import Remote, segment
from citcon_sim.remote.commands import Payment, create_payment
from citcon_sim.simulator import Simulator

ACTIONS = {Setup.PAID: "pay", Setup.FAILED: "fail"}  # what moves a check's transaction


@dataclass
class RemoteGateway:
    """A running simulator at ``remote.url``; the receiver is expected to use it, so not
    inquiring there is advice (``declared``)."""

    remote: Remote
    shadow: Simulator
    ipn_timeout: float
    declared: bool = True

    @property
    def base_url(self) -> str:
        return self.remote.url

    async def notice(self, token: str, face: str, check: Check) -> Notice:
        reference = lab_reference(check)
        shadow = shadow_payment(self.shadow, token, face, check, reference)
        if check.setup is Setup.NONE:  # nothing at the gateway: the shadow's fresh id
            return encode_notice(self.shadow, token, face, check, shadow,
                                 await self._now())
        created = await create_payment(self.remote, Payment(
            face, "pay_qr", VENDOR, str(AMOUNT), CURRENCY, reference, None, token))
        path = f"/_sim/transactions/{segment(str(created['transaction_id']))}"
        if check.setup in ACTIONS:
            await self.remote.call("POST", f"{path}/{ACTIONS[check.setup]}")
        view: dict[str, Any] = await self.remote.call("GET", path)
        offset = await self._offset()
        paid = view.get("paid_time")
        txn = msgspec.structs.replace(
            shadow, id=view["id"], reference=view["reference"], amount=view["amount"],
            currency=view["currency"], trans_amount=view["trans_amount"],
            trans_currency=view["trans_currency"],
            created_at=_epoch(view["created_time"], offset),
            paid_at=_epoch(paid, offset) if paid else None,
            note=None if view.get("note") in (None, "null") else view["note"])
        return encode_notice(self.shadow, token, face, check, txn,
                             paid or await self._now(), _partner_id(view))

    async def _now(self) -> str:
        clock: dict[str, Any] = await self.remote.call("GET", "/_sim/clock")
        return str(clock["time"])

    async def _offset(self) -> float:
        """Seconds to add to a time the gateway shows (in its zone, read as UTC) for the
        epoch: the gateway's clock says both at once."""
        clock: dict[str, Any] = await self.remote.call("GET", "/_sim/clock")
        return float(clock["epoch"]) - _epoch(str(clock["time"]), 0.0)

    async def journal_mark(self) -> int | None:
        # Called after the valid check's transaction was created through the merchant
        # API: an empty journal then means the gateway keeps none (--journal-size 0).
        answer = await self.remote.call("GET", "/_sim/requests", query={"limit": "1"})
        entries = answer["requests"]
        return int(entries[0]["seq"]) if entries else None

    async def inquiries(self, token: str, order: Order, since: int) -> int:
        answer = await self.remote.call("GET", "/_sim/requests", query={
            "token": token, "path": "inquire", "after": str(since), "limit": "1000"})
        return sum(1 for e in answer["requests"]
                   if e["transaction_id"] == order.transaction_id
                   or (e.get("params") or {}).get("reference") == order.reference)


def _epoch(shown: str, offset: float) -> float:
    return datetime.strptime(shown, TIME_FORMAT).replace(tzinfo=UTC).timestamp() + offset


def _partner_id(view: dict[str, Any]) -> str | None:
    """The gateway's partner id for the merchant, from the notification it recorded (and
    did not send: no ``ipn_url``) for a paid transaction; None when there is none."""
    for note in view.get("ipn") or ():
        found = (note.get("form") or {}).get("partner_id")
        if found:
            return str(found)
    return None


@contextlib.asynccontextmanager
async def remote_gateway(url: str, admin_token: str | None = None
                         ) -> AsyncIterator[RemoteGateway]:
    """The simulator at ``url`` as the lab's gateway, once it answers ``/_sim/health``
    (a :class:`~citcon_sim.remote.client.RemoteError` otherwise: one line)."""
    shadow = Simulator(Config(frozen_clock=True, journal_size=0))
    async with Remote(url, admin_token) as remote:
        await remote.call("GET", "/_sim/health")
        # Its IPN timeout (the default for each answer); the admin token, if it needs one.
        log = await remote.call("GET", "/_sim/ipn", query={"limit": "1"})
        timeout = (log.get("stats") or {}).get("timeout")
        yield RemoteGateway(remote, shadow, float(timeout) if isinstance(
            timeout, int | float) else Config().ipn_timeout)
