"""One synchronous event bus per simulator, and the events that travel on it.

Publishers (the ledger, the IPN sender, the scheduler, the simulator, the scenario book,
the merchant API middleware) call :meth:`EventBus.publish`; subscribers (the IPN sender,
scripted payment outcomes, the ``--state`` journal, the dashboard, the console, the test
helpers' waits, the app's ticker) call
:meth:`EventBus.subscribe` with an event class and a handler. Handlers run at once, in
subscription order, inside the publisher's call: they must be quick and must not await.

A handler that raises does not break the publisher (a dashboard bug must never fail a
payment): the exception is logged and published as :class:`UnexpectedError`, which the
simulator records for the test helpers to re-raise. A *critical* handler is the
exception: the ``--state`` journal's write is part of the operation (an operation whose
record could not be written must not be acknowledged), so its error propagates.

    sim.events.subscribe(TransactionChanged, lambda e: print(e.kind, e.transaction.id))
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec

if TYPE_CHECKING:
    from citcon_sim.domain.ledger import Transaction

log = logging.getLogger("citcon_sim.events")

E = TypeVar("E")
Handler = Callable[[E], None]


# -- events ----------------------------------------------------------------------------------

class TransactionChanged(msgspec.Struct, frozen=True):
    """A transaction was created or moved; ``detail`` is the Refund or Capture, if any."""

    kind: str  # created, paid, authorized, captured, failed, expired, cancelled, refunded
    transaction: Transaction
    detail: Any = None


class IpnChanged(msgspec.Struct, frozen=True):
    """An IPN notification was recorded (sent, scheduled or not due), or a delivery
    attempt ended (its retry scheduled, or given up). ``notification`` is a
    ``citcon_sim.delivery.ipn.Notification`` (the domain does not import delivery)."""

    kind: str  # recorded | attempted
    notification: Any


class Refused(msgspec.Struct, frozen=True):
    """A merchant's refund, cancel or capture that a ledger rule refused (nothing moved).

    ``rule`` names the rule (``over_refund``, ``cancel_window``, ``over_capture``…, see
    ``citcon_sim.domain.ledger.REFUSAL_RULES``); ``message`` is the wire's words for it."""

    operation: str  # refund | cancel | capture
    rule: str
    message: str
    transaction: Transaction | None


class MerchantCalled(msgspec.Struct, frozen=True):
    """A merchant API call was answered (the console's line). Published only while someone
    listens: the middleware asks the bus first, so an unwatched call pays nothing more.
    ``answer`` gives the answer's text (decoded only if asked); ``token`` is as sent: a
    subscriber shows only its hint."""

    at: float  # virtual time
    face: str
    method: str
    path: str
    endpoint: str
    token: str | None
    status: int
    seconds: float  # wall time the call took
    transaction_id: str | None
    answer: Callable[[], str | None]


class ConsumerReturned(msgspec.Struct, frozen=True):
    """A wallet page sent the consumer back to one of the merchant's URLs once the payment
    was final: ``outcome`` is ``success``, ``fail`` or ``cancel`` (which URL it was)."""

    transaction: Transaction
    outcome: str
    url: str


class ClockMoved(msgspec.Struct, frozen=True):
    """Virtual time jumped forward by ``seconds`` (``Simulator.advance``)."""

    seconds: float
    now: float


class EarliestJobChanged(msgspec.Struct, frozen=True):
    """A newly scheduled job is now the scheduler's earliest: a sleeping ticker must wake
    by ``due`` (virtual time) rather than at its usual next look."""

    due: float


class Reset(msgspec.Struct, frozen=True):
    """Transactions were forgotten: all of them (``token`` None) or one merchant's."""

    token: str | None = None


class StateRestored(msgspec.Struct, frozen=True):
    """The whole state was replaced by an imported snapshot (``PUT /_sim/state``)."""


class ScenarioLoaded(msgspec.Struct, frozen=True):
    name: str
    token: str | None = None  # None: for every merchant


class ScenariosCleared(msgspec.Struct, frozen=True):
    token: str | None = None  # None: every scenario, global and per merchant


class UnexpectedError(msgspec.Struct, frozen=True):
    """An exception nobody expected: a failing handler, IPN worker or scheduled job."""

    error: BaseException
    where: str = ""


# -- the bus ---------------------------------------------------------------------------------


class EventBus:
    """Handlers per event class (exact class, no inheritance), called synchronously."""

    __slots__ = ("_critical", "_handlers")

    def __init__(self) -> None:
        # Tuples, replaced on (un)subscribe: publishing iterates without copying, and a
        # handler that subscribes or unsubscribes does not disturb the running loop.
        self._handlers: dict[type, tuple[Callable[[Any], None], ...]] = {}
        self._critical: set[Callable[[Any], None]] = set()

    def subscribe(
        self, event_type: type[E], handler: Handler[E], *, critical: bool = False,
        first: bool = False,
    ) -> Callable[[], None]:
        """Call ``handler`` with every later ``event_type`` event; returns the unsubscribe.

        ``critical``: the handler's exception propagates to the publisher (and the
        handlers after it are not called) instead of being recorded. ``first``: called
        before the handlers already subscribed (the ``--state`` journal must record a
        change before any handler reacts to it with changes of its own)."""
        if critical:
            self._critical.add(handler)
        current = self._handlers.get(event_type, ())
        self._handlers[event_type] = (handler, *current) if first else (*current, handler)
        return lambda: self.unsubscribe(event_type, handler)

    def unsubscribe(self, event_type: type[E], handler: Handler[E]) -> None:
        """Remove one subscription of ``handler``; nothing happens if there is none."""
        handlers = list(self._handlers.get(event_type, ()))
        if handler in handlers:
            handlers.remove(handler)
            self._handlers[event_type] = tuple(handlers)

    def handlers(self, event_type: type[Any]) -> tuple[Callable[[Any], None], ...]:
        return self._handlers.get(event_type, ())

    def publish(self, event: object) -> None:
        for handler in self._handlers.get(type(event), ()):
            try:
                handler(event)
            except Exception as exc:
                if handler in self._critical:
                    raise
                self._failed(event, handler, exc)

    def _failed(self, event: object, handler: Callable[[Any], None], exc: Exception) -> None:
        name = getattr(handler, "__qualname__", repr(handler))
        log.exception("%s handler %s failed", type(event).__name__, name)
        if not isinstance(event, UnexpectedError):  # never loop on a failing error handler
            self.publish(UnexpectedError(exc, f"{type(event).__name__} handler {name}"))
