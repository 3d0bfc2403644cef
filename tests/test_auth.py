"""Authentication on every merchant face: a 401 says "Unauthorized" in the face's own
shape, only Bearer (or a bare token) is taken, and a refused call changes nothing.
Also the one amount message that used to contradict itself (a decimal amount)."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from citcon_sim import Simulator

from .helpers import AUTH, PAYMENT, TOKEN
from .upi_support import KEY, charge_body, token_for

Client = TestClient[Any, Any]

# Schemes a misconfigured client sends; each is refused, never taken as a bare token.
OTHER_SCHEMES = [f"Basic {TOKEN}", "Basic dXNlcjpwYXNz", f"Digest username={TOKEN}",
                 f"Token {TOKEN}", f"bearer{TOKEN} x"]


async def online(client: Client, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    resp = await client.post("/payment/pay_qr", data={**PAYMENT, "response_format": "json"},
                             headers=headers)
    return resp.status, await resp.json()


async def chop(client: Client, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    form = {"payment_method": "alipay", "amount": "100", "currency": "USD",
            "reference": "chop-1"}
    resp = await client.post("/chop/chop", data=form, headers=headers)
    return resp.status, await resp.json()


@pytest.mark.parametrize("headers", [{}, {"Authorization": ""}, {"Authorization": "Bearer"},
                                     *({"Authorization": s} for s in OTHER_SCHEMES)])
async def test_the_online_api_refuses_with_unauthorized(
    client: Client, sim: Simulator, headers: dict[str, str]
) -> None:
    status, body = await online(client, headers)
    assert status == 401, body
    assert body["result"] == "fail" and body["code"] == 4100, body
    assert body["message"].startswith("Unauthorized"), body
    assert "Bad request" not in body["message"]
    assert TOKEN not in body["message"] and "dXNlcjpwYXNz" not in body["message"]
    assert sim.ledger.by_id == {} and sim.ledger.merchants == {}


@pytest.mark.parametrize("headers", [{}, *({"Authorization": s} for s in OTHER_SCHEMES)])
async def test_chop_refuses_with_unauthorized(
    client: Client, sim: Simulator, headers: dict[str, str]
) -> None:
    status, body = await chop(client, headers)
    assert status == 401, body
    assert list(body) == ["result", "code", "error"], body
    assert body["code"] == 4100 and body["error"].startswith("Unauthorized"), body
    assert sim.ledger.by_id == {}


async def test_a_basic_scheme_names_the_rule_not_the_header(client: Client) -> None:
    _, body = await online(client, {"Authorization": f"Basic {TOKEN}"})
    assert body["message"] == ("Unauthorized: only Bearer tokens are accepted "
                               "(Authorization: Bearer <token>, or the bare token)")


async def test_bearer_and_the_bare_token_still_work(client: Client, sim: Simulator) -> None:
    for headers in (AUTH, {"Authorization": TOKEN}, {"Authorization": f"  bearer   {TOKEN} "}):
        status, body = await online(client, headers)
        assert status == 200, (headers, body)
    assert set(sim.ledger.merchants) == {TOKEN}  # one merchant, whichever form was used


async def test_upi_refuses_other_schemes_with_its_recorded_pattern(
    client: Client, sim: Simulator
) -> None:
    """UPI's messages are lowercase (recorded "bad request", "duplicate request"), so its
    401 says "unauthorized" with code 4010 (docs/upi.md)."""
    for path, body in (("/v1/access-tokens", {"token_type": "server"}),
                       ("/v1/charges", charge_body())):
        for scheme in (f"Basic {KEY}", f"Digest {KEY}"):
            resp = await client.post(path, json=body, headers={"Authorization": scheme})
            answer = await resp.json()
            assert resp.status == 401, answer
            assert answer["data"]["code"] == "4010", answer
            assert answer["data"]["message"].startswith("unauthorized: only Bearer"), answer
            assert KEY not in answer["data"]["message"]
    assert sim.ledger.by_id == {}
    assert (await token_for(client)).startswith("UPI_")  # Bearer <key> still trades


async def test_the_admin_token_refuses_other_schemes_too(aiohttp_client: Any) -> None:
    from .helpers import client_for
    client, _ = await client_for(aiohttp_client, admin_token="s3cret-admin")
    resp = await client.get("/_sim/transactions",
                            headers={"Authorization": "Basic s3cret-admin"})
    assert resp.status == 401 and resp.headers["WWW-Authenticate"].startswith("Bearer")
    assert (await resp.json())["message"].startswith("Unauthorized")
    ok = await client.get("/_sim/transactions",
                          headers={"Authorization": "Bearer s3cret-admin"})
    assert ok.status == 200


# -- amounts --------------------------------------------------------------------------------


@pytest.mark.parametrize(("amount", "message"), [
    ("10.5", "Amount must be greater than 0 and a whole number of minor units: "
             "amount='10.5' (minor units: 999 for 9.99)"),
    ("1,000", "Amount must be greater than 0 and a whole number of minor units: "
              "amount='1,000' (minor units: 999 for 9.99)"),
    ("0", "Amount must be greater than 0: amount=0"),
    ("-5", "Amount must be greater than 0: amount=-5"),
])
async def test_an_amount_message_states_the_rule_it_broke(
    client: Client, sim: Simulator, amount: str, message: str
) -> None:
    for path, form in (("/payment/pay_qr", {**PAYMENT, "amount": amount}),
                       ("/chop/chop", {"payment_method": "alipay", "amount": amount,
                                       "currency": "USD", "reference": "c-1"})):
        resp = await client.post(path, data=form, headers=AUTH)
        body = await resp.json()
        assert resp.status == 400 and body["code"] == 4102, body
        assert body.get("message", body.get("error")) == message
    assert sim.ledger.by_id == {}
