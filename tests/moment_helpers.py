"""The moments that break clocks, shared by tests/unit/test_moments.py and
tests/integration/test_moments.py."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from bot.clock import parse_moment
from bot.scheduling import DeliveryCalendar, public_holidays

MEXICO = ZoneInfo("America/Mexico_City")
SANTIAGO = ZoneInfo("America/Santiago")


@dataclass(frozen=True)
class Moment:
    name: str
    at: datetime
    handoff_open: bool  # with bot/handoff_config.yml: Mon-Fri 9-19, Sat 9-14, MX holidays closed
    handoff_reopens: datetime | None  # when people are back, if closed


MOMENTS = [
    Moment(
        "saturday night",
        parse_moment("2026-11-28T22:30:00-06:00"),
        False,
        datetime(2026, 11, 30, 9, 0, tzinfo=MEXICO),  # Monday
    ),
    Moment(
        "public holiday",  # Christmas, a Friday
        parse_moment("2026-12-25T11:00:00-06:00"),
        False,
        datetime(2026, 12, 26, 9, 0, tzinfo=MEXICO),  # Saturday morning
    ),
    Moment("last day of a month", parse_moment("2026-11-30T17:45:00-06:00"), True, None),
    Moment("the cutoff hour", parse_moment("2026-11-26T18:00:00-06:00"), True, None),
    Moment(
        "new year's eve",  # the business's own closed day, then Mexico's New Year holiday
        parse_moment("2026-12-31T23:30:00-06:00"),
        False,
        datetime(2027, 1, 2, 9, 0, tzinfo=MEXICO),
    ),
    Moment(
        "chile's summer time ends",  # at midnight Santiago's clocks go back to 23:00
        parse_moment("2026-04-04T23:30:00-03:00"),
        False,
        datetime(2026, 4, 6, 9, 0, tzinfo=MEXICO),
    ),
    Moment(
        "chile's summer time starts",  # at midnight Santiago's clocks jump to 01:00
        parse_moment("2026-09-05T23:30:00-04:00"),
        False,
        datetime(2026, 9, 7, 9, 0, tzinfo=MEXICO),
    ),
]


def check_offers(calendar: DeliveryCalendar, moment: datetime) -> None:
    zone = ZoneInfo(calendar.zone.timezone)
    local_now = moment.astimezone(zone)
    rules = calendar.rules
    first = local_now.date() + timedelta(days=1 if local_now.hour < rules.cutoff_hour else 2)
    last = local_now.date() + timedelta(days=rules.max_days_ahead)
    holidays = public_holidays(calendar.zone.country, first, last)
    offered = calendar.bookable()
    assert offered, "some window is always bookable within the days ahead"
    for slot in offered:
        day = slot.window.start.astimezone(zone).date()
        assert first <= day <= last, (day, first, last)
        assert day not in holidays, (day, holidays[day])
        assert day.weekday() != 6  # no deliveries on Sundays in these calendars
        assert slot.window.start > moment
