"""IPN signatures against the API document, checked by independent implementations.

``reference_sign`` below is written from the document's prose, and ``php_sign_ipn`` is
a line-by-line transliteration of its PHP sample; neither shares code with
``citcon_sim.signing``.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from citcon_sim import sign_ipn, verify_ipn
from citcon_sim.domain.signing import signing_string
from citcon_sim.faces.online.ipn import SIGNED_FIELDS, build_form

DOC = (Path(__file__).parent / "data" / "citcon-online-api.txt").read_text("utf-8")


def reference_sign(form: dict[str, str], token: str) -> str:
    """Steps 1-3 of the document: listed keys plus ``fields``, sorted, ``k=v&…&token=``."""
    keys = sorted({k for k in form["fields"].split(",") if k} | {"fields"})
    text = "&".join(f"{k}={form[k]}" for k in keys) + f"&token={token}"
    return hashlib.md5(text.encode("utf-8")).hexdigest()


def php_sign_ipn(post: dict[str, str], token: str) -> str:
    """The PHP sample: strtok over $_POST['fields'], ksort, "$key=$value&", "token=$token"."""
    data = {"fields": post["fields"]}
    for tok in post["fields"].split(","):
        if tok:  # strtok never yields empty tokens
            data[tok] = post[tok]
    flat_reply = ""
    for key in sorted(data):  # ksort on non-numeric string keys: byte order
        flat_reply += f"{key}={data[key]}&"
    flat_reply += f"token={token}"
    return hashlib.md5(flat_reply.encode("utf-8")).hexdigest()


def documented_strings() -> tuple[str, str]:
    """The example string of step 1 and the same string with ``&token=123456`` of step 2."""
    lines = [ln.strip() for ln in DOC.splitlines() if ln.strip().startswith("amount=1&card_")]
    assert len(lines) == 2, lines
    without, with_token = sorted(lines, key=len)
    return without, with_token


def parse_flat(text: str) -> dict[str, str]:
    """Split the (not URL-encoded) example string; values contain no ``&``."""
    return dict(pair.split("=", 1) for pair in text.split("&"))


def test_documented_example_string() -> None:
    without, with_token = documented_strings()
    assert with_token == without + "&token=123456"  # step 2
    example = parse_flat(without)
    assert example["time"] == "2017-02-09 13:50:42"  # the space is not encoded
    # Step 1's string is the sorted k=v join of its pairs, and step 3 is its MD5.
    assert without == "&".join(f"{k}={example[k]}" for k in sorted(example))
    documented_md5 = hashlib.md5(with_token.encode()).hexdigest()
    # Erratum in the document: the example string carries ``id``, which its own ``fields``
    # does not list. The prose ("using only keys in the fields field") and the PHP sample
    # both leave ``id`` out, so a signature over exactly this string cannot come from the
    # documented algorithm. The simulator follows the prose and the PHP (what merchants
    # run); its own IPNs always list ``id``, so they are unaffected.
    assert "id" not in example["fields"].split(",")
    assert sign_ipn(example, "123456") != documented_md5
    # Everything else matches: the documented algorithm (three implementations agree)
    # yields exactly the documented string minus the unlisted ``id`` pair ...
    assert signing_string(example, "123456") == with_token.replace(f"&id={example['id']}", "")
    assert sign_ipn(example, "123456") == reference_sign(example, "123456") \
        == php_sign_ipn(example, "123456")
    # ... and signing every pair of the example reproduces the documented MD5.
    every_pair = "&".join(f"{k}={example[k]}" for k in sorted(example)) + "&token=123456"
    assert hashlib.md5(every_pair.encode()).hexdigest() == documented_md5
    assert verify_ipn({**example, "sign": sign_ipn(example, "123456")}, "123456")


def test_documented_field_list_is_what_the_simulator_signs() -> None:
    documented = re.search(r"“fields”=”([^”]+)”", DOC)
    assert documented is not None
    names = documented.group(1).split(",")
    assert list(SIGNED_FIELDS[: len(names)]) == names
    assert set(SIGNED_FIELDS) - set(names) == {"notify_status", "trans_amount", "trans_currency"}


def _form(**overrides: str) -> dict[str, str]:
    values: dict[str, object] = {
        "id": "U0000600001-0123456789abcdef0123", "amount": "1", "status": "success",
        "currency": "USD", "time": "2016-11-09 07:49:53", "reference": "ABCD123457890",
        "note": "Test transaction", "notify_id": "78b6d63503e7a97cb6e8d09c23de5f5n0u",
        "partner_id": "300000125", "vendor": "wechatpay", "notify_status": "success",
        "trans_amount": "1", "trans_currency": "USD",
    }
    values.update(overrides)
    return build_form(values, "123456")


def test_built_form_matches_both_independent_implementations() -> None:
    form = _form(note="a&b=c, d é")  # signed raw: nothing URL-encoded
    assert form["fields"] == ",".join(SIGNED_FIELDS)
    assert " " not in form["fields"]
    assert set(form) == {*SIGNED_FIELDS, "fields", "sign"}
    assert form["sign"] == reference_sign(form, "123456") == php_sign_ipn(form, "123456")
    assert re.fullmatch(r"[0-9a-f]{32}", form["sign"])


def test_unlisted_posted_keys_do_not_count() -> None:
    form = _form()
    posted = {**form, "extra": "ignored", "token": "x"}
    assert php_sign_ipn(posted, "123456") == form["sign"]
    assert verify_ipn(posted, "123456")


def test_verify_accepts_an_untouched_form() -> None:
    form = _form()
    assert verify_ipn(form, "123456")
    assert verify_ipn({**form, "sign": form["sign"].upper()}, "123456")


@pytest.mark.parametrize(
    "change",
    [
        {"amount": "2"},
        {"status": "fail"},
        {"trans_amount": "100"},
        {"fields": "id,amount"},  # fewer fields signed: the sign no longer matches
        {"sign": "0" * 32},
        {"sign": ""},
    ],
)
def test_verify_rejects_tampering(change: dict[str, str]) -> None:
    assert not verify_ipn({**_form(), **change}, "123456")


def test_verify_rejects_the_wrong_token() -> None:
    assert not verify_ipn(_form(), "654321")


@pytest.mark.parametrize("missing", ["sign", "fields", "amount", "notify_id", "trans_currency"])
def test_verify_rejects_missing_fields(missing: str) -> None:
    form = _form()
    del form[missing]
    assert not verify_ipn(form, "123456")


keys = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12)


@given(st.dictionaries(keys.filter(lambda k: k not in ("fields", "sign")), st.text(),
                       min_size=1, max_size=8), st.text(min_size=1, max_size=20))
def test_sign_agrees_with_the_reference_on_any_form(values: dict[str, str], token: str) -> None:
    form = {**values, "fields": ",".join(values)}
    assert sign_ipn(form, token) == reference_sign(form, token) == php_sign_ipn(form, token)
    assert verify_ipn({**form, "sign": sign_ipn(form, token)}, token)
