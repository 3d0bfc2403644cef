"""The thread runner's UPI helpers, used the way a merchant's synchronous test suite
would: a token without an HTTP round trip, the landing URL, the JSON IPN waited for."""

from __future__ import annotations

import pytest

from citcon_sim import SimulatorServer, verify_upi_ipn
from citcon_sim.domain.errors import Unauthorized

from .helpers import frozen_config
from .upi_support import KEY, charge_body, post


def test_helpers_drive_a_upi_charge(threaded_receiver):
    with SimulatorServer(frozen_config()) as sim:
        token = sim.upi_access_token(KEY)
        status, answer = post(sim.url_for("/v1/charges"),
                              charge_body(reference="sync-1", ipn=threaded_receiver.url),
                              token)
        assert status == 200, answer
        txn_id = answer["data"]["id"]
        assert sim.upi_landing_url(txn_id) == answer["data"]["payment"]["client"][0]["content"]
        sim.pay(txn_id)
        notification = sim.wait_for_ipn(txn_id)
        assert verify_upi_ipn(notification["form"], KEY)
        sim.advance(86400)
        status, answer = post(sim.url_for("/v1/charges"), charge_body(reference="sync-2"),
                              token)
        assert status == 401 and answer["data"]["code"] == "4010"
        with pytest.raises(ValueError):
            sim.upi_access_token(KEY, "admin")


def test_access_token_helper_honours_strict_mode(tmp_path):
    path = tmp_path / "merchants.yaml"
    path.write_text(f"merchants:\n  - token: {KEY}\n", encoding="utf-8")
    with SimulatorServer(frozen_config(merchants_file=path)) as sim:
        assert sim.upi_access_token(KEY).startswith("UPI_")
        with pytest.raises(Unauthorized):
            sim.upi_access_token("sk-unlisted")
