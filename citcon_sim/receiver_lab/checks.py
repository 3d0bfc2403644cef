"""The receiver lab's battery, as data: what each check sends, why it matters, how its
answer is judged, what the answer cannot show, and on which API faces it applies.

``docs/receiver-lab.md`` explains the same checks for people; the runner
(:mod:`citcon_sim.receiver_lab.runner`) builds and judges them from this table.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

FACES = ("online", "chop", "upi")


class Expect(enum.Enum):
    """What a correct receiver answers."""

    ACK = "acknowledge (2xx)"
    REFUSE = "refuse (not answered as the valid notification was)"
    DECIDE = "decide (2xx or 4xx; not 5xx, not silence)"
    OBSERVE = "observed across the run"


class Setup(enum.Enum):
    """The gateway transaction a notification is about."""

    PAID = "paid"  # exists and is paid: a true notice
    PENDING = "pending"  # exists, unpaid: a notice claiming success lies
    FAILED = "failed"  # the consumer's payment failed
    NONE = "none"  # no such transaction at the gateway
    SAME = "same as valid"  # the valid notification's transaction, sent again


@dataclass(frozen=True)
class Check:
    id: str
    title: str
    sends: str  # what is posted
    why: str  # why it matters
    judged: str  # how the answer is judged
    cannot_judge: str  # what the answer cannot show
    expect: Expect
    setup: Setup
    required: bool = True  # False: advice, reported but never fails the run
    # Faces on which it does not apply, with the reason.
    not_on: Mapping[str, str] = field(default_factory=dict)

    def applies(self, face: str) -> bool:
        return face not in self.not_on


CHECKS: tuple[Check, ...] = (
    Check(
        "valid", "A valid notification",
        "a correctly signed success notification for a transaction that exists at the "
        "gateway and is paid, in the face's usual encoding",
        "Citcon counts only a 2xx answer as delivered; anything else is retried for about "
        "10 hours and the order is never marked paid by it.",
        "passes on any 2xx answer (Citcon ignores the body: ok, success or empty).",
        "whether the order was marked paid.",
        Expect.ACK, Setup.PAID),
    Check(
        "inquiry", "Inquires before trusting the notice",
        "nothing more: the gateway's request journal is read while the valid notification "
        "is answered",
        "the notification is a claim; the gateway's inquire answer is the fact. A receiver "
        "that confirms the payment (status and amount) by inquiring cannot be fooled by a "
        "notice, whatever its signature.",
        "passes when the receiver called inquire for that transaction with the merchant's "
        "token before answering; advice when it did not and the receiver was told where the "
        "gateway is (--gateway-port, --url, a test's gateway=); not judged otherwise.",
        "what the receiver compared in the inquire answer, or whether it inquires another "
        "gateway.",
        Expect.OBSERVE, Setup.SAME, required=False),
    Check(
        "duplicate", "The same notification twice",
        "the valid notification again, byte for byte, as soon as it was answered",
        "Citcon resends a notification (same notify_id) whenever an answer is lost or late; "
        "a receiver must acknowledge it again, and fulfil the order once.",
        "passes on a 2xx answer.",
        "whether the order was fulfilled twice (ship once per notify_id or per order).",
        Expect.ACK, Setup.SAME),
    Check(
        "extra-unsigned-field", "An extra unsigned field",
        "a valid notification with one more field that is not listed in `fields`",
        "the signature covers only the keys listed in `fields`; Citcon adds fields over "
        "time. A receiver that signs every posted key refuses real notifications the day "
        "a field is added.",
        "passes on a 2xx answer.",
        "whether the receiver used the unsigned value.",
        Expect.ACK, Setup.PAID),
    Check(
        "uppercase-signature", "An uppercase-hex signature",
        "a valid notification whose `sign` is the right digest in uppercase hex",
        "Citcon sends lowercase hex. Comparing case-insensitively (as citcon_sim.verify_ipn "
        "does) and refusing uppercase are both sound; falling over on it is not.",
        "passes on a 2xx (case-insensitive compare) or a 4xx (strict compare); advice on "
        "a 5xx or no answer.",
        "nothing more: either decision is safe.",
        Expect.DECIDE, Setup.PAID, required=False),
    Check(
        "forged-signature", "A forged signature",
        "a success notification for an unpaid transaction, signed without the merchant's "
        "token (the digest anyone can compute)",
        "anyone can POST to an IPN URL. A receiver that does not verify `sign` marks "
        "orders paid for whoever asks; a public Citcon PHP demo answers ok to forgeries.",
        "passes when the answer differs from the valid notification's: a non-2xx status, "
        "or a 2xx with another body (say `fail`).",
        "whether an order was marked paid anyway, when the refusal is a 2xx.",
        Expect.REFUSE, Setup.PENDING),
    Check(
        "other-merchant-token", "Another merchant's token",
        "a success notification for an unpaid transaction, correctly signed with another "
        "merchant's token",
        "a receiver that accepts any well-formed signature, or one computed with a "
        "token it was not given (a shared test token, a second shop's), can be fooled by "
        "anyone with a Citcon account.",
        "as forged-signature.",
        "as forged-signature.",
        Expect.REFUSE, Setup.PENDING),
    Check(
        "tampered-amount", "A tampered amount",
        "a valid notification whose `amount` was changed to 1 after signing",
        "the amount is what was paid; a receiver that checks the signature over the "
        "posted values refuses it, and one that compares the amount with the order does "
        "too.",
        "as forged-signature.",
        "as forged-signature.",
        Expect.REFUSE, Setup.PAID),
    Check(
        "missing-field", "A signed field missing",
        "a notification listing `amount` in `fields` without posting it, signed as if "
        "`amount` were empty",
        "a listed key that is absent is not what Citcon signed; code that reads it as "
        "empty (Citcon's PHP sample does) then acts on a notice without an amount.",
        "as forged-signature.",
        "as forged-signature.",
        Expect.REFUSE, Setup.PAID),
    Check(
        "unknown-transaction", "A transaction that does not exist",
        "a correctly signed success notification for a transaction id and reference the "
        "gateway has never seen",
        "only someone holding the token, or a bug, can send it; a receiver that looks the "
        "order up (or inquires) refuses it instead of marking something paid.",
        "as forged-signature; advice only, because a receiver that trusts the signature "
        "alone follows Citcon's documentation.",
        "whether anything was marked paid.",
        Expect.REFUSE, Setup.NONE, required=False),
    Check(
        "failure-status", "A failure status",
        "a correctly signed notification whose status says the payment failed, for a "
        "transaction that failed at the gateway",
        "it must be acknowledged, or Citcon resends it for hours; Citcon's WooCommerce "
        "plugin answers 500 to it for ever. It must not mark the order paid.",
        "passes on a 2xx answer.",
        "whether the order was marked paid (a receiver that inquires finds it failed).",
        Expect.ACK, Setup.FAILED),
    Check(
        "other-encoding", "The other encoding",
        "a valid notification in the encoding the merchant is not configured for: JSON "
        "instead of a form, or a form instead of JSON",
        "CHOP posts a form, or JSON to merchants configured for it (chop_ipn_encoding: "
        "json), and the WooCommerce plugin 1.6 reads JSON first; a receiver that reads "
        "both survives the switch.",
        "passes on a 2xx answer; advice only, as Citcon posts each merchant one encoding.",
        "nothing more.",
        Expect.ACK, Setup.PAID, required=False,
        not_on={"online": "the Online API posts forms only",
                "upi": "UPI posts JSON only: the valid notification is JSON"}),
    Check(
        "replay", "A replay of an old notify_id",
        "the valid notification again at the end of the run, after every other check",
        "a redelivery (POST /_sim/ipn/{notify_id}/redeliver, or a retry hours later) "
        "repeats an old notify_id after the order has moved on; it must be acknowledged "
        "and change nothing.",
        "passes on a 2xx answer.",
        "whether it changed the order a second time.",
        Expect.ACK, Setup.SAME),
    Check(
        "reply-time", "Replies well within the timeout",
        "nothing more: the slowest answer of the run is measured",
        "Citcon waits a bounded time (citcon-sim: --ipn-timeout, 10 s) and then retries; a "
        "receiver answering near the limit times out under load and gets duplicates.",
        "passes when every answer came within half the timeout; fails on a slower answer "
        "or none at all.",
        "how the receiver behaves under real load.",
        Expect.OBSERVE, Setup.SAME),
)

BY_ID: dict[str, Check] = {c.id: c for c in CHECKS}


def markdown(check: Check) -> str:
    """The check's entry in docs/receiver-lab.md (a test keeps the page in step)."""
    level = "required" if check.required else "advice: reported, never fails the run"
    faces = ", ".join(f for f in FACES if check.applies(f))
    skipped = "".join(f"; not on {f}: {why}" for f, why in check.not_on.items())
    return (f"### `{check.id}`: {check.title}\n\n"
            f"- **Sends:** {check.sends}.\n"
            f"- **Why it matters:** {check.why}\n"
            f"- **Judged ({level}):** {check.judged}\n"
            f"- **Cannot judge:** {check.cannot_judge}\n"
            f"- **Faces:** {faces}{skipped}.\n")
