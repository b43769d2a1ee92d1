"""The ERP's delivery calendar and the atomic reschedule write, on SQLite and the real PostgreSQL."""

import threading
from datetime import time, timedelta

import pytest
import sqlalchemy as sa

from bot.adapters.sql import SqlErp, SqlStore, delivery_slots
from bot.cases import is_case_id
from bot.order_status import describe
from bot.records import RescheduleOutcome, WindowSlot
from bot.scheduling import RescheduleRequest, request_reschedule
from tests.conftest import LUCIA_MX, MARIANA_MX, NOW, TODAY, delivery_day, written_day
from tests.scheduling_helpers import MEXICO, change_for, slot_at


def test_orders_know_their_delivery_zone(demo):
    zone = demo.erp.delivery_zone_of("PED-1001")
    assert (zone.id, zone.country, zone.timezone) == ("MX-CDMX", "MX", "America/Mexico_City")
    assert demo.erp.delivery_zone_of("PED-1009").cutoff_hour == 16  # Bogotá overrides the default
    assert demo.erp.delivery_zone_of("PED-1002") is None  # delivered, outside any zone


def test_window_slots_are_the_zones_local_days_with_capacity_and_places_taken(demo):
    day = delivery_day(2)
    slots = demo.erp.window_slots("MX-CDMX", day, day)
    assert [(s.window.start.astimezone(MEXICO).time(), s.capacity, s.booked) for s in slots] == [
        (time(9, 0), 4, 3),  # nearly full
        (time(14, 0), 4, 4),  # full
    ]
    sunday = next(TODAY + timedelta(days=n) for n in range(7) if (TODAY + timedelta(days=n)).weekday() == 6)
    assert demo.erp.window_slots("MX-CDMX", sunday, sunday) == []


def test_an_orders_current_window_holds_a_place(demo):
    tomorrow = TODAY + timedelta(days=1)
    assert slot_at(demo.erp, "MX-CDMX", tomorrow, 14).booked == 1  # PED-1001


def test_closed_days_come_with_their_reason(demo):
    closed = demo.erp.closed_days("MX-CDMX", TODAY, TODAY + timedelta(days=30))
    assert closed == {delivery_day(10): "inventario anual"}


def test_reschedule_moves_the_window_releases_the_old_place_and_records_the_change(demo):
    order = demo.erp.order("PED-1001")
    old = slot_at(demo.erp, "MX-CDMX", TODAY + timedelta(days=1), 14)
    new = slot_at(demo.erp, "MX-CDMX", delivery_day(5), 9)
    assert demo.erp.reschedule(change_for(order, new)) is RescheduleOutcome.DONE

    assert demo.erp.order("PED-1001").window == new.window
    assert slot_at(demo.erp, "MX-CDMX", TODAY + timedelta(days=1), 14).booked == old.booked - 1
    assert slot_at(demo.erp, "MX-CDMX", delivery_day(5), 9).booked == new.booked + 1
    [recorded] = demo.erp.schedule_history("PED-1001")
    assert (recorded.id, recorded.customer_id, recorded.phone, recorded.channel) == (
        "GES-TESTTEST",
        "C-001",
        MARIANA_MX,
        "whatsapp",
    )
    assert (recorded.old_window, recorded.new_window, recorded.changed_at) == (order.window, new.window, NOW)


def test_the_status_answer_shows_the_new_window(demo):
    order = demo.erp.order("PED-1001")
    new = slot_at(demo.erp, "MX-CDMX", delivery_day(5), 9)
    demo.erp.reschedule(change_for(order, new))
    customer = demo.crm.customer_by_phone(MARIANA_MX)
    view = describe(demo.erp.order("PED-1001"), customer, NOW, "America/Mexico_City")
    assert view.values["eta"] == f"el {written_day((delivery_day(5) - TODAY).days)} entre 09:00 y 13:00"


def test_a_full_window_is_refused_and_nothing_changes(demo):
    order = demo.erp.order("PED-1001")
    full = slot_at(demo.erp, "MX-CDMX", delivery_day(2), 14)
    assert demo.erp.reschedule(change_for(order, full)) is RescheduleOutcome.WINDOW_FULL
    assert demo.erp.order("PED-1001").window == order.window
    assert slot_at(demo.erp, "MX-CDMX", TODAY + timedelta(days=1), 14).booked == 1
    assert slot_at(demo.erp, "MX-CDMX", delivery_day(2), 14).booked == 4
    assert demo.erp.schedule_history("PED-1001") == []


def test_an_order_out_for_delivery_is_refused_and_the_place_is_not_taken(demo):
    order = demo.erp.order("PED-1004")
    day = delivery_day(5)
    new = next(s for s in demo.erp.window_slots("AR-CABA", day, day + timedelta(days=3)))
    assert demo.erp.reschedule(change_for(order, new)) is RescheduleOutcome.NOT_ALLOWED
    assert (
        next(s for s in demo.erp.window_slots("AR-CABA", day, day + timedelta(days=3))).booked == new.booked
    )
    assert demo.erp.order("PED-1004").window == order.window


def test_a_window_of_another_zone_is_refused(demo):
    order = demo.erp.order("PED-1001")  # Mexico City
    day = delivery_day(5)
    elsewhere = demo.erp.window_slots("AR-CABA", day, day)[0]
    assert demo.erp.reschedule(change_for(order, elsewhere)) is RescheduleOutcome.NOT_ALLOWED
    assert demo.erp.window_slots("AR-CABA", day, day)[0].booked == elsewhere.booked
    assert demo.erp.order("PED-1001").window == order.window


def test_a_management_id_already_used_is_reported_so_another_is_drawn(demo):
    first = demo.erp.order("PED-1001")
    demo.erp.reschedule(change_for(first, slot_at(demo.erp, "MX-CDMX", delivery_day(5), 9)))
    second = demo.erp.order("PED-1010")
    target = slot_at(demo.erp, "MX-CDMX", delivery_day(6), 9)
    assert demo.erp.reschedule(change_for(second, target)) is RescheduleOutcome.ID_TAKEN
    assert slot_at(demo.erp, "MX-CDMX", delivery_day(6), 9).booked == target.booked


def move(demo, order_id: str, phone: str, slot: WindowSlot):
    """The customer of `phone` moves `order_id` to `slot`, through the outbox (the ERP answers)."""
    order, customer = demo.erp.order(order_id), demo.crm.customer_by_phone(phone)
    request = RescheduleRequest(
        order_id=order.id,
        customer_id=customer.id,
        old_window=order.window,
        slot_id=slot.id,
        new_window=slot.window,
        phone=phone,
        channel="sms",
        conversation_id=phone,
        notice="",
    )
    return request_reschedule(demo.erp, demo.outbox, request, NOW)


def test_the_service_gives_a_management_id_and_fills_a_window_only_to_its_capacity(demo):
    nearly_full = slot_at(demo.erp, "MX-CDMX", delivery_day(2), 9)  # 3 of 4
    won = move(demo, "PED-1001", MARIANA_MX, nearly_full)
    lost = move(demo, "PED-1010", LUCIA_MX, nearly_full)
    assert won.outcome is RescheduleOutcome.DONE and is_case_id(won.change_id) and not won.queued
    assert lost.outcome is RescheduleOutcome.WINDOW_FULL and lost.change_id is None
    assert slot_at(demo.erp, "MX-CDMX", delivery_day(2), 9).booked == 4


def test_the_database_itself_refuses_a_booking_beyond_capacity(demo, store):
    full = slot_at(demo.erp, "MX-CDMX", delivery_day(2), 14)
    with pytest.raises(sa.exc.IntegrityError), store.engine.begin() as conn:
        conn.execute(delivery_slots.update().where(delivery_slots.c.id == full.id).values(booked=5))


def race(erps: list[SqlErp], orders: list, slot: WindowSlot, tag: str) -> list[RescheduleOutcome]:
    """Both confirmations leave the barrier together, each on its own connection."""
    barrier = threading.Barrier(len(erps))
    outcomes: list[RescheduleOutcome | None] = [None] * len(erps)

    def confirm(index: int) -> None:
        change = change_for(orders[index], slot, f"GES-{tag}{index}AAAA"[:12])
        barrier.wait()
        outcomes[index] = erps[index].reschedule(change)

    threads = [threading.Thread(target=confirm, args=(index,)) for index in range(len(erps))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


@pytest.mark.parametrize("store", ["postgresql"], indirect=True)
def test_two_customers_confirming_the_last_place_at_once_exactly_one_wins(demo, store):
    """Two connections race for the one place left, five rounds on five days."""
    url = store.engine.url.render_as_string(hide_password=False)
    stores = [SqlStore(url) for _ in range(2)]  # two pools: two independent connections
    erps = [SqlErp(own) for own in stores]
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
            orders = [demo.erp.order("PED-1001"), demo.erp.order("PED-1010")]
            outcomes = race(erps, orders, last_place, f"RACE{round_number}")
            assert sorted(outcomes) == sorted([RescheduleOutcome.DONE, RescheduleOutcome.WINDOW_FULL])
            after = slot_at(demo.erp, "MX-CDMX", day, 14)
            assert after.booked == after.capacity
            winner = orders[outcomes.index(RescheduleOutcome.DONE)]
            assert demo.erp.order(winner.id).window == last_place.window
    finally:
        for own in stores:
            own.dispose()


def test_the_reschedule_context_is_only_given_to_the_orders_own_customer(demo):
    from bot.scheduling import CalendarRules, load_context

    args = (CalendarRules(), "America/Mexico_City", NOW)
    own = load_context(demo.crm, demo.erp, MARIANA_MX, "PED-1001", *args)
    assert own.order.id == "PED-1001" and own.customer_zone == MEXICO
    assert own.current_slot_ids() == [slot_at(demo.erp, "MX-CDMX", TODAY + timedelta(days=1), 14).id]
    assert load_context(demo.crm, demo.erp, LUCIA_MX, "PED-1001", *args) is None
    assert load_context(demo.crm, demo.erp, MARIANA_MX, "PED-1010", *args) is None
    assert load_context(demo.crm, demo.erp, None, "PED-1010", *args) is None
    assert load_context(demo.crm, demo.erp, MARIANA_MX, "PED-1002", *args) is None  # no zone


def test_a_fixture_zone_mistake_stops_loading_with_its_place():
    from bot.demo import FixtureError, parse_calendar

    orders_in_nowhere = "orders:\n  - {id: PED-1, zone: NOWHERE}\n"
    with pytest.raises(FixtureError, match="zone 'NOWHERE' is not among the zones"):
        parse_calendar(orders_in_nowhere, TODAY)
    no_capacity = (
        "zones:\n  - {id: Z, name: Z, country: MX, timezone: America/Mexico_City,\n"
        "     windows: [{from: '09:00', to: '13:00'}]}\n"
    )
    with pytest.raises(FixtureError, match=r"zones\[0\]\.windows\[0\]: 'capacity' is required"):
        parse_calendar(no_capacity, TODAY)
