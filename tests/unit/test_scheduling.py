"""The rescheduling rules: cutoff in each zone's clock, days ahead, holidays, closures, capacity."""

from datetime import date, datetime, time, timezone
from zoneinfo import ZoneInfo

import pytest

from bot.date_phrases import DateRequest
from bot.records import Order, OrderState
from bot.scheduling import (
    Blocker,
    Refusal,
    bookable_days,
    reschedule_blocker,
)
from tests.scheduling_helpers import RULES, ZONES, calendar, local, zone_of


@pytest.mark.parametrize("country", ZONES)
def test_before_the_cutoff_tomorrow_can_still_be_chosen(country):
    first, _ = bookable_days(local(country, 2026, 11, 26, 17, 59), RULES)
    assert first == date(2026, 11, 27)


@pytest.mark.parametrize("country", ZONES)
def test_from_the_cutoff_hour_on_tomorrow_is_closed(country):
    first, _ = bookable_days(local(country, 2026, 11, 26, 18, 0), RULES)
    assert first == date(2026, 11, 28)


def test_the_cutoff_is_read_on_each_zones_own_clock():
    # 22:30 UTC: 16:30 in Mexico City, 17:30 in Bogotá and Lima, 19:30 in Buenos Aires and Santiago.
    now = datetime(2026, 11, 26, 22, 30, tzinfo=timezone.utc)
    first = {country: calendar(country, now).first_day for country in ZONES}
    assert first == {
        "MX": date(2026, 11, 27),
        "CO": date(2026, 11, 27),
        "PE": date(2026, 11, 27),
        "AR": date(2026, 11, 28),
        "CL": date(2026, 11, 28),
    }


def test_late_evening_utc_is_still_the_previous_local_day():
    # 01:00 UTC on the 27th is 19:00 on the 26th in Mexico City: after the cutoff of the 26th.
    cal = calendar("MX", datetime(2026, 11, 27, 1, 0, tzinfo=timezone.utc))
    assert cal.local_now.date() == date(2026, 11, 26)
    assert cal.first_day == date(2026, 11, 28)


def test_a_zone_can_override_the_business_cutoff():
    rules = RULES.for_zone(zone_of("CO", cutoff_hour=16, max_days_ahead=7))
    assert (rules.cutoff_hour, rules.max_days_ahead) == (16, 7)
    assert bookable_days(local("CO", 2026, 11, 26, 16, 5), rules) == (date(2026, 11, 28), date(2026, 12, 3))


def test_today_is_never_offered_and_is_refused_as_past():
    cal = calendar("MX", local("MX", 2026, 11, 26, 8, 0))
    assert cal.day_refusal(date(2026, 11, 26)) == (Refusal.PAST, "")
    assert cal.day_refusal(date(2026, 11, 20)) == (Refusal.PAST, "")
    assert all(cal.local_day(slot) > date(2026, 11, 26) for slot in cal.bookable())


def test_tomorrow_after_the_cutoff_is_refused_as_too_soon():
    cal = calendar("PE", local("PE", 2026, 11, 26, 20, 0))
    assert cal.day_refusal(date(2026, 11, 27)) == (Refusal.TOO_SOON, "")


def test_further_than_max_days_ahead_is_refused_across_the_month_boundary():
    cal = calendar("AR", local("AR", 2026, 11, 26, 10, 0))
    assert cal.last_day == date(2026, 12, 10)
    assert cal.day_refusal(date(2026, 12, 11)) == (Refusal.TOO_FAR, "")
    assert cal.day_refusal(date(2026, 12, 10)) is None


def test_year_boundary_new_years_day_is_a_holiday_and_the_next_window_is_the_second():
    cal = calendar("MX", local("MX", 2026, 12, 31, 10, 0))
    assert cal.first_day == date(2027, 1, 1)
    assert cal.day_refusal(date(2027, 1, 1)) == (Refusal.HOLIDAY, "Año Nuevo")
    assert cal.local_day(cal.next_windows()[0]) == date(2027, 1, 2)


@pytest.mark.parametrize(
    ("country", "day", "name"),
    [
        ("MX", date(2026, 12, 25), "Navidad"),
        ("AR", date(2026, 12, 8), "Inmaculada Concepción de María"),
        ("PE", date(2026, 12, 9), "Batalla de Ayacucho"),
        ("CO", date(2026, 12, 8), "La Inmaculada Concepción"),
        ("CL", date(2026, 12, 8), "La Inmaculada Concepción"),
    ],
)
def test_public_holidays_of_the_zones_country_are_refused_with_their_name(country, day, name):
    cal = calendar(country, local(country, 2026, day.month, day.day - 6, 9, 0))
    assert cal.day_refusal(day) == (Refusal.HOLIDAY, name)
    assert all(cal.local_day(slot) != day for slot in cal.bookable())


def test_a_holiday_of_one_country_is_a_working_day_in_another():
    assert calendar("MX", local("MX", 2026, 12, 1, 9, 0)).day_refusal(date(2026, 12, 8)) is None


def test_the_businesss_own_closed_days_and_days_without_windows_are_closed():
    closures = {date(2026, 12, 2): "inventario anual"}
    cal = calendar("MX", local("MX", 2026, 11, 26, 9, 0), closures=closures)
    assert cal.day_refusal(date(2026, 12, 2)) == (Refusal.CLOSED, "inventario anual")
    assert cal.day_refusal(date(2026, 11, 29)) == (Refusal.CLOSED, "")  # a Sunday: no windows


def test_full_windows_are_not_offered_and_the_next_three_are():
    now = local("MX", 2026, 11, 26, 9, 0)
    cal = calendar("MX", now, booked={(date(2026, 11, 27), 9): 3})
    offered = cal.next_windows()
    assert len(offered) == 3
    assert [(cal.local_day(s), s.window.start.astimezone(ZoneInfo(ZONES["MX"])).hour) for s in offered] == [
        (date(2026, 11, 27), 14),
        (date(2026, 11, 28), 9),
        (date(2026, 11, 28), 14),
    ]


def test_a_nearly_full_window_is_still_offered():
    cal = calendar("MX", local("MX", 2026, 11, 26, 9, 0), booked={(date(2026, 11, 27), 9): 2})
    assert cal.next_windows()[0].remaining == 1


def test_a_full_day_is_refused_with_the_nearest_windows():
    day = date(2026, 12, 1)
    cal = calendar("MX", local("MX", 2026, 11, 26, 9, 0), booked={(day, 9): 3, (day, 14): 3})
    proposal = cal.propose(DateRequest(day))
    assert proposal.refusal is Refusal.FULL and not proposal.fitting
    assert {cal.local_day(slot) for slot in proposal.alternatives} <= {date(2026, 11, 30), date(2026, 12, 2)}
    assert len(proposal.alternatives) == 3


def test_a_day_with_windows_but_not_at_the_asked_time_says_so():
    cal = calendar("MX", local("MX", 2026, 11, 26, 9, 0))
    proposal = cal.propose(DateRequest(date(2026, 12, 1), "noche"))
    assert proposal.refusal is Refusal.NO_MATCHING_TIME
    assert cal.local_day(proposal.alternatives[0]) == date(2026, 12, 1)


def test_a_day_and_part_of_day_that_fit_give_exactly_that_window():
    cal = calendar("MX", local("MX", 2026, 11, 26, 9, 0))
    proposal = cal.propose(DateRequest(date(2026, 12, 1), "tarde"))
    [slot] = proposal.fitting
    assert slot.window.start.astimezone(ZoneInfo(ZONES["MX"])).time() == time(14, 0)


def test_a_clock_time_picks_the_window_that_contains_it():
    cal = calendar("MX", local("MX", 2026, 11, 26, 9, 0))
    [slot] = cal.propose(DateRequest(date(2026, 12, 1), "manana", time(10, 30))).fitting
    assert slot.window.start.astimezone(ZoneInfo(ZONES["MX"])).time() == time(9, 0)


def test_next_week_offers_the_first_windows_from_monday():
    cal = calendar("MX", local("MX", 2026, 11, 26, 9, 0))
    proposal = cal.propose(DateRequest(date(2026, 11, 30), whole_week=True))
    assert [cal.local_day(slot) for slot in proposal.fitting] == [date(2026, 11, 30)] * 2 + [
        date(2026, 12, 1)
    ]


def test_a_holiday_request_gets_its_reason_and_the_nearest_days():
    cal = calendar("MX", local("MX", 2026, 12, 20, 9, 0))
    proposal = cal.propose(DateRequest(date(2026, 12, 25)))
    assert (proposal.refusal, proposal.detail) == (Refusal.HOLIDAY, "Navidad")
    assert {cal.local_day(slot) for slot in proposal.alternatives} <= {date(2026, 12, 24), date(2026, 12, 26)}


def order_in(state: OrderState) -> Order:
    return Order("PED-1", "C-1", state, "Mesa", datetime(2026, 11, 20, tzinfo=timezone.utc))


@pytest.mark.parametrize(
    ("state", "blocker"),
    [
        (OrderState.CREATED, None),
        (OrderState.IN_TRANSIT, None),
        (OrderState.OUT_FOR_DELIVERY, Blocker.OUT_FOR_DELIVERY),
        (OrderState.DELIVERED, Blocker.DELIVERED),
        (OrderState.CANCELLED, Blocker.CANCELLED),
    ],
)
def test_only_orders_not_yet_out_for_delivery_can_move(state, blocker):
    assert reschedule_blocker(order_in(state), zone_of("MX")) is blocker


def test_an_order_outside_the_scheduled_zones_cannot_move():
    assert reschedule_blocker(order_in(OrderState.CREATED), None) is Blocker.NO_ZONE
