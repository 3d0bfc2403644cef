"""Models every face answers with (msgspec Structs; see ``faces.online.models``)."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from citcon_sim.domain.errors import ERROR_CODES, CitconError


class ErrorEnvelope(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    result: Literal["fail"]
    code: Annotated[int, Meta(extra_json_schema={
        "enum": [c for c in ERROR_CODES if c >= 4000]})]
    message: Annotated[str, Meta(min_length=1)]

    @classmethod
    def of(cls, error: CitconError) -> ErrorEnvelope:
        return cls(result="fail", code=error.code, message=error.text)


ErrorEnvelope.__doc__ = (
    "Every request error. The message starts with the documented text of the code ("
    + "; ".join(f"{c} {m}" for c, m in ERROR_CODES.items() if c >= 4000)
    + ") and may add which field was wrong; a 401 (code 4100) says `Unauthorized` instead.")
