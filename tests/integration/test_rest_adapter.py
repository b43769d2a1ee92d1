"""The REST CRM, ERP and case book against the reference server over real HTTP (SQLite and PostgreSQL).

Every operation gives what the SQL adapter gives for the same data; then the failures: latency
past the read timeout, 5xx, connection refused, the circuit opening and closing, credentials,
and idempotent writes.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
import requests
import sqlalchemy as sa

from bot.adapters.base import BackendUnavailable, idempotency_key
from bot.adapters.rest import (
    BackendRejected,
    BackendServerError,
    BackendTimeout,
    BackendUnreachable,
    CircuitOpen,
    RestCaseBook,
    RestCrm,
    RestErp,
)
from bot.adapters.rest.breaker import CircuitState
from bot.adapters.sql import cases, customers, orders
from bot.cases import new_case_id
from bot.order_status import Outcome, look_up_status
from bot.records import Case, CaseKind
from reference.server import ReferenceServer
from tests.conftest import JULIAN_AR, MARIANA_MX, NOW, STRANGER
from tests.harness import free_port
from tests.rest_fixtures import API_KEY, TOKEN, FakeClock, client_for, start_server


@pytest.fixture
def server(store, demo) -> Iterator[ReferenceServer]:
    """The reference server over the demo data, on SQLite and PostgreSQL."""
    running = start_server(store)
    yield running
    running.stop()


def all_rows(store, table):
    with store.connect() as conn:
        return conn.execute(sa.select(table)).all()


def a_case(**overrides) -> Case:
    values = {
        "id": new_case_id(),
        "kind": CaseKind.HUMAN_HANDOFF,
        "conversation_id": MARIANA_MX,
        "customer_phone": MARIANA_MX,
        "details": {"text": "asesor porfa 🙏", "order_id": "PED-1001"},
        "opened_at": NOW,
    }
    return Case(**{**values, **overrides})


# --- every operation ------------------------------------------------------------------------------


def test_customers_by_phone_and_id_are_those_of_the_sql_crm(server, demo, store):
    crm = RestCrm(client_for(server.url))
    for row in all_rows(store, customers):
        assert crm.customer_by_phone(row.phone) == demo.crm.customer_by_phone(row.phone)
        assert crm.customer_by_id(row.id) == demo.crm.customer_by_id(row.id)
    assert crm.customer_by_phone(STRANGER) is None
    assert crm.customer_by_id("C-404") is None


def test_orders_and_orders_of_a_customer_are_those_of_the_sql_erp(server, demo, store):
    erp = RestErp(client_for(server.url))
    for row in all_rows(store, orders):
        assert erp.order(row.id) == demo.erp.order(row.id)
    for row in all_rows(store, customers):
        assert erp.orders_of(row.id) == demo.erp.orders_of(row.id)
    assert erp.order("PED-9999") is None
    assert erp.orders_of("C-404") == []


def test_an_id_with_a_slash_cannot_reach_another_resource(server):
    erp = RestErp(client_for(server.url))
    assert erp.order("../customers/C-001") is None


def test_cases_are_added_read_and_found_as_recent_open_ones(server, demo):
    book = RestCaseBook(client_for(server.url))
    case = a_case()
    assert book.add(case) is True
    assert book.case(case.id) == case == demo.cases.case(case.id)
    assert book.recent_open_cases(MARIANA_MX, CaseKind.HUMAN_HANDOFF, NOW - timedelta(hours=1)) == [case]
    assert book.recent_open_cases(MARIANA_MX, CaseKind.HUMAN_HANDOFF, NOW + timedelta(minutes=1)) == []
    assert book.recent_open_cases(MARIANA_MX, CaseKind.CANCEL_ORDER, NOW - timedelta(hours=1)) == []
    assert book.case("GES-22222222") is None


def test_agents_work_a_case_over_http_as_over_sql(server, demo):
    from bot.case_work import (
        CaseChangeRefused,
        add_note,
        assign_case,
        change_status,
        rate_case,
        record_message,
        record_rating_asked,
    )

    book = RestCaseBook(client_for(server.url))
    case = a_case()
    other = a_case(kind=CaseKind.CANCEL_ORDER, opened_at=NOW + timedelta(minutes=1))
    assert book.add(case) and book.add(other)
    assert [c.id for c in book.list_cases()] == [other.id, case.id] == [c.id for c in demo.cases.list_cases()]

    assign_case(book, case, "ana", "ana", NOW)
    change_status(book, book.case(case.id), "in_progress", "ana", NOW)
    with pytest.raises(CaseChangeRefused) as stale:
        change_status(book, case, "resolved", "beto", NOW)  # beto's page still said "open"
    assert stale.value.reason == "stale"
    add_note(book, book.case(case.id), "llamar <b>mañana</b>", "ana", NOW)
    record_message(book, book.case(case.id), "Hola, ya lo revisamos.", "ana", NOW)
    change_status(book, book.case(case.id), "closed", "ana", NOW)
    assert book.awaiting_rating(MARIANA_MX) is None
    assert record_rating_asked(book, book.case(case.id), "ana", NOW)
    assert book.awaiting_rating(MARIANA_MX) == demo.cases.awaiting_rating(MARIANA_MX)
    assert book.awaiting_rating(MARIANA_MX).id == case.id
    assert rate_case(book, MARIANA_MX, 4, NOW).id == case.id
    assert rate_case(book, MARIANA_MX, 5, NOW) is None  # once

    worked = book.case(case.id)
    assert worked == demo.cases.case(case.id)
    assert (worked.status, worked.assigned_to, worked.rating) == ("closed", "ana", 4)
    assert [c.id for c in book.list_cases(("closed",))] == [case.id]
    history = book.history(case.id)
    assert history == demo.cases.history(case.id)
    assert [(e.action, e.customer_visible) for e in history] == [
        ("assigned", False), ("status", False), ("note", False), ("message", True),
        ("status", False), ("rating_requested", False), ("rated", True),
    ]  # fmt: skip
    assert book.history("GES-22222222") == []
    assert book.add_event(history[0].__class__("GES-22222222", NOW, "ana", "note", "x")) is False


def test_a_taken_case_id_is_refused_so_the_caller_draws_another(server):
    book = RestCaseBook(client_for(server.url))
    case = a_case()
    assert book.add(case)
    with idempotency_key("another-request"):
        assert book.add(a_case(id=case.id, conversation_id="+525500000009")) is False


def test_the_order_status_service_runs_unchanged_over_http(server):
    crm, erp = RestCrm(client_for(server.url)), RestErp(client_for(server.url))
    found = look_up_status(crm, erp, MARIANA_MX)
    assert found.outcome is Outcome.FOUND and found.order.id == "PED-1001"
    assert look_up_status(crm, erp, JULIAN_AR).outcome is Outcome.CHOOSE
    assert look_up_status(crm, erp, MARIANA_MX, "PED-1003").outcome is Outcome.NOT_FOUND  # Julián's


# --- credentials ----------------------------------------------------------------------------------


def test_an_api_key_works_like_a_token(server):
    crm = RestCrm(client_for(server.url, token=None, api_key=API_KEY))
    assert crm.customer_by_phone(MARIANA_MX).name == "Mariana López"


@pytest.mark.parametrize(
    "credentials", [{"token": "wrong"}, {"token": None}, {"token": None, "api_key": "x"}]
)
def test_wrong_or_missing_credentials_are_rejected_not_retried(server, credentials):
    crm = RestCrm(client_for(server.url, **credentials))
    with pytest.raises(BackendRejected) as refused:
        crm.customer_by_phone(MARIANA_MX)
    assert refused.value.status == 401 and not refused.value.retryable
    assert len(server.received) == 1


# --- failures -------------------------------------------------------------------------------------


def test_latency_beyond_the_read_timeout_is_a_timeout_after_the_retries(server):
    server.faults.latency_s = 1.5
    erp = RestErp(client_for(server.url, read_timeout_s=0.3, circuit_failures=10))
    with pytest.raises(BackendTimeout):
        erp.order("PED-1001")
    assert server.received.count(("GET", "/v1/orders/PED-1001")) == 3  # 1 + 2 retries
    server.faults.clear()
    assert erp.order("PED-1001").id == "PED-1001"


def test_a_read_that_meets_500s_is_retried_and_succeeds(server):
    server.faults.fail_next(2, status=500)
    assert RestErp(client_for(server.url)).order("PED-1001").id == "PED-1001"
    assert len(server.received) == 3


def test_a_read_that_keeps_meeting_500s_fails_with_the_status(server):
    server.faults.fail_next(10, status=503)
    with pytest.raises(BackendServerError) as failed:
        RestErp(client_for(server.url)).orders_of("C-001")
    assert failed.value.status == 503 and len(server.received) == 3


def test_a_write_is_sent_once_even_when_it_fails(server, store):
    server.faults.fail_next(1, status=500)
    with pytest.raises(BackendServerError):
        RestCaseBook(client_for(server.url)).add(a_case())
    assert list(server.received) == [("POST", "/v1/cases")]
    assert all_rows(store, cases) == []


def test_connection_refused_is_unreachable():
    erp = RestErp(client_for(f"http://127.0.0.1:{free_port()}/v1"))
    with pytest.raises(BackendUnreachable):
        erp.order("PED-1001")


def test_every_failure_is_a_backend_unavailable_for_the_actions(server):
    server.faults.fail_next(10)
    with pytest.raises(BackendUnavailable):
        RestCrm(client_for(server.url)).customer_by_phone(MARIANA_MX)


# --- the circuit breaker --------------------------------------------------------------------------


def test_the_circuit_opens_after_repeated_failures_and_then_fails_fast(server):
    clock = FakeClock()
    client = client_for(server.url, clock=clock, read_retries=0)
    erp = RestErp(client)
    server.faults.fail_next(3)
    for _ in range(3):
        with pytest.raises(BackendServerError):
            erp.order("PED-1001")
    assert client.breaker.state is CircuitState.OPEN
    with pytest.raises(CircuitOpen):
        erp.order("PED-1001")
    assert len(server.received) == 3  # the fourth call never left the process


def test_after_the_cooldown_one_probe_closes_the_circuit_when_it_succeeds(server):
    clock = FakeClock()
    client = client_for(server.url, clock=clock, read_retries=0)
    erp = RestErp(client)
    server.faults.fail_next(3)
    for _ in range(3):
        with pytest.raises(BackendServerError):
            erp.order("PED-1001")
    clock.advance(31)
    assert client.breaker.state is CircuitState.HALF_OPEN
    assert erp.order("PED-1001").id == "PED-1001"
    assert client.breaker.state is CircuitState.CLOSED


def test_a_failed_probe_opens_the_circuit_again(server):
    clock = FakeClock()
    client = client_for(server.url, clock=clock, read_retries=0)
    erp = RestErp(client)
    server.faults.fail_next(4)
    for _ in range(3):
        with pytest.raises(BackendServerError):
            erp.order("PED-1001")
    clock.advance(31)
    with pytest.raises(BackendServerError):
        erp.order("PED-1001")  # the probe
    assert client.breaker.state is CircuitState.OPEN
    with pytest.raises(CircuitOpen):
        erp.order("PED-1001")
    assert len(server.received) == 4


def test_refusals_do_not_open_the_circuit(server):
    client = client_for(server.url, token="wrong", read_retries=0)
    for _ in range(5):
        with pytest.raises(BackendRejected):
            RestCrm(client).customer_by_phone(MARIANA_MX)
    assert client.breaker.state is CircuitState.CLOSED


# --- idempotency ----------------------------------------------------------------------------------


def test_the_same_write_sent_twice_is_applied_once(server, store):
    book = RestCaseBook(client_for(server.url))
    case = a_case()
    with idempotency_key("outbox-key-1"):
        assert book.add(case) and book.add(case)
    assert [row.id for row in all_rows(store, cases)] == [case.id]


def test_a_repeated_key_replays_the_first_answer(server):
    body = {
        "id": "GES-23456789",
        "kind": "human_handoff",
        "conversation_id": MARIANA_MX,
        "customer_phone": MARIANA_MX,
        "details": {"text": "hola"},
        "opened_at": NOW.isoformat(),
    }
    headers = {"Authorization": f"Bearer {TOKEN}", "Idempotency-Key": "k-1"}
    first = requests.post(f"{server.url}/cases", json=body, headers=headers, timeout=5)
    again = requests.post(f"{server.url}/cases", json=body, headers=headers, timeout=5)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
    other = requests.post(f"{server.url}/cases", json={**body, "details": {}}, headers=headers, timeout=5)
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"


def test_a_write_whose_answer_was_lost_is_applied_once_when_sent_again(server, store):
    book = RestCaseBook(client_for(server.url))
    case = a_case()
    server.faults.lose_next_answers(1)
    with idempotency_key("lost-answer"):
        with pytest.raises(BackendServerError):
            book.add(case)  # applied on the server, but the answer never arrived
        assert book.add(case) is True
    assert [row.id for row in all_rows(store, cases)] == [case.id]


def test_a_write_without_an_idempotency_key_is_refused(server):
    reply = requests.post(
        f"{server.url}/cases", json={}, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5
    )
    assert reply.status_code == 400 and reply.json()["code"] == "idempotency_key_required"
