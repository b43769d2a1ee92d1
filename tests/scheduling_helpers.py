"""Delivery calendars for the rescheduling tests: synthetic ones in each country's zone, and the
slots and schedule changes of the SQL ERP."""

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from bot.adapters.sql import SqlErp
from bot.records import DeliveryWindow, DeliveryZone, ScheduleChange, WindowSlot
from bot.scheduling import CalendarRules, DeliveryCalendar, bookable_days, public_holidays
from tests.conftest import MARIANA_MX, NOW

ZONES = {
    "MX": "America/Mexico_City",
    "AR": "America/Argentina/Buenos_Aires",
    "PE": "America/Lima",
    "CO": "America/Bogota",
    "CL": "America/Santiago",
}
RULES = CalendarRules(cutoff_hour=18, max_days_ahead=14)


def zone_of(country: str, **overrides) -> DeliveryZone:
    return DeliveryZone(f"{country}-1", "Centro", country, ZONES[country], **overrides)


def calendar(country: str, now: datetime, days: int = 40, booked: dict | None = None, closures=None):
    """A calendar with two windows (09-13, 14-18) every Monday to Saturday from now's local day."""
    zone = zone_of(country)
    tz = ZoneInfo(zone.timezone)
    start_day = now.astimezone(tz).date()
    slots, next_id = [], 1
    for offset in range(days):
        day = start_day + timedelta(days=offset)
        if day.weekday() == 6:
            continue
        for begin, end in ((9, 13), (14, 18)):
            window = DeliveryWindow(
                datetime.combine(day, time(begin), tz), datetime.combine(day, time(end), tz)
            )
            taken = (booked or {}).get((day, begin), 0)
            slots.append(WindowSlot(next_id, zone.id, window, capacity=3, booked=taken))
            next_id += 1
    rules = RULES.for_zone(zone)
    first, last = bookable_days(now.astimezone(tz), rules)
    return DeliveryCalendar(
        zone,
        rules,
        now,
        slots=slots,
        holidays=public_holidays(country, first, last),
        closures=closures or {},
    )


def local(country: str, *args) -> datetime:
    return datetime(*args, tzinfo=ZoneInfo(ZONES[country]))


MEXICO = ZoneInfo("America/Mexico_City")


def slot_at(erp: SqlErp, zone_id: str, day: date, hour: int) -> WindowSlot:
    [slot] = [
        s for s in erp.window_slots(zone_id, day, day) if s.window.start.astimezone(MEXICO).hour == hour
    ]
    return slot


def change_for(order, slot: WindowSlot, change_id: str = "GES-TESTTEST") -> ScheduleChange:
    return ScheduleChange(
        id=change_id,
        order_id=order.id,
        customer_id=order.customer_id,
        phone=MARIANA_MX,
        channel="whatsapp",
        changed_at=NOW,
        old_window=order.window,
        new_window=slot.window,
        new_slot_id=slot.id,
    )
