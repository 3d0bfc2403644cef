"""Arbitrary JSON at every UPI endpoint: always the UPI envelope, never a 500, and the
money invariants hold whatever was accepted."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from citcon_sim import SimulatorServer

from .helpers import examples, frozen_config
from .upi_support import KEY, post

SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-10**20, 10**20),
                    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=20))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=12)
KEYS = ["transaction", "payment", "urls", "id", "reference", "amount", "currency", "note",
        "token_type", "transaction_reference", "goods", "consumer"]
INNER = ["reference", "amount", "currency", "country", "method", "client", "auto_capture",
         "ipn", "success", "note"]
BODIES = st.one_of(
    st.dictionaries(st.sampled_from(KEYS), st.one_of(VALUES, st.dictionaries(
        st.sampled_from(INNER), VALUES, max_size=6)), max_size=6),
    VALUES)
PATHS = ["/v1/charges", "/v1/refunds", "/v1/cancels", "/v1/captures", "/v1/access-tokens"]


@pytest.fixture(scope="module")
def server() -> Iterator[SimulatorServer]:
    with SimulatorServer(frozen_config()) as sim:
        yield sim




@settings(max_examples=examples(150), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(PATHS), body=BODIES)
def test_any_json_gets_the_upi_envelope(server, path, body):
    token = KEY if path == "/v1/access-tokens" else server.upi_access_token(KEY)
    status, answer = post(server.url_for(path), body, token)
    assert status in (200, 400, 404, 406), answer
    assert list(answer) == ["status", "app", "version", "data"]
    assert answer["app"] == "citcon_upi"
    server.check_assertions()

    def invariants() -> None:
        for txn in server.simulator.ledger.by_id.values():
            assert 0 <= txn.refunded_amount <= txn.captured_amount <= txn.amount
    server.call(invariants)
