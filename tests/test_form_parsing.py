"""Form bodies are read exactly as ``urllib.parse.parse_qsl`` reads them (the simulator
only skips its work for bodies with nothing encoded)."""

from __future__ import annotations

from urllib.parse import parse_qsl

import pytest
from hypothesis import given
from hypothesis import strategies as st

from citcon_sim.faces.http import _form_pairs
from citcon_sim.faces.params import MAX_KEYS

_TEXT = st.text(alphabet=st.sampled_from("ab=&%+2F0-_ .~é"), max_size=60)


@given(_TEXT)
def test_pairs_are_parse_qsls(body: str) -> None:
    try:
        expected = parse_qsl(body, keep_blank_values=True, errors="strict",
                             max_num_fields=MAX_KEYS)
    except (ValueError, UnicodeDecodeError) as exc:
        with pytest.raises(type(exc)):
            _form_pairs(body)
        return
    assert _form_pairs(body) == expected


@pytest.mark.parametrize("body", ["a=1", "a=1&&b=", "a&b=2", "=x", "a=b=c", "&", "a=%41+b"])
def test_edge_cases_match(body: str) -> None:
    assert _form_pairs(body) == parse_qsl(body, keep_blank_values=True, errors="strict")


def test_too_many_fields_is_refused_either_way() -> None:
    for body in ("a=1&" * MAX_KEYS + "a=1", "a=%41&" * MAX_KEYS + "a=1"):
        with pytest.raises(ValueError):
            _form_pairs(body)
