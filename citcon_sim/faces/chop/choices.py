"""Every CHOP behaviour the public evidence leaves open, decided in one place.

The evidence is digested in ``docs/evidence/upi-chop.md`` (§3: the WooCommerce plugin,
the node/php/java demos and Citcon's QA suite); ``docs/chop.md`` explains each choice.
"""

from __future__ import annotations

from citcon_sim.domain import ledger

# /chop/chop answers {"result": "success", ..., "url": ...} with url LAST: the Java demo
# cuts the URL out of the text from the first "http" to two characters before the end.
# A failure is {"result": "fail", "code": <int>, "error": <text>}: the PHP demo echoes
# `$response->error`; the code is the Online API's (same ledger, same rules).
# HTTP statuses of failures are the Online API's: 400 for 41xx, 401 without a valid
# token, 500 for 4000 (the evidence records none).

# Refund refused because nothing (more) may be refunded. The QA suite asserted the body
# `null` on 2019-11-11 and this status from 2019-11-12 on; the later, current form wins.
REFUND_NOT_ALLOWED = "Refund amount greater than allowed."
# Ledger refusals that mean "more than is left": unpaid, over-refund, cancelled.
NOT_ALLOWED_REASONS = frozenset({
    ledger.REFUND_NOT_PAID, ledger.REFUND_OVER_PAID, ledger.REFUND_CANCELLED,
})
# PayPal refunds need a reason (the issue says so). The plugin (1.5/1.6) sends
# "No reason was given." when WooCommerce passes none, but an empty string as it is.
REASON_REQUIRED = frozenset({"paypal"})
REFUND_REASON_REQUIRED = "Refund reason is required."

# The IPN's signed fields, in posting order: exactly the keys the Java and PHP demos
# read (a listed key they do not read would make their signature check fail).
IPN_FIELDS = ("id", "amount", "notify_status", "currency", "time", "reference",
              "notify_id", "partner_id")
