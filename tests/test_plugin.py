"""The pytest plugin, exercised as a merchant's suite uses it: inner test files run by
``pytester`` against the fixtures the ``pytest11`` entry point registers."""

from __future__ import annotations

import importlib.metadata
import re
import socket
import textwrap
from pathlib import Path

import pytest
import yaml  # noqa: F401

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.slow  # every test runs an inner pytest session

# yaml is imported here so that the inner runs share this one: pytester drops modules an
# in-process run imported, and PyYAML imported afresh over its C loader fails to parse.

README = Path(__file__).resolve().parent.parent / "README.md"

# The README's merchant test, used until README.md carries it as a fenced block tagged
# ```python title="test_checkout.py" (then the README's text is what runs).
CHECKOUT_EXAMPLE = '''\
import json
from urllib.parse import urlencode
from urllib.request import Request, urlopen


def citcon(sim, endpoint, **form):  # what your backend's Citcon client does
    request = Request(sim.url_for(f"/payment/{endpoint}"), urlencode(form).encode(),
                      {"Authorization": "Bearer my-token"})
    with urlopen(request) as response:
        return json.load(response)


def test_checkout(citcon_sim):
    created = citcon(citcon_sim, "pay_qr", vendor="alipay", amount=1000, currency="USD",
                     reference="order-1", response_format="json")
    citcon_sim.pay(created["transaction_id"])  # the consumer scans the QR and pays
    assert citcon(citcon_sim, "inquire", reference="order-1")["status"] == "success"
'''

# Shared by the inner suites: a merchant's HTTP calls and a real IPN receiver.
MERCHANT = '''
import json
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlencode

import pytest

TOKEN = "shop-token"


def call(sim, endpoint, token=TOKEN, **form):
    """A merchant API call; answers (HTTP status, JSON body)."""
    data = urlencode({k: str(v) for k, v in form.items()}).encode()
    request = urllib.request.Request(sim.url_for(f"/payment/{endpoint}"), data,
                                     {"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.load(exc)


def create(sim, **form):
    fields = {"vendor": "alipay", "amount": 1000, "currency": "USD",
              "reference": "order-1", "response_format": "json", **form}
    status, body = call(sim, "pay_qr", **fields)
    assert status == 200, body
    return body["transaction_id"]


class Receiver:
    """The merchant's IPN endpoint: its URL, and the forms it received."""

    def __init__(self, url):
        self.url, self.received = url, []


@pytest.fixture
def receiver():
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"])).decode()
            got.received.append(dict(parse_qsl(body, keep_blank_values=True)))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    got = Receiver(f"http://127.0.0.1:{server.server_address[1]}/ipn")
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield got
    server.shutdown()
    server.server_close()
    thread.join(10)
'''


def merchant_suite(pytester: pytest.Pytester, conftest_extra: str = "") -> None:
    pytester.makeconftest(MERCHANT + conftest_extra)


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    # In process, the outer filterwarnings=error holds: set the option pytest-asyncio (a
    # test dependency, autoloaded in the inner run too) warns about when it is unset.
    return pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", "-o", "asyncio_default_fixture_loop_scope=function", *args)


def readme_example() -> str:
    """The README's ```python title="test_checkout.py" block, else CHECKOUT_EXAMPLE."""
    found = re.search(r'^```python title="test_checkout\.py"\n(.*?)^```', README.read_text(),
                      re.S | re.M)
    return found.group(1) if found else CHECKOUT_EXAMPLE


# -- registration ------------------------------------------------------------------------------


def test_the_plugin_is_registered_through_a_pytest11_entry_point(
    pytester: pytest.Pytester,
) -> None:
    points = [e for e in importlib.metadata.entry_points(group="pytest11")
              if e.name == "citcon_sim"]
    assert [e.value for e in points] == ["citcon_sim.pytest_plugin"]
    pytester.makepyfile("def test_it(citcon_sim):\n    assert citcon_sim.running\n")
    run(pytester).assert_outcomes(passed=1)
    # Blocking the entry point's name removes the fixtures: nothing else provides them.
    result = run(pytester, "-p", "no:citcon_sim")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'citcon_sim' not found*"])


def test_the_readme_merchant_test_runs_verbatim(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_checkout=readme_example())
    run(pytester).assert_outcomes(passed=1)


# -- the citcon_sim fixture --------------------------------------------------------------------


def test_a_checkout_paid_notified_and_journaled(pytester: pytest.Pytester) -> None:
    merchant_suite(pytester)
    pytester.makepyfile(test_flow='''
        from citcon_sim import verify_ipn
        from conftest import TOKEN, call, create


        def test_pay_and_receive_the_ipn(citcon_sim, receiver):
            txn_id = create(citcon_sim, ipn_url=receiver.url)
            assert citcon_sim.transaction(txn_id)["status"] is None
            citcon_sim.pay(txn_id)
            notification = citcon_sim.wait_for_ipn(txn_id)
            assert notification["state"] == "delivered"
            assert receiver.received == [notification["form"]]
            assert verify_ipn(receiver.received[0], TOKEN)
            assert citcon_sim.ipn_log(txn_id) == [notification]
            status, body = call(citcon_sim, "inquire", transaction_id=txn_id)
            assert (status, body["status"]) == (200, "success")


        def test_the_clock_expires_an_unpaid_qr(citcon_sim):
            txn_id = create(citcon_sim, timeout=60)
            citcon_sim.advance(60)
            assert call(citcon_sim, "inquire", transaction_id=txn_id)[1]["status"] == "expired"


        def test_a_scenario_declines(citcon_sim):
            citcon_sim.load_scenario("declines")
            txn_id = create(citcon_sim, reference="decline-42")
            assert citcon_sim.transaction(txn_id)["status"] == "fail"


        def test_the_request_journal(citcon_sim):
            txn_id = create(citcon_sim, reference="order-7")
            call(citcon_sim, "inquire", reference="order-7")
            journal = citcon_sim.requests()
            assert [e["endpoint"] for e in journal] == ["inquire", "pay_qr"]
            assert journal[1]["params"]["reference"] == "order-7"
            assert journal[1]["transaction_id"] == txn_id
    ''')
    run(pytester).assert_outcomes(passed=4)


def test_one_server_per_session_with_state_cleared_before_each_test(
    pytester: pytest.Pytester,
) -> None:
    merchant_suite(pytester)
    pytester.makepyfile(test_first='''
        from conftest import create

        SEEN = []


        def test_one(citcon_sim, receiver):
            citcon_sim.load_scenario("declines")
            txn_id = create(citcon_sim, ipn_url=receiver.url)
            citcon_sim.pay(txn_id)
            citcon_sim.wait_for_ipn(txn_id)
            citcon_sim.advance(3600)
            SEEN.append((citcon_sim.base_url, citcon_sim.simulator))


        def test_two(citcon_sim):
            assert SEEN == [(citcon_sim.base_url, citcon_sim.simulator)]  # the same server
            assert citcon_sim.transactions() == []
            assert citcon_sim.requests() == [] and citcon_sim.ipn_log() == []
            txn_id = create(citcon_sim, reference="decline-1")  # the scenario is gone
            assert citcon_sim.transaction(txn_id)["status"] is None
    ''')
    pytester.makepyfile(test_second='''
        import test_first


        def test_three(citcon_sim):  # another module, still the session's server
            assert test_first.SEEN[0][0] == citcon_sim.base_url
            assert citcon_sim.transactions() == []
    ''')
    run(pytester).assert_outcomes(passed=3)


def test_the_config_fixture_can_be_overridden_in_conftest(pytester: pytest.Pytester) -> None:
    merchant_suite(pytester, conftest_extra='''
from citcon_sim import Config


@pytest.fixture(scope="session")
def citcon_sim_config():
    return Config(frozen_clock=True, seed=42, journal_size=0, scenarios=["declines"])
''')
    pytester.makepyfile(test_config='''
        import pytest
        from citcon_sim.domain.ids import IdFactory
        from conftest import create


        @pytest.mark.parametrize("n", [1, 2])
        def test_configured(citcon_sim, n):
            assert citcon_sim.config.seed == 42
            txn_id = create(citcon_sim, reference=f"decline-{n}")
            if n == 1:  # the first id of the session, from the configured seed
                assert txn_id == IdFactory(42).transaction()
            assert citcon_sim.transaction(txn_id)["status"] == "fail"  # configured scenario
            assert citcon_sim.requests() == []  # journal_size=0 turns the journal off
    ''')
    run(pytester).assert_outcomes(passed=2)


# Magic amounts (docs/scenarios.md): a merchant suite's ordinary prices are never scripted.
MAGIC_SUITE = '''
    from conftest import call, create


    def test_99_05_is_an_ordinary_price(citcon_sim, receiver):
        txn_id = create(citcon_sim, amount=9905, ipn_url=receiver.url)
        assert citcon_sim.transaction(txn_id)["status"] is None
        citcon_sim.pay(txn_id)
        assert citcon_sim.wait_for_ipn(txn_id)["state"] == "delivered"
        assert [f["amount"] for f in receiver.received] == ["9905"]


    def test_199_09_is_created(citcon_sim):
        status, body = call(citcon_sim, "pay_qr", vendor="alipay", amount=19909,
                            currency="USD", reference="order-2", response_format="json")
        assert status == 200, body


    def test_one_test_opts_in(citcon_sim):
        citcon_sim.load_scenario("magic")
        assert citcon_sim.transaction(create(citcon_sim, amount=19901))["status"] == "fail"


    def test_the_next_test_is_ordinary_again(citcon_sim):
        assert citcon_sim.transaction(create(citcon_sim, amount=19901))["status"] is None
'''


def test_magic_amounts_are_off_in_the_fixture(pytester: pytest.Pytester) -> None:
    """The issue's "done when", in the pytest fixture: USD 99.05 is paid and notified."""
    merchant_suite(pytester)
    pytester.makepyfile(test_magic=MAGIC_SUITE)
    run(pytester).assert_outcomes(passed=4)


def test_the_ini_option_turns_magic_amounts_on(pytester: pytest.Pytester) -> None:
    merchant_suite(pytester)
    pytester.makeini("[pytest]\ncitcon_sim_magic_amounts = true\n")
    pytester.makepyfile(test_magic='''
        from conftest import call, create


        def test_scripted(citcon_sim, receiver):
            assert citcon_sim.config.magic_amounts
            txn_id = create(citcon_sim, amount=9905, ipn_url=receiver.url)
            assert citcon_sim.transaction(txn_id)["status"] == "success"
            assert citcon_sim.ipn_log(txn_id)[0]["state"] == "suppressed"
            status, body = call(citcon_sim, "pay_qr", vendor="alipay", amount=19909,
                                currency="USD", reference="order-2")
            assert (status, body["code"]) == (500, 4000)


        def test_made_servers_follow_it(make_citcon_sim):
            assert make_citcon_sim().config.magic_amounts
    ''')
    run(pytester).assert_outcomes(passed=2)


def test_the_session_server_listens_where_the_config_says(pytester: pytest.Pytester) -> None:
    with socket.socket() as probe:  # a port free now, for the inner session to take
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    pytester.makeconftest(f'''
import pytest
from citcon_sim import Config


@pytest.fixture(scope="session")
def citcon_sim_config():
    return Config(frozen_clock=True, port={port})
''')
    pytester.makepyfile(test_port=f'''
        def test_port(citcon_sim, make_citcon_sim):
            assert citcon_sim.base_url == "http://127.0.0.1:{port}"
            other = make_citcon_sim()  # the session's settings, on a free port
            assert other.config.port == 0 and other.base_url != citcon_sim.base_url
    ''')
    run(pytester).assert_outcomes(passed=1)


def test_the_default_config_takes_a_free_port(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_default='''
        def test_default(citcon_sim, citcon_sim_config):
            assert citcon_sim_config.port == 0
            assert not citcon_sim.base_url.endswith(":8080")
    ''')
    run(pytester).assert_outcomes(passed=1)


# -- make_citcon_sim ---------------------------------------------------------------------------


def test_make_citcon_sim_gives_independent_servers(pytester: pytest.Pytester) -> None:
    merchant_suite(pytester)
    pytester.makepyfile(test_factory='''
        import urllib.error
        import urllib.request

        import pytest
        from citcon_sim import Config
        from conftest import create

        MADE = []


        def test_make(citcon_sim, make_citcon_sim):
            a = make_citcon_sim()
            b = make_citcon_sim(Config(frozen_clock=True, timezone="Asia/Tokyo"))
            c = make_citcon_sim(seed=9)  # citcon_sim_config, with a change
            assert len({citcon_sim.base_url, a.base_url, b.base_url, c.base_url}) == 4
            assert b.config.timezone == "Asia/Tokyo" and c.config.seed == 9
            assert c.config.frozen_clock and citcon_sim.config.seed == 0
            txn_id = create(a)
            assert [t["id"] for t in a.transactions()] == [txn_id]
            assert b.transactions() == c.transactions() == citcon_sim.transactions() == []
            a.advance(1000)
            assert a.transaction(txn_id)["status"] == "expired"
            MADE.append(a.base_url)


        def test_made_servers_are_stopped_after_their_test():
            with pytest.raises(urllib.error.URLError):
                urllib.request.urlopen(MADE[0] + "/_sim/health", timeout=5)
    ''')
    run(pytester).assert_outcomes(passed=2)


# -- server-side errors ------------------------------------------------------------------------


def test_a_server_side_error_fails_the_test_with_the_re_raised_error(
    pytester: pytest.Pytester,
) -> None:
    merchant_suite(pytester)
    pytester.makepyfile(test_errors='''
        from conftest import call


        def broken(*args, **kwargs):
            raise ZeroDivisionError("the ledger broke")


        def test_the_merchant_code_copes(citcon_sim, monkeypatch):
            monkeypatch.setattr(citcon_sim.simulator.ledger, "inquire", broken)
            status, body = call(citcon_sim, "inquire", reference="order-1")
            assert body["code"] == 4000  # the merchant code saw a gateway error, and coped


        def test_the_merchant_code_does_not_cope(citcon_sim, monkeypatch):
            monkeypatch.setattr(citcon_sim.simulator.ledger, "inquire", broken)
            status, body = call(citcon_sim, "inquire", reference="order-1")
            assert body.get("status") == "success", "the merchant's own assertion"


        def test_the_next_test_starts_clean(citcon_sim):
            citcon_sim.check_assertions()
            assert call(citcon_sim, "inquire", reference="order-1")[1]["code"] == 4100
    ''')
    result = run(pytester)
    result.assert_outcomes(passed=1, failed=2)  # failures, not teardown errors
    out = result.stdout.str()
    # The test body passed: the server's error is raised with its own traceback.
    result.stdout.fnmatch_lines([
        "*_ test_the_merchant_code_copes _*",
        "*ZeroDivisionError: the ledger broke",
        "*direct cause of the following exception*",
        "*ServerError: the simulator failed while serving a request: ZeroDivisionError*",
    ])
    assert re.search(r"test_errors\.py:\d+: ZeroDivisionError", out)  # the server-side frame
    assert "pytest_plugin.py" not in out  # the plugin's own frames are hidden
    # The test failed anyway: its own failure comes first, the server's error as a note.
    result.stdout.fnmatch_lines([
        "*_ test_the_merchant_code_does_not_cope _*",
        "*the merchant's own assertion*",
        "*citcon-sim failed while serving a request during this test*",
        "*ZeroDivisionError: the ledger broke",
    ])


def test_a_made_servers_error_is_reported_at_teardown(pytester: pytest.Pytester) -> None:
    merchant_suite(pytester)
    pytester.makepyfile(test_made_errors='''
        from conftest import call


        def test_it(make_citcon_sim, monkeypatch):
            sim = make_citcon_sim()

            def broken(*args, **kwargs):
                raise KeyError("gone")

            monkeypatch.setattr(sim.simulator.ledger, "inquire", broken)
            assert call(sim, "inquire", reference="x")[1]["code"] == 4000
    ''')
    result = run(pytester)
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*ERROR at teardown of test_it*", "*ServerError*KeyError*"])


def test_the_plugin_leaves_tests_without_the_fixture_alone(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_plain=textwrap.dedent('''
        def test_plain():
            assert True


        def test_server_only(citcon_sim_server):
            assert citcon_sim_server.running
    '''))
    run(pytester).assert_outcomes(passed=2)
