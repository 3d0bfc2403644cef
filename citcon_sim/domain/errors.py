"""Citcon error codes, as documented in "Online API Error Codes".

One base exception carries the code, the documented message and the HTTP status; the
HTTP layer turns any of them into the envelope ``{"result":"fail","code":..,"message":..}``.
The documented text always comes first; ``detail`` may add which field was wrong.
"""

from __future__ import annotations


class CitconError(Exception):
    code: int = 4000
    message: str = "Unknown error"
    http_status: int = 500

    def __init__(self, detail: str | None = None) -> None:
        self.detail = detail
        super().__init__(self.text)

    @property
    def text(self) -> str:
        return f"{self.message}: {self.detail}" if self.detail else self.message

    def envelope(self) -> dict[str, object]:
        return {"result": "fail", "code": self.code, "message": self.text}


class UnknownError(CitconError):
    code, message, http_status = 4000, "Unknown error", 500


class BadRequest(CitconError):
    code, message, http_status = 4100, "Bad request", 400


class VendorNotSupported(CitconError):
    code, message, http_status = 4101, "Vendor not supported", 400


class InvalidAmount(CitconError):
    code, message, http_status = 4102, "Amount must be greater than 0", 400


class AmountNotWhole(InvalidAmount):
    """A decimal (or otherwise non-integer) amount: still 4102, with the documented text
    completed so that the message does not read as "must be greater than 0" for 10.5."""

    message = "Amount must be greater than 0 and a whole number of minor units"


class InvalidReference(CitconError):
    code, message, http_status = 4103, "Reference is invalid", 400


class InvalidTimeout(CitconError):
    code, message, http_status = 4104, "Timeout is invalid", 400


class BankNotSupported(CitconError):
    code, message, http_status = 4105, "Bank not supported", 400


class Unauthorized(CitconError):
    """No token, a scheme other than Bearer, or (in strict mode) a token no merchant has.

    Citcon documents no code for it: the envelope keeps 4100 (clients branch on the HTTP
    status), and the message says what a 401 means instead of "Bad request"."""

    code, message, http_status = 4100, "Unauthorized", 401


class NotFound(CitconError):
    """A control-surface lookup of an id that does not exist (never used by /payment/)."""

    code, message, http_status = 4100, "Bad request", 404


class PayloadTooLarge(CitconError):
    code, message, http_status = 4100, "Bad request", 413


class Unavailable(CitconError):
    """The simulator stopped serving: its ``--state`` file could not be written, so the
    state in memory is no longer the state on disk (restart it once the disk is fixed)."""

    code, message, http_status = 4000, "Unknown error", 503


class TransitionError(CitconError):
    """A consumer or control action the transaction's state does not allow."""

    code, message, http_status = 4100, "Bad request", 409


ERROR_CODES: dict[int, str] = {
    2000: "Success",
    4000: UnknownError.message,
    4100: BadRequest.message,
    4101: VendorNotSupported.message,
    4102: InvalidAmount.message,
    4103: InvalidReference.message,
    4104: InvalidTimeout.message,
    4105: BankNotSupported.message,
}


class StateError(ValueError):
    """A snapshot or state file that cannot be used; the message says where and why.

    (``citcon_sim.state`` re-exports it; it lives here so that the CLI can catch it
    without importing the state module at start-up.)"""
