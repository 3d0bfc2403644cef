"""Limits for shared deployments: slow request heads and bodies time out, open
connections are capped (half-open ones make room for real calls), and repeated log lines
are summarised. These are wall-clock behaviours: each test shortens its timeouts through
the settings and waits (bounded) on real sockets."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import time
import urllib.request
from collections.abc import Iterator

import pytest
from click.testing import CliRunner

from citcon_sim import Config
from citcon_sim.cli import main
from citcon_sim.testing import SimulatorServer
from citcon_sim.web.limits import LIMITED_LOGGERS, RepeatLimit, limit_repeats

WAIT = 5.0  # wall seconds any one answer may take here; each normally takes milliseconds


def server(**settings: object) -> SimulatorServer:
    return SimulatorServer(Config(frozen_clock=True, port=0, **settings))  # type: ignore[arg-type]


def connect(srv: SimulatorServer) -> socket.socket:
    host, port = srv.base_url.removeprefix("http://").rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=WAIT)
    return sock


def closed_by_server(sock: socket.socket, within: float = WAIT) -> bytes | None:
    """Everything the server sent before closing, or None if it kept it open."""
    sock.settimeout(within)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except TimeoutError:
        return None
    except ConnectionResetError:
        pass
    return data


def still_open(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        return sock.recv(1) != b""
    except BlockingIOError:
        return True
    except ConnectionResetError:
        return False
    finally:
        sock.setblocking(True)


def health(srv: SimulatorServer) -> int:
    with urllib.request.urlopen(srv.url_for("/_sim/health"), timeout=WAIT) as resp:
        return int(resp.status)


HEAD = ("POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer test-token\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {length}\r\n\r\n")
FORM = "vendor=alipay&amount=100&currency=USD&reference=slow-1"


@contextlib.contextmanager
def sockets(srv: SimulatorServer, n: int) -> Iterator[list[socket.socket]]:
    opened = [connect(srv) for _ in range(n)]
    try:
        yield opened
    finally:
        for sock in opened:
            sock.close()


# -- request heads ---------------------------------------------------------------------------


def test_a_slow_or_missing_request_head_is_closed():
    with server(idle_timeout=0.3) as srv, sockets(srv, 2) as (silent, dribbling):
        dribbling.sendall(b"GET /_sim/health HTTP/1.1\r\nHo")
        started = time.monotonic()
        assert closed_by_server(silent) == b""
        assert closed_by_server(dribbling) == b""
        assert time.monotonic() - started < WAIT
        assert health(srv) == 200


def test_an_idle_keep_alive_connection_is_closed_after_the_idle_timeout():
    with server(idle_timeout=0.3) as srv, sockets(srv, 1) as (sock,):
        sock.sendall(b"GET /_sim/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        answer = closed_by_server(sock)
        assert answer is not None and answer.startswith(b"HTTP/1.1 200")


def test_the_default_idle_timeout_keeps_a_connection_between_calls():
    with server() as srv, sockets(srv, 1) as (sock,):
        for _ in range(2):
            sock.sendall(b"GET /_sim/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            sock.settimeout(WAIT)
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        assert still_open(sock)


# -- request bodies --------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/payment/pay_qr", "/_sim/clock/advance", "/_sim/scenarios"])
def test_a_slow_body_gets_408_and_changes_nothing(path):
    with server(body_timeout=0.3) as srv, sockets(srv, 1) as (sock,):
        sock.sendall(HEAD.format(path=path, length=1000).encode() + b"seconds=60&vendor=")
        answer = closed_by_server(sock)
        assert answer is not None, "the server kept waiting"
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408"), answer
        assert b"Connection: close" in head
        envelope = json.loads(body)
        assert envelope["result"] == "fail" and envelope["code"] == 4100
        assert "did not arrive within 0.3 s" in envelope["message"]
        state = srv.call(lambda: (len(srv.simulator.ledger.by_id), srv.simulator.clock.time(),
                                  srv.simulator.scenarios.describe(None)["global"]))
        assert state[0] == 0 and state[2] == []
        srv.check_assertions()  # a slow client is not a server error
        assert health(srv) == 200


def test_a_body_in_pieces_within_the_timeout_is_served():
    with server(body_timeout=2.0) as srv, sockets(srv, 1) as (sock,):
        sock.sendall(HEAD.format(path="/payment/pay_qr", length=len(FORM)).encode()
                     + FORM[:10].encode())
        time.sleep(0.1)  # a slow (but not too slow) client: real time
        sock.sendall(FORM[10:].encode())
        sock.settimeout(WAIT)
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        assert srv.call(lambda: len(srv.simulator.ledger.by_id)) == 1


# -- connections -----------------------------------------------------------------------------


def handling(srv: SimulatorServer) -> int:
    """Requests the server is handling now (aiohttp runs each as a task)."""
    def count() -> int:
        return sum(t.get_coro().__qualname__.endswith("_handle_request")  # type: ignore[union-attr]
                   for t in asyncio.all_tasks())
    return srv.call(count)


def wait_until(predicate, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "the server did not get there in time"
        time.sleep(0.01)


def test_half_open_connections_make_room_for_real_calls():
    """50 half-open sockets against a cap of 20: the oldest idle ones are closed, and a
    normal call is still answered at once."""
    with server(max_connections=20, idle_timeout=60) as srv, sockets(srv, 50) as half_open:
        for sock in half_open:
            sock.sendall(b"GET /_sim/health HTTP/1.1\r\nHost: 1")
        assert health(srv) == 200
        assert all(closed_by_server(s) == b"" for s in half_open[:30])  # the oldest went
        assert sum(still_open(s) for s in half_open) <= 20
        assert still_open(half_open[-1])
        assert health(srv) == 200


def test_when_every_connection_is_busy_the_new_one_is_refused():
    with server(max_connections=3, body_timeout=60) as srv, sockets(srv, 3) as busy:
        for sock in busy:  # each in the middle of a request body
            sock.sendall(HEAD.format(path="/payment/pay_qr", length=len(FORM)).encode()
                         + FORM[:5].encode())
        wait_until(lambda: handling(srv) == 3)  # the server is in all three requests
        with sockets(srv, 1) as (extra,):
            assert closed_by_server(extra) == b""
        assert all(still_open(s) for s in busy)
        busy[0].sendall(FORM[5:].encode())  # the busy ones are served in full
        busy[0].settimeout(WAIT)
        assert busy[0].recv(65536).startswith(b"HTTP/1.1 200")


# -- log lines -------------------------------------------------------------------------------


def record(msg: str, *args: object, name: str = "citcon_sim") -> logging.LogRecord:
    return logging.LogRecord(name, logging.ERROR, __file__, 1, msg, args, None)


def test_repeated_log_lines_are_counted_not_written():
    now = [0.0]
    limit = RepeatLimit(3, window=60, clock=lambda: now[0])
    passed = [limit.filter(record("failed for %s", i)) for i in range(10)]
    assert passed == [True] * 3 + [False] * 7
    assert limit.filter(record("another kind of line"))  # its own count
    assert limit.filter(record("failed for %s", 1, name="aiohttp.server"))
    now[0] = 61.0  # the next window: the first one says what was left out
    summary = record("failed for %s", 99)
    assert limit.filter(summary)
    assert summary.getMessage() == ("failed for 99 (7 more like this were not logged in the "
                                    "previous 60 s)")
    again = record("failed for %s", 100)
    assert limit.filter(again) and again.getMessage() == "failed for 100"


def test_the_access_log_and_a_zero_limit_are_not_limited():
    limit = RepeatLimit(1)
    assert all(limit.filter(record("GET /x", name="aiohttp.access")) for _ in range(5))
    limit.limit = 0
    assert all(limit.filter(record("same")) for _ in range(5))


def test_a_flood_of_bad_requests_logs_a_bounded_number_of_lines(caplog):
    caplog.set_level(logging.INFO)
    limit_repeats(5)  # as citcon-sim serve sets it up from --log-repeats
    with server(log_repeats=5) as srv:
        for _ in range(30):
            with sockets(srv, 1) as (sock,):
                sock.sendall(b"GET / HTTP/1.1\r\nBad Header Line\r\n\r\n")
                assert closed_by_server(sock, WAIT).startswith(b"HTTP/1.")  # type: ignore[union-attr]
        assert health(srv) == 200
    lines = [r for r in caplog.records if r.name == "aiohttp.server"]
    assert 1 <= len(lines) <= 5, [r.getMessage() for r in lines]


def test_serve_takes_the_limits_from_flags_and_variables(monkeypatch):
    seen: list[Config] = []

    async def fake_serve(sim, **_: object) -> None:
        seen.append(sim.config)

    monkeypatch.setattr("citcon_sim.cli.serve_forever", fake_serve)
    result = CliRunner().invoke(main, [
        "serve", "--idle-timeout", "5", "--body-timeout", "7", "--max-connections", "9",
        "--max-event-streams", "3", "--log-repeats", "0", "--allowed-hosts", "a.example"],
        env={"CITCON_SIM_ALLOWED_HOSTS": "ignored.example"})
    assert result.exit_code == 0, result.output
    config = seen[-1]
    assert (config.idle_timeout, config.body_timeout, config.max_connections,
            config.max_event_streams, config.log_repeats) == (5.0, 7.0, 9, 3, 0)
    assert config.allowed_hosts == ["a.example"]
    result = CliRunner().invoke(main, ["serve"], env={
        "CITCON_SIM_ALLOWED_HOSTS": "a.example, .b.example c.example:8080"})
    assert result.exit_code == 0, result.output
    assert seen[-1].allowed_hosts == ["a.example", ".b.example", "c.example:8080"]
    bad = CliRunner().invoke(main, ["serve", "--max-connections", "0"])
    assert bad.exit_code == 2 and "--max-connections" in bad.output


def test_a_library_app_leaves_the_process_logging_alone():
    from citcon_sim import Simulator, create_app

    create_app(Simulator(Config(log_repeats=2)))  # a test suite's or a library user's app
    for name in (*LIMITED_LOGGERS, ""):
        logger = logging.getLogger(name)
        assert not any(isinstance(f, RepeatLimit)
                       for target in (logger, *logger.handlers) for f in target.filters)


def test_setting_the_limit_again_starts_the_counts_afresh():
    limit_repeats(2)
    shared = next(f for f in logging.getLogger("citcon_sim").filters
                  if isinstance(f, RepeatLimit))
    assert [shared.filter(record("x %s", i)) for i in range(3)] == [True, True, False]
    limit_repeats(2)
    assert shared.filter(record("x %s", 3))


def test_the_cap_stays_below_the_file_limit(monkeypatch, caplog):
    import resource

    from citcon_sim.web.limits import SPARE_FDS, usable_connections

    monkeypatch.setattr(resource, "getrlimit", lambda _: (256, 4096))
    assert usable_connections(100) == 100
    assert usable_connections(512) == 256 - SPARE_FDS
    assert "ulimit -n 256" in caplog.text


def test_repeats_are_counted_by_template_before_the_address_is_filled_in():
    from aiohttp import web

    from citcon_sim.web import security
    from citcon_sim.web.security import ScrubParseErrors

    security.setup(web.Application())
    limit_repeats(20)
    filters = logging.getLogger("aiohttp.server").filters
    assert isinstance(filters[0], RepeatLimit)
    assert any(isinstance(f, ScrubParseErrors) for f in filters[1:])
