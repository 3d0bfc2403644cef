"""The dashboard's live streams are capped (``--max-event-streams``): a new one ends the
oldest with a ``dropped`` event and a long ``retry:`` (that page polls instead of pushing
another one out), and each event is encoded once for every stream."""

from __future__ import annotations

import asyncio

from citcon_sim import Simulator, create_app
from citcon_sim.web.dashboard import DROPPED_RETRY_MS, HUB, Hub

from .helpers import create, frozen_config
from .test_dashboard import TIMEOUT, next_event, open_stream


async def rest_of(stream) -> bytes:
    return await asyncio.wait_for(stream.content.read(), TIMEOUT)


async def test_a_new_stream_past_the_cap_ends_the_oldest(aiohttp_client):
    sim = Simulator(frozen_config(max_event_streams=2))
    client = await aiohttp_client(create_app(sim))
    hub = client.app[HUB]
    assert hub.max_clients == 2
    first, second = await open_stream(client), await open_stream(client)
    third = await open_stream(client)
    notice = await next_event(first, "dropped")
    assert "more than 2 live dashboards" in notice["reason"]
    assert notice["max_event_streams"] == 2
    assert (await rest_of(first)).strip() == b""  # and the stream ends
    assert len(hub.clients) == 2 and hub.dropped == 1
    await create(client)
    for stream in (second, third):  # the others still hear everything
        assert (await next_event(stream, "txn"))["kind"] == "created"
    fourth = await open_stream(client)
    assert (await next_event(second, "dropped"))["max_event_streams"] == 2
    await create(client, reference="order-2")
    for stream in (third, fourth):
        assert (await next_event(stream, "txn"))["kind"] == "created"
    for stream in (second, third, fourth):
        stream.close()


async def test_the_dropped_page_is_told_to_wait_before_reconnecting(aiohttp_client):
    client = await aiohttp_client(create_app(Simulator(frozen_config(max_event_streams=1))))
    first = await open_stream(client)
    second = await open_stream(client)
    text = (await rest_of(first)).decode()
    assert f"retry: {DROPPED_RETRY_MS}\nevent: dropped\n" in text
    second.close()


def test_an_event_is_encoded_once_for_every_stream():
    hub = Hub(Simulator(frozen_config()), max_clients=50)
    clients = [hub.connect() for _ in range(50)]
    hub.publish("clock", {"time": "now"})
    sent = [c.queue.get_nowait() for c in clients]
    assert all(message is sent[0] for message in sent)
    hub.connect()  # the 51st pushes the first out: its queue ends
    assert clients[0].queue.get_nowait().startswith(b"retry: ")
    assert clients[0].queue.get_nowait() is None
    assert len(hub.clients) == 50
