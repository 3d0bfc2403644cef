"""Virtual time stays where every answer can show it: a clock move past the supported
range is a 400 that changes nothing, and so is a start time outside it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from citcon_sim import Config
from citcon_sim.config import LATEST_TIME

from .helpers import client_for, create, expect_error

TEN_YEARS = 10 * 365 * 86400


async def test_advancing_past_the_supported_range_is_refused(aiohttp_client):
    start = datetime(9890, 6, 1, tzinfo=UTC)
    client, sim = await client_for(aiohttp_client, start_time=start)
    txn_id = await create(client)
    before = sim.clock.time()
    body = await expect_error(await client.post("/_sim/clock/advance",
                                                data={"seconds": str(TEN_YEARS)}))
    assert "9900-01-01" in body["message"]
    assert sim.clock.time() == before and not sim.errors
    # Everything still answers, at the latest time allowed too.
    ok = await client.post("/_sim/clock/advance",
                           data={"seconds": str(LATEST_TIME.timestamp() - before - 1)})
    assert ok.status == 200, await ok.text()
    for path in ("/_sim/clock", f"/_sim/transactions/{txn_id}", "/_sim/dashboard/state",
                 "/_sim/state", "/_sim/transactions"):
        resp = await client.get(path)
        assert resp.status == 200, (path, await resp.text())
    await create(client, reference="late-order")
    await expect_error(await client.post("/_sim/clock/advance", data={"seconds": "1"}))
    assert not sim.errors


@pytest.mark.parametrize("when", [datetime(9999, 12, 31), datetime(9900, 1, 1, tzinfo=UTC),
                                  datetime(1, 1, 1), datetime(1969, 12, 31, tzinfo=UTC)])
def test_start_time_outside_the_range_is_a_config_error(when):
    with pytest.raises(ValueError, match="start_time: .*outside the supported range"):
        Config(start_time=when)


def test_start_time_inside_the_range_is_fine():
    assert Config(start_time=datetime(9899, 12, 31)).start_time is not None
    assert Config(start_time=datetime(1970, 1, 2, tzinfo=UTC)).start_time is not None
