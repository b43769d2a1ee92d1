"""Cancelling over HTTP, and a customer's cases by phone: the REST adapters against the reference
server (SQLite, PostgreSQL) answer as the SQL ones do, and a retried cancellation applies once."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from bot.adapters.base import idempotency_key
from bot.adapters.rest import RestCaseBook, RestErp
from bot.adapters.sql import orders
from bot.cases import request_case
from bot.records import CancelOutcome, CaseKind
from reference.server import ReferenceServer
from reference.tables import idempotency_keys
from tests.conftest import CLOCK, JULIAN_AR, LUCIA_MX, MARIANA_MX
from tests.rest_fixtures import client_for, start_server


@pytest.fixture
def server(store, demo) -> Iterator[ReferenceServer]:
    running = start_server(store)
    yield running
    running.stop()


def state_of(store, order_id):
    with store.connect() as conn:
        return conn.execute(
            sa.select(orders.c.state, orders.c.cancelled_at).where(orders.c.id == order_id)
        ).one()


def test_a_created_order_is_cancelled_once_and_a_shipped_one_is_refused(server, store):
    erp = RestErp(client_for(server.url))
    now = CLOCK.now()
    assert erp.cancel_order("PED-1010", "C-006", now) is CancelOutcome.DONE
    state, cancelled_at = state_of(store, "PED-1010")
    assert state == "cancelled" and cancelled_at is not None
    assert erp.order("PED-1010").cancelled_at is not None
    # Sent again (a retry): still done, nothing moves.
    assert erp.cancel_order("PED-1010", "C-006", now) is CancelOutcome.DONE
    assert state_of(store, "PED-1010") == (state, cancelled_at)
    assert erp.cancel_order("PED-1004", "C-002", now) is CancelOutcome.NOT_CANCELLABLE
    assert state_of(store, "PED-1004")[0] == "out_for_delivery"


def test_someone_elses_order_is_not_found_and_not_touched(server, store):
    erp = RestErp(client_for(server.url))
    assert erp.cancel_order("PED-1003", "C-001", CLOCK.now()) is CancelOutcome.NOT_FOUND
    assert erp.cancel_order("PED-9999", "C-001", CLOCK.now()) is CancelOutcome.NOT_FOUND
    assert state_of(store, "PED-1003")[0] == "created"


def test_the_outbox_key_is_the_requests_key(server, store):
    erp = RestErp(client_for(server.url))
    with idempotency_key("outbox-key-1"):
        assert erp.cancel_order("PED-1003", "C-002", CLOCK.now()) is CancelOutcome.DONE
    with store.connect() as conn:
        [path] = conn.execute(
            sa.select(idempotency_keys.c.path).where(idempotency_keys.c.key == "outbox-key-1")
        ).scalars()
    assert path == "/v1/orders/PED-1003/cancellation"


def test_a_customers_cases_by_phone_are_only_theirs(server, demo):
    book = RestCaseBook(client_for(server.url))
    for phone, kind in ((MARIANA_MX, CaseKind.RETURN_REQUEST), (MARIANA_MX, CaseKind.PAYMENT_PROBLEM),
                        (JULIAN_AR, CaseKind.CANCEL_ORDER)):  # fmt: skip
        request_case(book, demo.outbox, phone, kind, {"text": "x"}, conversation_id=phone, now=CLOCK.now())
    rest = {case.id for case in book.cases_of_phone(MARIANA_MX)}
    sql = {case.id for case in demo.cases.cases_of_phone(MARIANA_MX)}
    assert rest == sql and len(rest) == 2
    assert book.cases_of_phone(LUCIA_MX) == []
