"""A client generated from ``/openapi.json`` works: openapi-python-client builds it from the
served document (offline, into a temporary directory), every generated module imports, and
its calls create, pay and inquire a payment on a real server on 127.0.0.1."""

from __future__ import annotations

import importlib
import json
import pkgutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest

from citcon_sim import Config
from citcon_sim.testing import SimulatorServer

from .conftest import START

pytest.importorskip("openapi_python_client")
pytestmark = pytest.mark.slow  # generates and imports a client package

PACKAGE = "citcon_sim_generated_client"
TOKEN = "generated-client-merchant"


@pytest.fixture(scope="module")
def server() -> Iterator[SimulatorServer]:
    with SimulatorServer(Config(frozen_clock=True, start_time=START, seed=7)) as srv:
        yield srv


@pytest.fixture(scope="module")
def client_package(server: SimulatorServer,
                   tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    root = tmp_path_factory.mktemp("generated")
    spec = root / "openapi.json"
    with urllib.request.urlopen(server.url_for("/openapi.json"), timeout=10) as resp:
        spec.write_bytes(resp.read())
    done = subprocess.run(
        [sys.executable, "-m", "openapi_python_client", "generate", "--path", str(spec),
         "--meta", "none", "--output-path", str(root / PACKAGE)],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    sys.path.insert(0, str(root))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(root))
        for name in [n for n in sys.modules if n == PACKAGE or n.startswith(PACKAGE + ".")]:
            del sys.modules[name]


def _module(package: ModuleType, name: str) -> Any:
    return importlib.import_module(f"{package.__name__}.{name}")


def test_every_generated_module_imports(client_package: ModuleType) -> None:
    failed = {}
    names = [m.name for m in pkgutil.walk_packages(client_package.__path__,
                                                   client_package.__name__ + ".")]
    for name in names:
        try:
            importlib.import_module(name)
        except Exception as exc:  # every failure is reported, not just the first
            failed[name] = f"{type(exc).__name__}: {exc}"
    assert not failed, failed
    api = {n.rsplit(".", 1)[1] for n in names if ".api.merchant." in n}
    assert {"pay_qr_post", "pay_post", "inquire_post", "refund", "cancel", "capture"} <= api


def test_pay_qr_and_inquire_through_the_generated_client(
    client_package: ModuleType, server: SimulatorServer
) -> None:
    models = _module(client_package, "models")
    pay_qr_post = _module(client_package, "api.merchant.pay_qr_post")
    inquire_post = _module(client_package, "api.merchant.inquire_post")
    form = models.PaymentForm(vendor=models.PaymentFormVendor.ALIPAY, reference="gen-1",
                              amount=1000, currency="USD", timeout=600)
    with client_package.AuthenticatedClient(base_url=server.base_url, token=TOKEN) as client:
        created = pay_qr_post.sync_detailed(client=client, body=form)
        assert created.status_code == 200, created.content
        url = created.parsed
        assert isinstance(url, str) and url.startswith(server.base_url + "/payment/qr?q=")
        txn_id = url.split("q=", 1)[1]
        assert server.transaction(txn_id)["reference"] == "gen-1"  # a form body, Bearer auth

        charge = inquire_post.sync(client=client,
                                   body=models.InquireForm(transaction_id=txn_id))
        assert isinstance(charge, models.Charge), charge
        assert (charge.id, charge.amount, charge.currency, charge.reference) == (
            txn_id, 1000, "USD", "gen-1")
        assert charge.status is None and charge.method == models.ChargeMethod.PAY_QR

        server.pay(txn_id)
        paid = inquire_post.sync(client=client, body=models.InquireForm(reference="gen-1"))
        assert isinstance(paid, models.Charge) and paid.id == txn_id
        assert paid.to_dict()["status"] == "success"

        unknown = inquire_post.sync(client=client, body=models.InquireForm(
            transaction_id="U0000000000-nope"))
        assert isinstance(unknown, models.ErrorEnvelope) and unknown.code == 4100

    with client_package.Client(base_url=server.base_url) as anonymous:
        refused = pay_qr_post.sync_detailed(client=anonymous, body=form)
    assert refused.status_code == 401
    assert json.loads(refused.content)["result"] == "fail"
    server.check_assertions()


def test_the_document_names_no_body_a_generator_cannot_send(server: SimulatorServer) -> None:
    """Form bodies are plain objects (a client model), not unions a generator gives up on."""
    with urllib.request.urlopen(server.url_for("/openapi.json"), timeout=10) as resp:
        doc = json.load(resp)
    schemas = doc["components"]["schemas"]
    checked = 0
    for item in doc["paths"].values():
        for op in item.values():
            form = op.get("requestBody", {}).get("content", {}).get(
                "application/x-www-form-urlencoded")
            if form is None:
                continue
            schema = form["schema"]
            if "$ref" in schema:
                schema = schemas[schema["$ref"].rsplit("/", 1)[1]]
            assert schema.get("type") == "object" and "properties" in schema, schema
            assert not {"anyOf", "oneOf"} & set(schema), schema  # rules go inside allOf
            checked += 1
    assert checked >= 8

