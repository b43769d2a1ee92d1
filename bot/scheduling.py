"""Rescheduling a delivery: which windows an order may move to, why a date is refused, and the write.

The calendar lives in the ERP (zones, windows with capacity, the business's closed days); the
rules here read it: no change for today, nor for tomorrow after the cutoff hour (the zone's
local clock); no further than max days ahead; no public holiday of the zone's country; only
orders not yet out for delivery. Services receive what they need (the ERP, the time now).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import Enum
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

import holidays

from bot.adapters.base import Crm, Erp
from bot.adapters.outbox_sql import Outbox
from bot.adapters.rest.wire import change_from_wire, change_to_wire  # the outbox keeps the contract's shape
from bot.date_phrases import DateRequest
from bot.management_ids import new_management_id
from bot.outbox import WriteConflict, WriteKind, WriteStatus, submit_write
from bot.records import (
    Customer,
    DeliveryWindow,
    DeliveryZone,
    Order,
    OrderState,
    RescheduleOutcome,
    ScheduleChange,
    WindowSlot,
)


@dataclass(frozen=True)
class CalendarRules:
    """The rules of one zone: defaults from the settings unless the ERP's zone overrides them."""

    cutoff_hour: int = 18  # from this local hour on, tomorrow can no longer be chosen
    max_days_ahead: int = 14

    def for_zone(self, zone: DeliveryZone) -> CalendarRules:
        return CalendarRules(
            cutoff_hour=self.cutoff_hour if zone.cutoff_hour is None else zone.cutoff_hour,
            max_days_ahead=self.max_days_ahead if zone.max_days_ahead is None else zone.max_days_ahead,
        )


class Blocker(str, Enum):
    """Why an order cannot change its delivery day at all (each has its own response)."""

    OUT_FOR_DELIVERY = "out_for_delivery"
    DELIVERED = "delivered"
    CANCELLED = "cancelled"
    NO_ZONE = "no_zone"  # delivered outside the zones the ERP schedules


def reschedule_blocker(order: Order, zone: DeliveryZone | None) -> Blocker | None:
    """Why `order` cannot be rescheduled, or None if it can."""
    if order.state in (OrderState.OUT_FOR_DELIVERY, OrderState.DELIVERED, OrderState.CANCELLED):
        return Blocker(order.state.value)
    if zone is None:
        return Blocker.NO_ZONE
    return None


def bookable_days(local_now: datetime, rules: CalendarRules) -> tuple[date, date]:
    """The first and last local day a delivery may move to, seen at `local_now` (zone's clock)."""
    today = local_now.date()
    first = today + timedelta(days=1 if local_now.hour < rules.cutoff_hour else 2)
    return first, today + timedelta(days=rules.max_days_ahead)


@lru_cache(maxsize=64)
def _country_holidays(country: str, year: int) -> dict[date, str]:
    try:
        calendar = holidays.country_holidays(country, years=year, language="es")
    except NotImplementedError:
        return {}
    except (KeyError, ValueError):  # a language the country's calendar does not translate
        calendar = holidays.country_holidays(country, years=year)
    return dict(calendar.items())


def public_holidays(country: str, first: date, last: date) -> dict[date, str]:
    """The country's public holidays between first and last, with their names."""
    found: dict[date, str] = {}
    for year in range(first.year, last.year + 1):
        found.update(
            {day: name for day, name in _country_holidays(country, year).items() if first <= day <= last}
        )
    return found


class Refusal(str, Enum):
    """Why a day the customer asked for cannot be given (each has its own response)."""

    PAST = "past"  # today or earlier
    TOO_SOON = "too_soon"  # tomorrow, after the cutoff hour
    TOO_FAR = "too_far"  # beyond max days ahead
    HOLIDAY = "holiday"  # a public holiday of the zone's country
    CLOSED = "closed"  # a closed day of the business, or a day without deliveries (Sundays)
    FULL = "full"  # every window of that day is taken
    NO_MATCHING_TIME = "no_matching_time"  # windows left that day, but not at that time


@dataclass(frozen=True)
class Proposal:
    """The answer to a date request: the windows that fit it, or why none does and what is near."""

    fitting: tuple[WindowSlot, ...] = ()
    refusal: Refusal | None = None
    detail: str = ""  # the holiday's or the closed day's name
    alternatives: tuple[WindowSlot, ...] = ()


@dataclass
class DeliveryCalendar:
    """The bookable windows of one zone as of `now`, loaded once from the ERP."""

    zone: DeliveryZone
    rules: CalendarRules
    now: datetime
    slots: list[WindowSlot] = field(default_factory=list)
    holidays: dict[date, str] = field(default_factory=dict)
    closures: dict[date, str] = field(default_factory=dict)

    @classmethod
    def load(cls, erp: Erp, zone: DeliveryZone, defaults: CalendarRules, now: datetime) -> DeliveryCalendar:
        rules = defaults.for_zone(zone)
        calendar = cls(zone, rules, now)
        first, last = calendar.first_day, calendar.last_day
        calendar.slots = erp.window_slots(zone.id, first, last)
        calendar.closures = erp.closed_days(zone.id, first, last)
        calendar.holidays = public_holidays(zone.country, first, last)
        return calendar

    @property
    def local_now(self) -> datetime:
        return self.now.astimezone(ZoneInfo(self.zone.timezone))

    @property
    def first_day(self) -> date:
        return bookable_days(self.local_now, self.rules)[0]

    @property
    def last_day(self) -> date:
        return bookable_days(self.local_now, self.rules)[1]

    def local_day(self, slot: WindowSlot) -> date:
        return slot.window.start.astimezone(ZoneInfo(self.zone.timezone)).date()

    def day_refusal(self, day: date) -> tuple[Refusal, str] | None:
        """Why no window of `day` can be booked, whatever its capacity; None if the day is open."""
        today = self.local_now.date()
        if day <= today:
            return Refusal.PAST, ""
        if day < self.first_day:
            return Refusal.TOO_SOON, ""
        if day > self.last_day:
            return Refusal.TOO_FAR, ""
        if day in self.holidays:
            return Refusal.HOLIDAY, self.holidays[day]
        if day in self.closures:
            return Refusal.CLOSED, self.closures[day]
        if not any(self.local_day(slot) == day for slot in self.slots):
            return Refusal.CLOSED, ""
        return None

    def bookable(self, exclude: Iterable[int] = ()) -> list[WindowSlot]:
        """Every window with a place left on an open day, earliest first."""
        excluded = set(exclude)
        return [
            slot
            for slot in self.slots
            if slot.remaining > 0
            and slot.id not in excluded
            and self.day_refusal(self.local_day(slot)) is None
        ]

    def next_windows(self, count: int = 3, exclude: Iterable[int] = ()) -> list[WindowSlot]:
        """The next `count` windows that can be booked."""
        return self.bookable(exclude)[:count]

    def nearest(self, request: DateRequest, count: int = 3, exclude: Iterable[int] = ()) -> list[WindowSlot]:
        """The bookable windows closest to the asked day, those at the asked time of day first."""
        tz = ZoneInfo(self.zone.timezone)

        def distance(slot: WindowSlot) -> tuple[int, int, datetime]:
            fits = request.accepts_start(slot.window.start.astimezone(tz).time())
            return (abs((self.local_day(slot) - request.day).days), 0 if fits else 1, slot.window.start)

        return sorted(self.bookable(exclude), key=distance)[:count]

    def propose(self, request: DateRequest, exclude: Iterable[int] = ()) -> Proposal:
        """The windows that fit what the customer asked, or the reason and the nearest ones."""
        tz = ZoneInfo(self.zone.timezone)
        days = [request.day + timedelta(days=n) for n in range(7 if request.whole_week else 1)]

        def fits(slot: WindowSlot) -> bool:
            start, end = slot.window.start.astimezone(tz), slot.window.end.astimezone(tz)
            if request.at is not None:
                return start.time() <= request.at < end.time() or start.time() == request.at
            return request.accepts_start(start.time())

        open_days = [day for day in days if self.day_refusal(day) is None]
        on_days = [slot for slot in self.bookable(exclude) if self.local_day(slot) in open_days]
        fitting = [slot for slot in on_days if fits(slot)]
        if fitting:
            return Proposal(fitting=tuple(fitting[:3]))
        if not open_days:
            refusal, detail = self.day_refusal(days[0]) or (Refusal.CLOSED, "")
        elif on_days:
            refusal, detail = Refusal.NO_MATCHING_TIME, ""
        else:
            refusal, detail = Refusal.FULL, ""
        nearest = self.nearest(request, exclude=exclude)
        return Proposal(refusal=refusal, detail=detail, alternatives=tuple(nearest))


@dataclass(frozen=True)
class RescheduleContext:
    """The customer, the order being moved and its zone's calendar, as of one moment."""

    customer: Customer
    order: Order
    calendar: DeliveryCalendar
    business_timezone: str

    @property
    def customer_zone(self) -> ZoneInfo:
        """Where the customer's "mañana" and "el martes" are read, and windows are shown."""
        return ZoneInfo(self.customer.timezone or self.business_timezone)

    def current_slot_ids(self) -> list[int]:
        """The window the order already holds: never offered as a change."""
        return [slot.id for slot in self.calendar.slots if slot.window == self.order.window]


def load_context(
    crm: Crm,
    erp: Erp,
    phone: str | None,
    order_id: str,
    defaults: CalendarRules,
    business_timezone: str,
    now: datetime,
) -> RescheduleContext | None:
    """The context to move `order_id`, only for its own customer (the sender of `phone`).

    None when the order is not theirs, or is delivered outside the scheduled zones.
    """
    customer = crm.customer_by_phone(phone) if phone else None
    order = erp.order(order_id) if customer else None
    if order is None or order.customer_id != customer.id:
        return None
    zone = erp.delivery_zone_of(order.id)
    if zone is None:
        return None
    return RescheduleContext(
        customer, order, DeliveryCalendar.load(erp, zone, defaults, now), business_timezone
    )


@dataclass(frozen=True)
class RescheduleResult:
    outcome: RescheduleOutcome
    change_id: str | None = None  # the management ID, when DONE
    # The ERP did not answer: the change waits in the outbox under change_id, and the customer
    # is told when it goes through (outcome is DONE: accepted, not refused).
    queued: bool = False


_ID_DRAWS = 5


# --- the write kind: a change of delivery window in the ERP ----------------------------------------
# payload {"change": ScheduleChange as the contract writes it, "notice": {order_id, window}: how
# the customer was told the window, for the confirmation}


def _apply_reschedule(erp: Erp, payload: Mapping[str, Any]) -> None:
    change = change_from_wire(payload["change"])
    outcome = erp.reschedule(change)
    if outcome is RescheduleOutcome.ID_TAKEN and any(
        done.id == change.id and done.new_slot_id == change.new_slot_id
        for done in erp.schedule_history(change.order_id)
    ):
        # Applied by an attempt whose answer was lost (an ERP without idempotency keys, such as
        # the SQL one when the connection dropped at commit): this very change is there.
        return
    if outcome is not RescheduleOutcome.DONE:
        raise WriteConflict(f"reschedule {change.id}: {outcome.value}", code=outcome.value)


RESCHEDULE = WriteKind(
    "delivery.reschedule",
    _apply_reschedule,
    system="erp",
    confirmation="utter_reschedule_confirmed_later",
    failure="utter_reschedule_queued_failed",
    conflict="utter_reschedule_queued_conflict",
    notice_fields=("order_id", "window"),
)


# --- the write through the outbox: never lost while the ERP is down -------------------------------


@dataclass(frozen=True)
class RescheduleRequest:
    """A confirmed change of delivery window, as the customer chose it."""

    order_id: str
    customer_id: str
    old_window: DeliveryWindow | None  # the window the order holds now (the audit's "before")
    slot_id: int
    new_window: DeliveryWindow
    phone: str | None
    channel: str
    conversation_id: str
    notice: str  # the window as the customer was shown it, for the later confirmation


def request_reschedule(
    erp: Erp,
    outbox: Outbox,
    request: RescheduleRequest,
    now: datetime,
) -> RescheduleResult:
    """Move the order to the chosen window in the ERP, through the outbox; the ERP enforces the
    capacity and records who asked.

    When the ERP answers, the result is at once: DONE with a management ID, or the window taken,
    or the order no longer movable. When it does not, the change is kept under its management ID
    (`queued`) and the outbox worker applies it later and tells the customer, with
    `request.notice`. Raises WriteRejected when the ERP refuses the request itself,
    BackendUnavailable when not even the outbox can record it.
    """
    for _ in range(_ID_DRAWS):
        change = ScheduleChange(
            id=new_management_id(),
            order_id=request.order_id,
            customer_id=request.customer_id,
            phone=request.phone,
            channel=request.channel,
            changed_at=now,
            old_window=request.old_window,
            new_window=request.new_window,
            new_slot_id=request.slot_id,
        )
        payload = {
            "change": change_to_wire(change),
            "notice": {"order_id": request.order_id, "window": request.notice},
        }
        try:
            written = submit_write(
                RESCHEDULE,
                payload,
                system=erp,
                outbox=outbox,
                conversation_id=request.conversation_id,
                customer_phone=request.phone,
                management_id=change.id,
                now=now,
            )
        except WriteConflict as conflict:
            if conflict.code == RescheduleOutcome.ID_TAKEN.value:
                continue  # draw another management ID
            return RescheduleResult(RescheduleOutcome(conflict.code or RescheduleOutcome.NOT_ALLOWED.value))
        return RescheduleResult(
            RescheduleOutcome.DONE, change.id, queued=written.status is WriteStatus.QUEUED
        )
    raise RuntimeError(f"no free management ID after {_ID_DRAWS} draws")
