"""Request parameters as the API document's clients send them.

Clients send form-urlencoded bodies, or the same pairs in a GET query string. Values are
trimmed (``vendor=upop `` appears in the documentation), empty values count as absent,
a repeated key keeps its last value (PHP ``$_POST`` semantics), and bracketed keys such as
``consumer[first_name]`` become nested objects. Limits keep a hostile client from making
the simulator store megabytes per transaction.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from citcon_sim.domain.commands import is_wire_safe
from citcon_sim.domain.errors import BadRequest
from citcon_sim.domain.scripts import RequestFacts

MAX_KEYS = 200
MAX_KEY_LENGTH = 100
MAX_VALUE_LENGTH = 2048
LONG_FIELDS = {"goods": 65536, "note": 4096, "ipn_url": 4096}
MAX_DEPTH = 2  # consumer[ext][document_id]

_BRACKETS = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")

Params = dict[str, Any]


def normalise(pairs: Iterable[tuple[str, str]]) -> Params:
    out: Params = {}
    count = 0
    for raw_key, raw_value in pairs:
        count += 1
        if count > MAX_KEYS:
            raise BadRequest(f"more than {MAX_KEYS} parameters")
        key = raw_key.strip()
        if len(key) > MAX_KEY_LENGTH:
            raise BadRequest(f"parameter name longer than {MAX_KEY_LENGTH} characters")
        value = raw_value.strip()
        if len(value) > MAX_VALUE_LENGTH:  # only then is the field's own limit looked up
            top = key.split("[", 1)[0]
            limit = LONG_FIELDS.get(top, MAX_VALUE_LENGTH)
            if len(value) > limit:
                raise BadRequest(f"{top} is longer than {limit} characters")
        if not value or not key:
            continue
        _assign(out, key, value)
    return out


def _assign(out: Params, key: str, value: str) -> None:
    if "[" not in key and "]" not in key:  # a plain name (nearly all): no regex needed
        out[key] = value
        return
    match = _BRACKETS.match(key)
    if match is None or not match.group(2):
        if "[" in key or "]" in key:
            raise BadRequest(f"malformed parameter name {key!r}")
        out[key] = value
        return
    path = [match.group(1), *re.findall(r"\[([^\[\]]*)\]", match.group(2))]
    if len(path) - 1 > MAX_DEPTH or any(not p for p in path):
        raise BadRequest(f"parameter {key!r} is nested too deeply or has an empty []")
    node = out
    for part in path[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[path[-1]] = value


def text(params: Mapping[str, Any], key: str) -> str | None:
    """A scalar parameter, or None. A nested object where text is expected is a 4100."""
    value = params.get(key)
    if value is None or isinstance(value, str):
        return value
    raise BadRequest(f"{key} must be a single value")


# The words a yes/no parameter understands, in any case.
FLAG_WORDS = {"true": True, "false": False, "yes": True, "no": False, "1": True, "0": False,
              "y": True, "n": False, "on": True, "off": False}


def flag(params: Mapping[str, Any], key: str, default: bool = False) -> bool:
    value = text(params, key)
    if value is None:
        return default
    meaning = FLAG_WORDS.get(value.lower())
    if meaning is None:
        raise BadRequest(f"{key} must be true or false, got {value!r}")
    return meaning


def json_object(params: Mapping[str, Any], key: str) -> dict[str, Any] | None:
    """A field the documentation says is "a JSON formatted string" (``goods``).

    The documented card/payco/kakaopay examples send it with shell-escaped quotes
    (``{\\"data\\":...}``), which real clients copy; that form is accepted too.
    """
    raw = params.get(key)
    if raw is None:
        return None
    if isinstance(raw, dict):
        return raw
    for candidate in (raw, raw.replace('\\"', '"')):
        try:
            value = json.loads(candidate)
        except (ValueError, RecursionError):
            continue
        if isinstance(value, dict) and is_wire_safe(value):
            return value
        break
    raise BadRequest(f"{key} must be a JSON object")


MAX_OFFSET = 10**9  # far past any ledger; itertools.islice refuses more than sys.maxsize


def page(params: Mapping[str, Any], default_limit: int = 100) -> tuple[int, int]:
    """``limit`` and ``offset`` of a listing: 1..1000 and 0..MAX_OFFSET, else a 4100."""
    try:
        limit = int(params.get("limit", default_limit))
        offset = int(params.get("offset", 0))
    except (TypeError, ValueError):
        raise BadRequest("limit and offset must be whole numbers") from None
    if not 1 <= limit <= 1000 or not 0 <= offset <= MAX_OFFSET:
        raise BadRequest(f"limit is 1..1000 and offset 0..{MAX_OFFSET}")
    return limit, offset


def form_facts(vendor_key: str) -> Callable[[str, str | None, Params], RequestFacts]:
    """What a scenario rule can match on, from a form API's parameters (the Online API
    names the method ``vendor``, CHOP ``payment_method``; the middleware adds the face)."""

    def facts(endpoint: str, token: str | None, params: Params) -> RequestFacts:
        amount_raw = params.get("amount") or params.get("trans_amount")
        currency = (params.get("currency") if "amount" in params
                    else params.get("trans_currency"))
        vendor = params.get(vendor_key)
        reference = params.get("reference") or params.get("transaction_reference")
        return RequestFacts(
            token=token,
            endpoint=endpoint,
            vendor=vendor.strip().lower() if isinstance(vendor, str) else None,
            amount=(int(amount_raw) if isinstance(amount_raw, str) and amount_raw.isdigit()
                    else None),
            currency=currency if isinstance(currency, str) else None,
            reference=reference if isinstance(reference, str) else None,
        )

    return facts
