"""Scripted behaviour as data: what a scenario rule matches and what it makes happen.

The domain's decision points (payment outcome, refund refusal, IPN behaviour, API
behaviour) read these objects; ``citcon_sim.scenarios`` builds them from YAML. Nothing
here parses files.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

# The bounds of scripted behaviour that outlives the request (it is saved with the
# payment), ONE set for both readers: the scenario schema (``citcon_sim.scenarios``
# applies these over the schema file's numbers, and a test keeps the file in step) and
# the state reader (``citcon_sim.persistence.snapshot``). Whatever a scenario may
# script, a state file holding it loads again.
MAX_SCRIPT_SECONDS = 30 * 86400  # payment.after, ipn.delay: up to 30 days of virtual time
MAX_DUPLICATES = 20
MAX_TAMPER = 10**15  # = commands.MAX_AMOUNT: a tampered amount stays a sane amount
SCRIPT_BOUNDS: dict[tuple[str, str], tuple[int, int]] = {
    ("payment", "after"): (0, MAX_SCRIPT_SECONDS),
    ("ipn", "delay"): (0, MAX_SCRIPT_SECONDS),
    ("ipn", "duplicates"): (1, MAX_DUPLICATES),  # the state reader also takes 0 (none)
    ("ipn", "tamper_amount"): (-MAX_TAMPER, MAX_TAMPER),
    ("payment", "late_confirm"): (0, MAX_SCRIPT_SECONDS),
    ("ipn", "amount_differs"): (-MAX_TAMPER, MAX_TAMPER),
    ("api", "rate_limit"): (1, 86400),
    ("api", "cdn_error"): (500, 599),
}


class RequestFacts(msgspec.Struct, frozen=True):
    """What a rule can match on, taken from one merchant API request."""

    token: str | None
    endpoint: str
    vendor: str | None = None
    amount: int | None = None
    currency: str | None = None
    reference: str | None = None
    face: str | None = None  # the API face serving the request: online, chop, upi


class PaymentScript(msgspec.Struct, frozen=True):
    """A rule's ``payment:`` action: the consumer's outcome, and when."""

    outcome: str  # pay | fail | expire | pending | authorize
    after: float = 0.0
    reason: str = "declined"
    # Surprises after the end (docs/scenarios.md): the wallet confirms this many seconds
    # after the payment expired or the merchant cancelled it unpaid; the consumer pays
    # the same QR twice (a second paid transaction for the same order).
    late_confirm: float | None = None
    paid_twice: bool = False


class IpnScript(msgspec.Struct, frozen=True):
    """A rule's ``ipn:`` action: how the notification misbehaves."""

    delay: float = 0.0
    never: bool = False
    duplicates: int = 0
    out_of_order: bool = False
    bad_signature: bool = False
    tamper_amount: int = 0
    status: str | None = None
    amount_differs: int = 0  # added to amount *before* signing: a valid notice, wrong sum
    before_answer: bool = False  # delivered before the API call that paid is answered


class ApiScript(msgspec.Struct, frozen=True):
    """A rule's ``api:`` action: how the API call itself misbehaves."""

    latency_ms: int = 0
    error: int | None = None
    http_status: int | None = None
    drop: bool = False
    timeout: bool = False
    rate_limit: int | None = None  # answer 429 with Retry-After: this many seconds
    cdn_error: int | None = None  # answer the CDN's own HTML error page with this 5xx
    truncate: bool = False  # do the work, then answer with the body cut short


class RefundScript(msgspec.Struct, frozen=True):
    """A rule's ``refund:`` action: the refund is refused."""

    status: str  # the refund is refused with this status


class Rule(msgspec.Struct):
    """One scenario rule: what it matches, what it does, and how often it has matched."""

    name: str
    source: str
    line: int | None
    token: str | None = None
    faces: frozenset[str] | None = None
    vendors: frozenset[str] | None = None
    endpoints: frozenset[str] | None = None
    amount: int | None = None
    amount_min: int | None = None
    amount_max: int | None = None
    amount_suffix: str | None = None
    currency: str | None = None
    reference: re.Pattern[str] | None = None
    nth: frozenset[int] | None = None
    times: int | None = None
    payment: PaymentScript | None = None
    ipn: IpnScript | None = None
    api: ApiScript | None = None
    refund: RefundScript | None = None
    seen: int = 0  # requests that matched every key but nth (whichever rule decided)
    applied: int = 0

    @property
    def shapes_answer(self) -> bool:
        """Whether applying the rule changes how (or when) the API call is answered."""
        return self.api is not None or (self.ipn is not None and self.ipn.before_answer)

    def surprises(self, creates: bool) -> str | None:
        """The journal's tag for a call this rule decided: the surprises it scripts there
        (a payment's and its notification's only on the call that ``creates`` it)."""
        tags = []
        if self.payment is not None and creates:
            tags += ["late_confirm"] * (self.payment.late_confirm is not None)
            tags += ["paid_twice"] * self.payment.paid_twice
        if self.ipn is not None and creates:
            tags += ["ipn_amount_differs"] * bool(self.ipn.amount_differs)
            tags += ["ipn_before_answer"] * self.ipn.before_answer
        if self.api is not None:
            tags += ["rate_limited"] * (self.api.rate_limit is not None)
            tags += ["cdn_error"] * (self.api.cdn_error is not None)
            tags += ["truncated_body"] * self.api.truncate
            tags += ["timeout_after_work"] * self.api.timeout
        return ",".join(tags) or None

    def observe(self, facts: RequestFacts) -> bool:
        """Count a request towards ``nth``; whether this rule would apply to it.

        Every rule observes every request, even one an earlier rule decides, so that
        ``nth: 2`` means the second request matching the other keys, as documented
        (``flaky-ipn`` has three rules with the same keys and nth 1, 2, 3).
        """
        if not self._keys_match(facts):
            return False
        self.seen += 1
        if self.times is not None and self.applied >= self.times:
            return False
        return self.nth is None or self.seen in self.nth

    def _keys_match(self, f: RequestFacts) -> bool:
        if self.token is not None and f.token != self.token:
            return False
        if self.endpoints is not None and f.endpoint not in self.endpoints:
            return False
        if self.faces is not None and f.face not in self.faces:
            return False
        if self.vendors is not None and (f.vendor or "").lower() not in self.vendors:
            return False
        if self.currency is not None and (f.currency or "").upper() != self.currency:
            return False
        if self.reference is not None and (
            f.reference is None or not self.reference.search(f.reference)
        ):
            return False
        if self.amount is not None or self.amount_min is not None or self.amount_max is not None \
                or self.amount_suffix is not None:
            if f.amount is None:
                return False
            if self.amount is not None and f.amount != self.amount:
                return False
            if self.amount_min is not None and f.amount < self.amount_min:
                return False
            if self.amount_max is not None and f.amount > self.amount_max:
                return False
            if self.amount_suffix is not None and not str(f.amount).endswith(self.amount_suffix):
                return False
        return True

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "source": f"{self.source}:{self.line}" if self.line else self.source,
            "times": self.times,
            "seen": self.seen,
            "applied": self.applied,
            "payment": _asdict(self.payment),
            "ipn": _asdict(self.ipn),
            "api": _asdict(self.api),
            "refund": _asdict(self.refund),
        }


def _asdict(obj: Any) -> dict[str, Any] | None:
    if obj is None:
        return None
    return {k: getattr(obj, k) for k in obj.__struct_fields__}


