"""Rescheduling over HTTP: the REST ERP against the reference server on SQLite and PostgreSQL.

Every calendar read gives what the SQL ERP gives for the same data; the move has the same
outcomes and effects (a refusal changes nothing, even after the server took a place); the last
place still goes to exactly one of two customers confirming at once; a repeated key is applied
once. Then the write through the outbox while the ERP is down, drained by the worker once.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta

import pytest
import requests
import sqlalchemy as sa

from bot.adapters.base import idempotency_key
from bot.adapters.outbox_sql import Outbox
from bot.adapters.rest import BackendServerError, RestErp
from bot.adapters.sql import SqlErp, SqlStore, delivery_slots, delivery_zones, orders, schedule_changes
from bot.cases import is_case_id
from bot.records import CaseKind, RescheduleOutcome, WindowSlot
from bot.scheduling import CalendarRules, RescheduleRequest, load_context, request_reschedule
from reference.server import Credentials, ReferenceServer
from tests.conftest import CLOCK, LUCIA_MX, NOW, TODAY, delivery_day
from tests.harness import free_port, is_response
from tests.outbox_helpers import later, messages_to, worker_for
from tests.rest_fixtures import TOKEN, FakeClock, client_for, rest_backends, start_server
from tests.scheduling_helpers import MEXICO, change_for, slot_at

CALENDAR = (TODAY, TODAY + timedelta(days=20))


@pytest.fixture
def server(store, demo) -> Iterator[ReferenceServer]:
    running = start_server(store)
    yield running
    running.stop()


def rows(store: SqlStore, table) -> list:
    with store.connect() as conn:
        return conn.execute(sa.select(table)).all()


def booked(erp, slot: WindowSlot) -> int:
    """Places taken in `slot` now."""
    day = slot.window.start.astimezone(MEXICO).date()
    [now] = [s for s in erp.window_slots(slot.zone_id, day, day) if s.id == slot.id]
    return now.booked


# --- every read is the SQL ERP's ------------------------------------------------------------------


def test_delivery_zones_windows_and_closed_days_are_those_of_the_sql_erp(server, demo, store):
    erp = RestErp(client_for(server.url))
    for order in rows(store, orders):
        assert erp.delivery_zone_of(order.id) == demo.erp.delivery_zone_of(order.id)
    for zone in rows(store, delivery_zones):
        assert erp.window_slots(zone.id, *CALENDAR) == demo.erp.window_slots(zone.id, *CALENDAR)
        assert erp.closed_days(zone.id, *CALENDAR) == demo.erp.closed_days(zone.id, *CALENDAR)
    assert erp.closed_days("MX-CDMX", *CALENDAR) == {delivery_day(10): "inventario anual"}
    assert erp.delivery_zone_of("PED-1002") is None  # delivered outside any zone
    assert erp.delivery_zone_of("PED-9999") is None
    assert erp.window_slots("NOWHERE", *CALENDAR) == [] and erp.closed_days("NOWHERE", *CALENDAR) == {}


def test_a_calendar_query_with_a_bad_range_is_refused(server):
    headers = {"Authorization": f"Bearer {TOKEN}"}
    for query in (
        "from=2026-12-01&to=2026-11-30",
        "from=2026-11-30",
        "from=2026-11-30&to=2027-06-30",
        "from=x&to=y",
    ):
        reply = requests.get(
            f"{server.url}/delivery-zones/MX-CDMX/windows?{query}", headers=headers, timeout=5
        )
        assert reply.status_code == 400 and reply.json()["code"] == "invalid_request", query


# --- the move -------------------------------------------------------------------------------------


def test_a_reschedule_over_http_moves_the_window_releases_the_old_place_and_records_the_change(server, demo):
    erp = RestErp(client_for(server.url))
    order = demo.erp.order("PED-1001")
    old = slot_at(demo.erp, "MX-CDMX", TODAY + timedelta(days=1), 14)
    new = slot_at(demo.erp, "MX-CDMX", delivery_day(5), 9)
    assert erp.reschedule(change_for(order, new)) is RescheduleOutcome.DONE
    assert demo.erp.order("PED-1001").window == new.window
    assert booked(demo.erp, new) == new.booked + 1 and booked(demo.erp, old) == old.booked - 1
    assert (
        erp.schedule_history("PED-1001") == demo.erp.schedule_history("PED-1001") == [change_for(order, new)]
    )
    assert erp.schedule_history("PED-9999") == []


def test_a_full_window_another_zones_window_and_a_taken_id_are_refused_and_change_nothing(server, demo):
    erp = RestErp(client_for(server.url))
    order = demo.erp.order("PED-1001")
    full = slot_at(demo.erp, "MX-CDMX", delivery_day(2), 14)
    elsewhere = demo.erp.window_slots("AR-CABA", delivery_day(5), delivery_day(5))[0]
    assert erp.reschedule(change_for(order, full)) is RescheduleOutcome.WINDOW_FULL
    assert erp.reschedule(change_for(order, elsewhere)) is RescheduleOutcome.NOT_ALLOWED
    assert booked(demo.erp, full) == full.capacity
    free = slot_at(demo.erp, "MX-CDMX", delivery_day(5), 9)
    assert erp.reschedule(change_for(order, free, "GES-TAKEN222")) is RescheduleOutcome.DONE
    lucia = demo.erp.order("PED-1010")
    assert erp.reschedule(change_for(lucia, free, "GES-TAKEN222")) is RescheduleOutcome.ID_TAKEN
    assert [change.id for change in demo.erp.schedule_history("PED-1010")] == []
    assert booked(demo.erp, free) == free.booked + 1


def test_an_order_out_for_delivery_is_refused_and_the_place_the_server_took_is_given_back(server, demo):
    # The SQL move takes the place before it finds the order cannot move: the server must roll
    # that back before it records the refusal for the key.
    erp = RestErp(client_for(server.url))
    order = demo.erp.order("PED-1004")  # Julián's, out for delivery, Buenos Aires
    day = next(TODAY + timedelta(days=n) for n in range(3, 9) if (TODAY + timedelta(days=n)).weekday() < 5)
    slot = demo.erp.window_slots("AR-CABA", day, day)[0]
    assert erp.reschedule(change_for(order, slot)) is RescheduleOutcome.NOT_ALLOWED
    assert demo.erp.window_slots("AR-CABA", day, day)[0].booked == slot.booked
    assert demo.erp.order("PED-1004").window == order.window


def test_a_customer_cannot_move_another_customers_order(server, demo):
    erp = RestErp(client_for(server.url))
    slot = slot_at(demo.erp, "MX-CDMX", delivery_day(5), 9)
    mariana_as_lucia = replace(change_for(demo.erp.order("PED-1001"), slot), customer_id="C-006")
    assert erp.reschedule(mariana_as_lucia) is RescheduleOutcome.NOT_ALLOWED
    assert demo.erp.schedule_history("PED-1001") == []


def test_the_same_reschedule_sent_twice_with_one_key_is_applied_once(server, demo, store):
    erp = RestErp(client_for(server.url))
    slot = slot_at(demo.erp, "MX-CDMX", delivery_day(5), 9)
    change = change_for(demo.erp.order("PED-1010"), slot)
    server.faults.lose_next_answers(1)
    with idempotency_key("reschedule-outbox-key"):
        with pytest.raises(BackendServerError):
            erp.reschedule(change)  # applied, but the answer was lost
        assert erp.reschedule(change) is RescheduleOutcome.DONE  # the stored answer, replayed
    assert [row.id for row in rows(store, schedule_changes)] == [change.id]
    assert booked(demo.erp, slot) == slot.booked + 1


def test_the_rescheduling_service_runs_unchanged_over_http(server, demo):
    backends = rest_backends(server.url)
    loaded = load_context(
        backends.crm, backends.erp, LUCIA_MX, "PED-1010", CalendarRules(), "America/Mexico_City", NOW
    )
    sql = load_context(demo.crm, demo.erp, LUCIA_MX, "PED-1010", CalendarRules(), "America/Mexico_City", NOW)
    assert loaded.calendar.next_windows() == sql.calendar.next_windows() != []
    assert loaded.current_slot_ids() == sql.current_slot_ids()


# --- the last place: exactly one of two wins, through HTTP ------------------------------------------


def race_over_http(urls: list[str], orders_to_move: list, slot: WindowSlot, tag: str) -> list:
    erps = [RestErp(client_for(url)) for url in urls]
    barrier = threading.Barrier(len(erps))
    outcomes: list = [None] * len(erps)

    def confirm(index: int) -> None:
        change = change_for(orders_to_move[index], slot, f"GES-{tag}{index + 2}ZZ")
        barrier.wait()
        outcomes[index] = erps[index].reschedule(change)

    threads = [threading.Thread(target=confirm, args=(index,)) for index in range(len(erps))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def test_two_customers_confirming_the_last_place_over_http_exactly_one_wins(demo, store, server):
    """On PostgreSQL through two server processes' worth of pools (so the database decides, not
    the server's own lock); on SQLite through one server."""
    urls, extra = [server.url, server.url], []
    if store.engine.dialect.name == "postgresql":
        own = SqlStore(store.engine.url.render_as_string(hide_password=False))
        extra = [ReferenceServer(own, Credentials(frozenset({TOKEN}))).start()]
        urls = [server.url, extra[0].url]
    try:
        days = [TODAY + timedelta(days=n) for n in range(3, 10) if (TODAY + timedelta(days=n)).weekday() != 6]
        for round_number, day in enumerate(days[:5]):
            last_place = slot_at(demo.erp, "MX-CDMX", day, 14)
            with store.engine.begin() as conn:
                conn.execute(
                    delivery_slots.update()
                    .where(delivery_slots.c.id == last_place.id)
                    .values(booked=last_place.capacity - 1)
                )
            contenders = [demo.erp.order("PED-1001"), demo.erp.order("PED-1010")]
            outcomes = race_over_http(urls, contenders, last_place, f"HTTP{round_number + 2}")
            assert sorted(outcomes) == sorted([RescheduleOutcome.DONE, RescheduleOutcome.WINDOW_FULL])
            assert booked(demo.erp, last_place) == last_place.capacity
            winner = contenders[outcomes.index(RescheduleOutcome.DONE)]
            assert demo.erp.order(winner.id).window == last_place.window
    finally:
        for running in extra:
            running.stop()
            running.store.dispose()


# --- the write through the outbox ---------------------------------------------------------------------


def erp_changes(erp_store: SqlStore) -> list[str]:
    with erp_store.connect() as conn:
        return list(conn.execute(sa.select(schedule_changes.c.id)).scalars())


def move_lucia(backends, crm_store: SqlStore, day_offset: int = 5, hour: int = 9):
    """Lucía confirms PED-1010 into a window of the ERP's calendar (read on the ERP's own data)."""
    erp = SqlErp(crm_store)
    slot = slot_at(erp, "MX-CDMX", delivery_day(day_offset), hour)
    order = erp.order("PED-1010")
    request = RescheduleRequest(
        order_id="PED-1010",
        customer_id="C-006",
        old_window=order.window,
        slot_id=slot.id,
        new_window=slot.window,
        phone=LUCIA_MX,
        channel="whatsapp",
        conversation_id=LUCIA_MX,
        notice="martes 1 de diciembre, de 09:00 a 13:00",
    )
    return slot, request_reschedule(backends.erp, backends.outbox, request, NOW)


def crm_server(erp_store: SqlStore, port: int) -> ReferenceServer:
    return ReferenceServer(erp_store, Credentials(frozenset({TOKEN})), port=port).start()


def test_a_reschedule_is_applied_at_once_when_the_erp_answers(store, crm_store):
    server = crm_server(crm_store, 0)
    try:
        backends = rest_backends(server.url, outbox=Outbox(store))
        slot, result = move_lucia(backends, crm_store)
    finally:
        server.stop()
    assert result.outcome is RescheduleOutcome.DONE and not result.queued and is_case_id(result.change_id)
    assert erp_changes(crm_store) == [result.change_id]
    assert [(entry.kind, entry.status) for entry in Outbox(store).entries()] == [
        ("delivery.reschedule", "applied")
    ]


def test_a_window_taken_at_the_first_attempt_is_answered_at_once_not_queued(store, crm_store):
    server = crm_server(crm_store, 0)
    try:
        backends = rest_backends(server.url, outbox=Outbox(store))
        _, result = move_lucia(backends, crm_store, day_offset=2, hour=14)  # full
    finally:
        server.stop()
    assert result.outcome is RescheduleOutcome.WINDOW_FULL and not result.queued and result.change_id is None
    assert [entry.status for entry in Outbox(store).entries()] == ["failed"]  # kept for the record only
    assert Outbox(store).entries("pending") == []


def test_a_reschedule_queued_while_the_erp_is_down_is_applied_once_and_confirmed(
    store,
    crm_store,
    customers_wrote,
):
    from bot.messaging.inbound import Channel
    from bot.messaging.store import MessagingStore

    MessagingStore(store, CLOCK).record_inbound(LUCIA_MX, Channel.WHATSAPP)
    port, clock = free_port(), FakeClock()
    backends = rest_backends(f"http://127.0.0.1:{port}/v1", outbox=Outbox(store), clock=clock)
    slot, result = move_lucia(backends, crm_store)
    assert result.queued and result.outcome is RescheduleOutcome.DONE and is_case_id(result.change_id)
    assert erp_changes(crm_store) == []

    server = crm_server(crm_store, port)  # the ERP comes back
    try:
        clock.advance(60)
        worker = worker_for(store, backends, clock=later())
        assert asyncio.run(worker.run_once()) == 1
        assert asyncio.run(worker.run_once()) == 0
    finally:
        server.stop()
    assert erp_changes(crm_store) == [result.change_id]  # counted on the ERP's side: once
    assert SqlErp(crm_store).order("PED-1010").window == slot.window
    assert booked(SqlErp(crm_store), slot) == slot.booked + 1
    [confirmation] = messages_to(store, LUCIA_MX)
    assert is_response(confirmation, "utter_reschedule_confirmed_later")
    assert (
        result.change_id in confirmation and "PED-1010" in confirmation and "1 de diciembre" in confirmation
    )


def test_a_queued_reschedule_whose_window_was_taken_meanwhile_becomes_a_case_and_a_message(
    store,
    crm_store,
):
    from bot.adapters.sql import SqlCaseBook
    from bot.messaging.inbound import Channel
    from bot.messaging.store import MessagingStore

    MessagingStore(store, CLOCK).record_inbound(LUCIA_MX, Channel.WHATSAPP)
    port, clock = free_port(), FakeClock()
    backends = rest_backends(f"http://127.0.0.1:{port}/v1", outbox=Outbox(store), clock=clock)
    slot, result = move_lucia(backends, crm_store, day_offset=2, hour=9)  # one place left
    assert result.queued
    # Meanwhile Mariana takes that last place directly in the ERP.
    assert SqlErp(crm_store).reschedule(change_for(SqlErp(crm_store).order("PED-1001"), slot)) is (
        RescheduleOutcome.DONE
    )
    server = crm_server(crm_store, port)
    try:
        clock.advance(60)
        assert asyncio.run(worker_for(store, backends, clock=later()).run_once()) == 1
    finally:
        server.stop()
    [entry] = Outbox(store).entries()
    assert entry.status == "failed" and "window_full" in entry.last_error
    case = SqlCaseBook(store).case(entry.failure_case_id)
    assert case.kind is CaseKind.FAILED_WRITE and case.details["management_id"] == result.change_id
    assert SqlErp(crm_store).schedule_history("PED-1010") == []
    [message] = messages_to(store, LUCIA_MX)
    assert is_response(message, "utter_reschedule_queued_conflict")
    assert result.change_id in message and entry.failure_case_id in message
    assert [c.order_id for c in SqlErp(crm_store).schedule_history("PED-1001")] == ["PED-1001"]
