"""One set of bounds for scripted behaviour (issue 13, item 11).

``ipn.delay: 400000000`` once loaded as a scenario, and the state file holding a payment
scripted with it then refused to load. The scenario loader and the state reader now use
the same bounds (``citcon_sim.domain.scripts.SCRIPT_BOUNDS``): whatever a scenario may
script, the state file holding it loads again, and anything beyond is refused by both.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from citcon_sim import Config, Simulator
from citcon_sim.domain.errors import StateError
from citcon_sim.domain.scripts import MAX_SCRIPT_SECONDS, MAX_TAMPER, SCRIPT_BOUNDS
from citcon_sim.faces.online import requests
from citcon_sim.persistence.state import restore, snapshot
from citcon_sim.scenarios import ScenarioError, parse_scenario

from .helpers import START, TOKEN

SCHEMA = Path(__file__).parent.parent / "citcon_sim" / "scenario.schema.json"


def rule(section: str, key: str, value: Any) -> str:
    extra = "outcome: pay, " if section == "payment" else ""
    return (f"name: bounds\nrules:\n  - match: {{reference: 'b-*'}}\n"
            f"    {section}: {{{extra}{key}: {value}}}\n")


def test_the_schema_file_carries_the_bounds_the_code_uses() -> None:
    """Editors validate with the file; the loader applies SCRIPT_BOUNDS: the same."""
    defs = json.loads(SCHEMA.read_text("utf-8"))["$defs"]
    for (section, key), (low, high) in SCRIPT_BOUNDS.items():
        node = defs[section]["properties"][key]
        assert (node["minimum"], node["maximum"]) == (low, high), (section, key)
    assert MAX_SCRIPT_SECONDS == 30 * 86400


@pytest.mark.parametrize(("section", "key", "value"), [
    ("ipn", "delay", 400_000_000),  # the reported value
    ("ipn", "delay", MAX_SCRIPT_SECONDS + 1),
    ("payment", "after", MAX_SCRIPT_SECONDS + 0.5),
    ("ipn", "duplicates", 21),
    ("ipn", "tamper_amount", MAX_TAMPER + 1),
    ("ipn", "tamper_amount", -MAX_TAMPER - 1),
])
def test_a_scenario_beyond_the_bounds_is_refused(section: str, key: str, value: Any) -> None:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(rule(section, key, value))
    assert key in str(info.value)


def test_a_state_beyond_the_bounds_is_refused_with_its_path() -> None:
    sim = Simulator(Config(frozen_clock=True, start_time=START))
    txn = _scripted(sim, MAX_SCRIPT_SECONDS)
    data = json.loads(json.dumps(snapshot(sim)))
    assert data["transactions"][0]["script"]["payment"]["after"] == MAX_SCRIPT_SECONDS
    restore(sim, data)  # at the bounds: loads
    data["transactions"][0]["script"]["ipn"]["delay"] = MAX_SCRIPT_SECONDS + 1
    with pytest.raises(StateError) as info:
        restore(sim, data)
    assert "script.ipn.delay" in str(info.value) and txn.id in str(info.value)


def _scripted(sim: Simulator, delay: float, after: float | None = None) -> Any:
    text = (f"name: edge\nrules:\n  - match: {{reference: 'b-*'}}\n"
            f"    payment: {{outcome: pay, after: {after if after is not None else delay}}}\n"
            f"    ipn: {{delay: {delay}, duplicates: 20, tamper_amount: {-MAX_TAMPER}}}\n")
    sim.scenarios.load(parse_scenario(text))
    merchant = sim.ledger.merchant(TOKEN)
    params = {"vendor": "alipay", "amount": "100", "currency": "USD", "reference": "b-1",
              "ipn_url": "http://127.0.0.1:9/ipn"}
    rule_ = sim.scenarios.decide(_facts(params))
    txn, _ = sim.ledger.create_payment(merchant, requests.parse_payment(params, "pay_qr", rule_))
    return txn


def _facts(params: dict[str, str]) -> Any:
    from citcon_sim.domain.scripts import RequestFacts

    return RequestFacts(token=TOKEN, endpoint="pay_qr", vendor="alipay", amount=100,
                        currency="USD", reference=params["reference"], face="online")


def test_whatever_a_scenario_may_script_a_state_file_loads_again(tmp_path: Path) -> None:
    path = tmp_path / "state.jsonl"
    config = Config(frozen_clock=True, start_time=START, state_file=path)
    sim = Simulator(config)
    txn = _scripted(sim, MAX_SCRIPT_SECONDS, after=0)  # paid at once, IPN 30 days late
    assert txn.status.value == "success" and sim.ipn.for_transaction(txn.id)
    assert sim.persistence is not None
    sim.persistence.close()
    sim2 = Simulator(config)  # the journal replays
    restored = sim2.ledger.by_id[txn.id]
    assert restored.script is not None and restored.script.ipn is not None
    assert restored.script.ipn.delay == MAX_SCRIPT_SECONDS
    (note,) = sim2.ipn.for_transaction(txn.id)
    assert note.script is not None and note.script.duplicates == 20
    assert sim2.persistence is not None
    sim2.persistence.close()
