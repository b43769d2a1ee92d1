"""The reference server keeps docs/crm-erp-api.yaml: schemathesis generates requests for every
operation it implements (valid and invalid ones) and checks each answer against the contract."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import schemathesis
import yaml
from hypothesis import HealthCheck, settings

from bot.adapters.sql import SqlStore
from bot.demo import load_demo
from bot.migrations import migrate
from bot.payments import PaymentLinkSigner
from bot.settings import DEFAULT_DEMO_DATA, Settings
from reference.server import IDEMPOTENCY_KEY, Credentials, ReferenceServer
from tests.conftest import TODAY

CONTRACT = Path(__file__).parents[2] / "docs" / "crm-erp-api.yaml"
TOKEN = "contract-token"


def implemented(context) -> bool:
    """Operations the reference server serves so far (the contract says which)."""
    return context.operation.definition.raw.get("x-reference-server") == "implemented"


schema = schemathesis.openapi.from_path(str(CONTRACT)).include(implemented)


@pytest.fixture(scope="module")
def reference_url(tmp_path_factory) -> Iterator[str]:
    url = f"sqlite:///{tmp_path_factory.mktemp('contract') / 'crm.db'}"
    migrate(url)
    store = SqlStore(url)
    load_demo(store, DEFAULT_DEMO_DATA, Settings.from_env({}), today=TODAY, force=True)
    signer = PaymentLinkSigner("contract-link-secret", "https://pagos.example.test/pagar", timedelta(hours=1))
    server = ReferenceServer(store, Credentials(frozenset({TOKEN})), link_signer=signer).start()
    yield server.url
    server.stop()
    store.dispose()


def test_the_contract_marks_which_operations_are_implemented():
    document = yaml.safe_load(CONTRACT.read_text())
    marks = {
        (method.upper(), path): operation.get("x-reference-server")
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in ("get", "post", "put", "patch", "delete")
    }
    assert set(marks.values()) == {"implemented", "not yet", "served by the assistant"}
    # The other direction: the CRM/ERP calls the assistant (tests/integration/test_notifications.py).
    assert {key for key, mark in marks.items() if mark == "served by the assistant"} == {("POST", "/events")}
    assert {key for key, mark in marks.items() if mark == "implemented"} == {
        ("GET", "/health"),
        ("GET", "/customers"),
        ("GET", "/customers/{customer_id}"),
        ("GET", "/customers/{customer_id}/orders"),
        ("GET", "/orders/{order_id}"),
        ("GET", "/orders"),  # the notification pull job
        ("GET", "/invoices"),
        ("GET", "/invoices/{invoice_id}/pdf"),  # invoices sent as documents
        ("GET", "/cases"),
        ("POST", "/cases"),
        ("GET", "/cases/{case_id}"),
        ("GET", "/cases/{case_id}/events"),  # agents working cases
        ("POST", "/cases/{case_id}/events"),
        # --- reschedule ---
        ("GET", "/orders/{order_id}/delivery"),
        ("PUT", "/orders/{order_id}/delivery/window"),
        ("GET", "/orders/{order_id}/delivery/changes"),
        ("POST", "/orders/{order_id}/cancellation"),  # self-service cancellation
        ("GET", "/delivery-zones/{zone_id}/windows"),
        ("GET", "/delivery-zones/{zone_id}/closures"),
        # --- payments and contact data ---
        ("GET", "/customers/{customer_id}/contact"),
        ("GET", "/customers/{customer_id}/contact-changes"),
        ("POST", "/customers/{customer_id}/contact-changes"),
        ("GET", "/customers/{customer_id}/invoices"),
        ("GET", "/customers/{customer_id}/payments"),
        ("POST", "/invoices/{invoice_id}/payment-links"),
        ("POST", "/customers/{customer_id}/promises-to-pay"),
    }


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_reference_server_answers_as_the_contract_says(case, reference_url):
    key = (case.headers or {}).get("Idempotency-Key")
    if key is not None and IDEMPOTENCY_KEY.match(key):
        # A client draws a new key per change; generated keys repeat ("0"), and a repeated key
        # with another body is rightly refused (422), which is not what this case tests.
        case.headers["Idempotency-Key"] = f"{key[:200]}-{uuid.uuid4()}"
    case.call_and_validate(base_url=reference_url, headers={"Authorization": f"Bearer {TOKEN}"})
