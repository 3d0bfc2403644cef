"""The shipped scenarios: each does what docs/scenarios.md says it does, end to end.

The IPN side of flaky-ipn is checked here against a real receiver; magic 9904-9907 are
exercised in tests/test_ipn.py.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import aiohttp
import jsonschema
import pytest
import yaml
from aiohttp.test_utils import TestClient

from citcon_sim import Simulator, verify_ipn
from citcon_sim.scenarios import parse_scenario, resolve_scenario, shipped_scenarios

from .helpers import AUTH, TOKEN, IpnReceiver, client_for, create, sim_txn
from .helpers import internal_status as status

REPO = Path(__file__).resolve().parents[1]
PACKAGE_DIR = resources.files("citcon_sim").joinpath("shipped_scenarios")
SHIPPED = ["declines", "flaky-ipn", "happy-path", "magic", "qr-expiry", "refund-refused",
           "slow-gateway"]


async def client_with(
    aiohttp_client: Any, *scenarios: str, magic: bool = True
) -> tuple[TestClient, Simulator]:
    return await client_for(aiohttp_client, seed=7, scenarios=list(scenarios),
                            magic_amounts=magic)


async def reason(client: TestClient, txn_id: str) -> Any:
    return (await sim_txn(client, txn_id))["timeline"][-1]["detail"]["reason"]


# -- the files -----------------------------------------------------------------------------


def test_shipped_list_is_complete():
    assert sorted(shipped_scenarios()) == SHIPPED


def test_top_level_scenarios_dir_lists_the_same_files():
    top = REPO / "scenarios"
    assert top.is_dir()
    top_files = sorted(p.name for p in top.iterdir() if not p.name.startswith("."))
    package_files = sorted(e.name for e in PACKAGE_DIR.iterdir()
                           if not e.name.startswith(".") and e.name != "__pycache__")
    assert top_files == package_files == [f"{name}.yaml" for name in SHIPPED]
    for name in top_files:
        assert (top / name).read_text("utf-8") == PACKAGE_DIR.joinpath(name).read_text("utf-8")


def test_schema_is_a_valid_2020_12_schema():
    schema = json.loads((REPO / "citcon_sim" / "scenario.schema.json").read_text("utf-8"))
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_file_validates_against_the_schema(name):
    schema = json.loads((REPO / "citcon_sim" / "scenario.schema.json").read_text("utf-8"))
    data = yaml.safe_load((REPO / "scenarios" / f"{name}.yaml").read_text("utf-8"))
    jsonschema.Draft202012Validator(schema).validate(data)
    assert data["name"] == name
    assert data["description"].strip()
    scenario = resolve_scenario(name)
    assert len(scenario.rules) == len(data["rules"]) >= 1


def test_schema_rejects_what_the_loader_rejects():
    schema = json.loads((REPO / "citcon_sim" / "scenario.schema.json").read_text("utf-8"))
    validator = jsonschema.Draft202012Validator(schema)
    for bad in ({"rules": [{"match": {"vendor": "alipay"}}]},
                {"rules": [{"payment": {"outcome": "fly"}}]},
                {"rules": [{"api": {"http_status": 404}}]},
                {"rules": [], "colour": "red"}):
        assert not validator.is_valid(bad), bad


def test_resolve_prefers_an_existing_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("declines").write_text("name: local\nrules:\n  - api: {latency_ms: 1}\n")
    assert resolve_scenario("declines").name == "local"
    assert resolve_scenario(str(REPO / "scenarios" / "declines.yaml")).name == "declines"


# -- each scenario's behaviour ---------------------------------------------------------------


async def test_happy_path(aiohttp_client):
    client, sim = await client_with(aiohttp_client, "happy-path")
    qr = await create(client, "pay_qr", reference="a")
    link = await create(client, "pay", reference="b")
    await client.post("/_sim/clock/advance", data={"seconds": "4"})
    assert [await status(client, t) for t in (qr, link)] == ["pending", "pending"]
    await client.post("/_sim/clock/advance", data={"seconds": "1"})
    assert [await status(client, t) for t in (qr, link)] == ["success", "success"]
    resp = await client.post("/payment/inquire", data={"transaction_id": qr}, headers=AUTH)
    assert (await resp.json())["status"] == "success"


async def test_declines(aiohttp_client):
    client, sim = await client_with(aiohttp_client, "declines")
    declined = await create(client, reference="decline-42")
    fine = await create(client, reference="order-42")
    suffix = await create(client, reference="no-decline-42")  # the glob is anchored
    assert await status(client, declined) == "fail"
    assert await reason(client, declined) == "declined by issuer"
    assert await status(client, fine) == "pending"
    assert await status(client, suffix) == "pending"
    wechat = [await create(client, vendor="wechatpay", reference=f"w-{i}") for i in range(6)]
    assert [await status(client, t) for t in wechat] == [
        "pending", "pending", "fail", "pending", "pending", "fail"]
    assert await reason(client, wechat[2]) == "insufficient balance"
    # Other vendors are not counted.
    assert await status(client, await create(client, vendor="alipay", reference="x")) == "pending"


async def test_flaky_ipn_payment_part(aiohttp_client):
    client, sim = await client_with(aiohttp_client, "flaky-ipn")
    paid = [await create(client, reference=f"f-{i}") for i in range(4)]
    assert [await status(client, t) for t in paid] == ["success"] * 3 + ["pending"]
    listing = await (await client.get("/_sim/scenarios")).json()
    rules = listing["global"][0]["rules"]
    assert [r["applied"] for r in rules] == [1, 1, 1]
    assert rules[0]["ipn"]["duplicates"] == 1
    assert rules[1]["ipn"]["out_of_order"] is True
    assert rules[2]["ipn"]["never"] is True


async def test_flaky_ipn_notifications_end_to_end(
    aiohttp_client: Any, ipn_receiver: IpnReceiver
) -> None:
    """1st payment: its IPN twice (one notify_id); 2nd: a stale "pending" after the real
    one; 3rd: none; 4th: normal again."""
    client, sim = await client_with(aiohttp_client, "flaky-ipn")
    ids = [await create(client, reference=f"f-{i}", ipn_url=ipn_receiver.url)
           for i in range(4)]
    await client.post(f"/_sim/transactions/{ids[3]}/pay")
    await sim.ipn.drain()
    posts = ipn_receiver.posts
    by_txn = {t: [p for p in posts if p["id"] == t] for t in ids}
    first = by_txn[ids[0]]
    assert len(first) == 2 and len({p["notify_id"] for p in first}) == 1
    assert [p["status"] for p in by_txn[ids[1]]] == ["success", "pending"]
    assert by_txn[ids[2]] == []
    assert [p["status"] for p in by_txn[ids[3]]] == ["success"]
    assert all(verify_ipn(p, TOKEN) for p in posts)


@pytest.mark.slow  # the scenario's latency is wall time
async def test_slow_gateway(aiohttp_client):
    client, sim = await client_with(aiohttp_client, "slow-gateway")
    data = {"vendor": "alipay", "amount": "1000", "currency": "USD", "reference": "slow-1"}
    with pytest.raises(aiohttp.ClientConnectionError):
        await client.post("/payment/pay_qr", data=data, headers=AUTH)
    (first_id,) = sim.ledger.by_id  # it timed out, but exists
    resp = await client.post("/payment/pay_qr", data={**data, "reference": "slow-2"},
                             headers=AUTH)
    assert resp.status == 503
    assert list(sim.ledger.by_id) == [first_id]  # the 503 created nothing
    resp = await client.post("/payment/inquire", data={"reference": "slow-1"}, headers=AUTH)
    assert resp.status == 200 and (await resp.json())["id"] == first_id
    entries = (await (await client.get("/_sim/requests")).json())["requests"]
    inquire, http_503, timed_out = entries
    assert timed_out["scenario_rule"] == "create times out but exists"
    assert timed_out["duration_ms"] >= 300
    assert http_503["status"] == 503 and http_503["scenario_rule"] == "then a 503"
    assert inquire["scenario_rule"] == "always slow" and inquire["duration_ms"] >= 300


async def test_qr_expiry(aiohttp_client):
    client, sim = await client_with(aiohttp_client, "qr-expiry")
    qr = await create(client, "pay_qr", reference="q")
    link = await create(client, "pay", reference="p")
    assert await status(client, qr) == "expired"
    assert await status(client, link) == "pending"
    resp = await client.get("/payment/qr", params={"q": qr})
    assert (await resp.json())["reason"] == "QR code expired."


async def test_refund_refused(aiohttp_client):
    client, sim = await client_with(aiohttp_client, "refund-refused")
    txn_id = await create(client, "pay", reference="rr")
    assert await status(client, txn_id) == "success"
    balance = await (await client.get("/_sim/balance", params={"token": "test-token"})).json()
    assert balance["open_balance"] == {"USD": 1000}  # there is money; the scenario refuses
    resp = await client.post("/payment/refund", headers=AUTH,
                             data={"transaction_id": txn_id, "amount": "100", "currency": "USD"})
    assert await resp.json() == {"refunded": False, "status": "insufficient open balance"}
    resp = await client.post("/payment/inquire", data={"transaction_id": txn_id}, headers=AUTH)
    assert (await resp.json())["status"] == "success"


async def test_magic_as_a_loaded_scenario(aiohttp_client):
    """magic.yaml is an ordinary scenario: loading it works with the built-in switched off."""
    client, sim = await client_with(aiohttp_client, "magic", magic=False)
    declined = await create(client, amount=19901)
    paid = await create(client, amount=9903)
    ordinary = await create(client, amount=1000)
    assert await status(client, declined) == "fail"
    assert await reason(client, declined) == "insufficient funds"
    assert await status(client, paid) == "success"
    assert await status(client, ordinary) == "pending"
    resp = await client.post("/payment/pay_qr", headers=AUTH,
                             data={"vendor": "alipay", "amount": "9909", "currency": "USD",
                                   "reference": "m"})
    assert resp.status == 500 and (await resp.json())["code"] == 4000


def test_magic_file_covers_the_documented_table():
    magic = parse_scenario(shipped_scenarios()["magic"], "magic.yaml")
    suffixes = [r.amount_suffix for r in magic.rules]
    assert suffixes == [f"990{i}" for i in range(1, 10)]
    assert all(r.endpoints == frozenset({"pay", "pay_qr"}) for r in magic.rules)
    by_suffix = {r.amount_suffix: r for r in magic.rules}
    assert by_suffix["9904"].payment is not None and by_suffix["9904"].payment.after == 30
    assert by_suffix["9904"].ipn is not None and by_suffix["9904"].ipn.delay == 60
    assert by_suffix["9906"].ipn is not None and by_suffix["9906"].ipn.duplicates == 2
    assert by_suffix["9909"].api is not None and by_suffix["9909"].api.error == 4000
