"""A client that goes away mid-upload is not a server error: the pytest plugin's
``check_assertions`` (``sim.errors``) stays clean, nothing is logged as an error, the
ledger is untouched, and the merchant call is journalled as 499 (client closed)."""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
import time
import urllib.request

import pytest

from citcon_sim.testing import SimulatorServer


def wait_until(predicate, timeout: float = 5.0) -> None:
    # The server handles the disconnect on its own thread: wait (bounded) for it.
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "the server did not get there in time"
        time.sleep(0.01)


def handling(server: SimulatorServer) -> int:
    """Requests the server is handling now (aiohttp runs each as a task)."""
    def count() -> int:
        return sum(t.get_coro().__qualname__.endswith("_handle_request")
                   for t in asyncio.all_tasks())
    return server.call(count)


def upload_and_leave(server: SimulatorServer, path: str, *, reset: bool) -> None:
    host, port = server.base_url.removeprefix("http://").rsplit(":", 1)
    sock = socket.create_connection((host, int(port)))
    method = "PUT" if path == "/_sim/state" else "POST"
    sock.sendall((f"{method} {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                  "Authorization: Bearer test-token\r\n"
                  "Content-Type: application/x-www-form-urlencoded\r\n"
                  "Content-Length: 100000\r\n\r\nvendor=alipay&amount=").encode())
    wait_until(lambda: handling(server) == 1)  # the server is reading the body
    if reset:  # RST instead of FIN
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


@pytest.mark.parametrize("reset", [False, True])
def test_a_client_leaving_mid_upload_is_not_a_server_error(caplog, reset):
    caplog.set_level(logging.INFO)
    with SimulatorServer() as server:
        for path in ("/_sim/clock/advance", "/_sim/scenarios", "/_sim/state"):
            upload_and_leave(server, path, reset=reset)
            wait_until(lambda: handling(server) == 0)
        upload_and_leave(server, "/payment/pay_qr", reset=reset)
        wait_until(lambda: server.call(lambda: len(server.simulator.journal.query(limit=5))))
        entry = server.call(lambda: server.simulator.journal.query(limit=1)[0].as_dict())
        assert entry["status"] == 499, entry
        # A normal call still works afterwards, and the server saw no error.
        with urllib.request.urlopen(server.url_for("/_sim/health")) as resp:
            assert resp.status == 200
        server.check_assertions()
        assert server.call(lambda: (server.simulator.errors, len(
            server.simulator.ledger.by_id))) == ([], 0)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]


pytest_plugins = ["pytester"]


def test_the_merchants_own_test_passes_through_the_plugin(pytester):
    """The reported symptom: a merchant test whose client gives up mid-upload failed in
    teardown with ServerError (ConnectionResetError). It passes now, twice over."""
    pytester.makepyfile('''
        import socket, time

        def leave_mid_upload(citcon_sim):
            host, port = citcon_sim.base_url.removeprefix("http://").rsplit(":", 1)
            sock = socket.create_connection((host, int(port)))
            sock.sendall(b"POST /payment/pay_qr HTTP/1.1\\r\\nHost: x\\r\\n"
                         b"Authorization: Bearer shop\\r\\nContent-Length: 5000\\r\\n\\r\\na=")
            time.sleep(0.2)  # the server starts reading the body (wall-clock I/O)
            sock.close()
            deadline = time.monotonic() + 5
            while not citcon_sim.requests() and time.monotonic() < deadline:
                time.sleep(0.01)

        def test_one(citcon_sim):
            leave_mid_upload(citcon_sim)

        def test_two(citcon_sim):
            leave_mid_upload(citcon_sim)
    ''')
    result = pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", "-o", "asyncio_default_fixture_loop_scope=function")
    result.assert_outcomes(passed=2)
