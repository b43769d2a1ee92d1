"""No lost writes: cases go through the outbox while the CRM behind the REST adapter is down.

The assistant's own database (outbox, channel, its own case book) is SQLite and PostgreSQL; the
CRM is the reference server over real HTTP, on a database of its own, stopped and started (and,
as a separate process, killed) in the middle of the run. Rows are counted on the server's side.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
import sqlalchemy as sa

from bot.adapters.base import BackendUnavailable
from bot.adapters.outbox_sql import Outbox
from bot.adapters.rest.wire import case_to_wire
from bot.adapters.sql import SqlCaseBook, SqlStore, cases
from bot.cases import CASE_ADD, new_case_id, request_case
from bot.order_status import look_up_status
from bot.outbox import WriteRejected, WriteStatus, submit_write
from bot.records import Case, CaseKind
from reference.server import Credentials, ReferenceServer
from tests.conftest import ANDRES_CO, CLOCK, JULIAN_AR, MARIANA_MX, NOW
from tests.harness import free_port, is_response
from tests.outbox_helpers import later, messages_to, worker_for
from tests.rest_fixtures import TOKEN, FakeClock, ServerProcess, rest_backends


def crm_server(crm_store: SqlStore, port: int) -> ReferenceServer:
    return ReferenceServer(crm_store, Credentials(frozenset({TOKEN})), port=port).start()


def crm_case_ids(crm_store: SqlStore) -> list[str]:
    with crm_store.connect() as conn:
        return sorted(conn.execute(sa.select(cases.c.id)).scalars())


def test_a_case_is_applied_at_once_when_the_crm_answers(store, crm_store):
    server = crm_server(crm_store, 0)
    try:
        backends = rest_backends(server.url, outbox=Outbox(store))
        outcome = request_case(
            backends.cases,
            backends.outbox,
            MARIANA_MX,
            CaseKind.HUMAN_HANDOFF,
            {"text": "asesor"},
            MARIANA_MX,
            now=NOW,
        )
    finally:
        server.stop()
    assert outcome.status is WriteStatus.APPLIED
    assert crm_case_ids(crm_store) == [outcome.management_id]
    assert [entry.status for entry in Outbox(store).entries()] == ["applied"]


def test_writes_queued_while_the_crm_is_down_are_applied_once_when_it_returns(
    store, crm_store, customers_wrote
):
    port, clock = free_port(), FakeClock()
    backends = rest_backends(f"http://127.0.0.1:{port}/v1", outbox=Outbox(store), clock=clock)
    requests = [
        (MARIANA_MX, CaseKind.HUMAN_HANDOFF, {"text": "asesor"}),
        (JULIAN_AR, CaseKind.CANCEL_ORDER, {"text": "cancelen el 1004", "order_id": "PED-1004"}),
        (ANDRES_CO, CaseKind.RETURN_REQUEST, {"text": "vino roto"}),
    ]
    outcomes = [
        request_case(backends.cases, backends.outbox, phone, kind, details, phone, now=NOW)
        for phone, kind, details in requests
    ]
    assert {outcome.status for outcome in outcomes} == {WriteStatus.QUEUED}
    # Asking again while it waits gives the same management ID, not a second case.
    again = request_case(
        backends.cases,
        backends.outbox,
        MARIANA_MX,
        CaseKind.HUMAN_HANDOFF,
        {"text": "asesor!!"},
        MARIANA_MX,
        now=NOW,
    )
    assert again == outcomes[0]
    assert crm_case_ids(crm_store) == []

    server = crm_server(crm_store, port)  # the CRM comes back
    try:
        clock.advance(60)  # past the circuit's cool-down
        worker = worker_for(store, backends, clock=later())
        assert asyncio.run(worker.run_once()) == 3
        assert asyncio.run(worker.run_once()) == 0
    finally:
        server.stop()
    assert crm_case_ids(crm_store) == sorted(outcome.management_id for outcome in outcomes)
    assert {entry.status for entry in Outbox(store).entries()} == {"applied"}
    for (phone, _, _), outcome in zip(requests, outcomes, strict=True):
        [confirmation] = messages_to(store, phone)
        assert outcome.management_id in confirmation
        assert is_response(confirmation, "utter_write_confirmed")


def test_a_retry_whose_first_answer_was_lost_is_not_applied_twice(store, crm_store, customers_wrote):
    server = crm_server(crm_store, 0)
    try:
        backends = rest_backends(server.url, outbox=Outbox(store))
        server.faults.lose_next_answers(1)  # applied, but the bot hears a 500
        outcome = request_case(
            backends.cases,
            backends.outbox,
            MARIANA_MX,
            CaseKind.HUMAN_HANDOFF,
            {"text": "asesor"},
            MARIANA_MX,
            now=NOW,
        )
        assert outcome.status is WriteStatus.QUEUED
        assert asyncio.run(worker_for(store, backends, clock=later()).run_once()) == 1
    finally:
        server.stop()
    assert crm_case_ids(crm_store) == [outcome.management_id]
    assert Outbox(store).entries()[0].status == "applied"


def test_a_crm_killed_mid_run_and_restarted_loses_nothing_and_doubles_nothing(
    store, tmp_path, customers_wrote
):
    crm = ServerProcess(tmp_path).start()
    clock = FakeClock()
    backends = rest_backends(crm.url, outbox=Outbox(store), clock=clock)
    try:
        assert look_up_status(backends.crm, backends.erp, MARIANA_MX).order.id == "PED-1001"
        first = request_case(
            backends.cases,
            backends.outbox,
            MARIANA_MX,
            CaseKind.HUMAN_HANDOFF,
            {"text": "asesor"},
            MARIANA_MX,
            now=NOW,
        )
        assert first.status is WriteStatus.APPLIED

        crm.kill()
        with pytest.raises(BackendUnavailable):
            look_up_status(backends.crm, backends.erp, JULIAN_AR)
        second = request_case(
            backends.cases,
            backends.outbox,
            JULIAN_AR,
            CaseKind.HUMAN_HANDOFF,
            {"text": "asesor"},
            JULIAN_AR,
            now=NOW,
        )
        assert second.status is WriteStatus.QUEUED

        crm.start()
        clock.advance(60)
        worker = worker_for(store, backends, clock=later())
        assert asyncio.run(worker.run_once()) == 1
        assert asyncio.run(worker.run_once()) == 0
        assert look_up_status(backends.crm, backends.erp, JULIAN_AR).outcome.value == "choose"
    finally:
        crm.kill()
    engine = sa.create_engine(crm.database_url)
    with engine.connect() as conn:
        stored = sorted(conn.execute(sa.select(cases.c.id)).scalars())
    engine.dispose()
    assert stored == sorted([first.management_id, second.management_id])


def test_a_write_that_never_goes_through_becomes_a_case_for_a_person(store, customers_wrote):
    clock = FakeClock()
    backends = rest_backends(f"http://127.0.0.1:{free_port()}/v1", outbox=Outbox(store), clock=clock)
    outcome = request_case(
        backends.cases,
        backends.outbox,
        MARIANA_MX,
        CaseKind.HUMAN_HANDOFF,
        {"text": "asesor"},
        MARIANA_MX,
        now=NOW,
    )
    assert outcome.status is WriteStatus.QUEUED
    worker = worker_for(store, backends, max_attempts=3, clock=later())
    for hour in range(1, 4):
        clock.advance(60)
        worker.clock = later(hours=hour)  # each retry is due by then
        asyncio.run(worker.run_once())
    [entry] = Outbox(store).entries()
    assert entry.status == "failed" and entry.attempts == 3 and entry.failure_case_id
    case = SqlCaseBook(store).case(entry.failure_case_id)
    assert case.kind is CaseKind.FAILED_WRITE and case.customer_phone == MARIANA_MX
    assert case.details["management_id"] == outcome.management_id
    [message] = messages_to(store, MARIANA_MX)
    assert is_response(message, "utter_write_failed")
    assert outcome.management_id in message and entry.failure_case_id in message


def test_a_write_older_than_the_maximum_age_is_given_up(store, customers_wrote):
    backends = rest_backends(f"http://127.0.0.1:{free_port()}/v1", outbox=Outbox(store))
    request_case(
        backends.cases,
        backends.outbox,
        MARIANA_MX,
        CaseKind.HUMAN_HANDOFF,
        {"text": "asesor"},
        MARIANA_MX,
        now=NOW,
    )
    worker = worker_for(store, backends, max_age=timedelta(hours=24), clock=later(hours=25))
    asyncio.run(worker.run_once())
    assert Outbox(store).entries()[0].status == "failed"


def test_a_write_the_crm_refuses_is_not_queued(store, crm_store):
    server = crm_server(crm_store, 0)
    try:
        backends = rest_backends(server.url, outbox=Outbox(store))
        bad = Case(new_case_id(), CaseKind.HUMAN_HANDOFF, MARIANA_MX, "5512345678", {"text": "x"}, NOW)
        with pytest.raises(WriteRejected):
            submit_write(
                CASE_ADD, case_to_wire(bad), system=backends.cases, outbox=backends.outbox,
                conversation_id=MARIANA_MX, customer_phone=MARIANA_MX, management_id=bad.id, now=NOW,
            )  # fmt: skip
    finally:
        server.stop()
    assert [entry.status for entry in Outbox(store).entries()] == ["failed"]
    assert crm_case_ids(crm_store) == []


def test_two_workers_never_take_the_same_write(store):
    outbox = Outbox(store)
    entry = outbox.add("case.add", {}, "GES-23456789", MARIANA_MX, MARIANA_MX, NOW - timedelta(hours=1))
    outbox.retry_later(entry.id, 1, NOW - timedelta(minutes=1), "down")
    first, second = outbox.claim_due(NOW), outbox.claim_due(NOW)
    assert [e.id for e in first] == [entry.id] and second == []


def test_a_broken_write_neither_stops_the_worker_nor_is_lost(store, customers_wrote):
    outbox = Outbox(store)
    backends = rest_backends(f"http://127.0.0.1:{free_port()}/v1", outbox=outbox)
    now = CLOCK.now()
    broken = outbox.add("case.add", {"id": "?"}, "GES-23456789", MARIANA_MX, MARIANA_MX, now)
    outbox.retry_later(broken.id, 0, now, "")
    worker = worker_for(store, backends, max_attempts=1, clock=later())
    assert asyncio.run(worker.run_once()) == 1
    [entry] = outbox.entries()
    assert entry.status == "failed" and "case" in entry.last_error
    assert SqlCaseBook(store).case(entry.failure_case_id).kind is CaseKind.FAILED_WRITE
