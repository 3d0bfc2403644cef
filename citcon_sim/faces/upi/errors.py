"""UPI v1 errors: ``{"status":"fail","app":"citcon_upi","version":"v1.0.0","data":{"code",
"message"}}`` with the HTTP statuses of :mod:`.choices` (the sandbox's recorded ones where
there are any). Domain errors raised by shared code take this shape too."""

from __future__ import annotations

from aiohttp import web

from citcon_sim.domain import errors as domain
from citcon_sim.domain.errors import CitconError
from citcon_sim.faces.http import model_response
from citcon_sim.faces.upi import choices as c
from citcon_sim.faces.upi import models as m

Kind = tuple[int, str, str]


class UpiError(CitconError):
    """A UPI answer of ``kind`` (a :mod:`.choices` triple), with an optional detail."""

    def __init__(self, kind: Kind, detail: str | None = None) -> None:
        self.kind = kind
        self.http_status, self.upi_code, self.message = kind
        super().__init__(detail)


def bad_request(detail: str) -> UpiError:
    return UpiError(c.BAD_REQUEST, detail)


def _kind(exc: CitconError) -> tuple[Kind, str | None]:
    if isinstance(exc, UpiError):
        return exc.kind, exc.detail
    if isinstance(exc, domain.Unauthorized):
        return c.UNAUTHORIZED, exc.detail
    if isinstance(exc, domain.PayloadTooLarge):
        return c.TOO_LARGE, exc.detail
    if isinstance(exc, domain.NotFound):
        return c.NOT_FOUND, exc.detail
    if isinstance(exc, domain.TransitionError):
        return c.CONFLICT, exc.detail
    if isinstance(exc, domain.UnknownError):
        return c.UNKNOWN, exc.detail
    if exc.http_status == 405:  # the application's answer to a known path, other method
        return c.METHOD_NOT_ALLOWED, exc.detail
    # 4100 family of the Online API (amount, currency, reference, method): the documented
    # text of the Online code says which rule, then the detail.
    return c.BAD_REQUEST, exc.detail if type(exc) is domain.BadRequest else exc.text


def body(exc: CitconError) -> m.UpiErrorEnvelope:
    (_, code, message), detail = _kind(exc)
    text = f"{message}: {detail}" if detail else message
    return m.UpiErrorEnvelope(status="fail", app=c.APP, version=c.VERSION,
                           data=m.UpiErrorData(code=code, message=text))


def error(exc: CitconError) -> web.Response:
    """The face's error answer (``Face.error``)."""
    return model_response(body(exc), status=_kind(exc)[0][0])
