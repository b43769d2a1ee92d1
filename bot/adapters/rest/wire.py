"""The JSON shapes of docs/crm-erp-api.yaml and the records they carry, both ways.

The reference server writes them and the REST adapter reads them, so the two cannot drift
apart. Times are ISO 8601 with an offset; an answer without an offset is refused.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, datetime, timedelta, timezone
from typing import Any

from bot.records import (
    Case,
    CaseKind,
    Customer,
    DeliveryWindow,
    DeliveryZone,
    Order,
    OrderState,
    ScheduleChange,
    WindowSlot,
)


class WireError(ValueError):
    """A JSON document does not have the shape the contract gives it."""


def time_to_wire(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(timezone.utc).isoformat()


# RFC 3339 date-time, as JSON Schema's `date-time` format means it (any fraction length, Z or
# an offset, a leap second); Python 3.10's fromisoformat takes only what isoformat writes.
_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:[.,](\d+))?(?:([Zz])|([+-])(\d{2}):(\d{2}))?$"
)


def time_from_wire(value: Any, field: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise WireError(f"{field}: expected an ISO 8601 date-time string")
    match = _RFC3339.match(value)
    if match is None:
        raise WireError(f"{field}: {value!r} is not an ISO 8601 date-time")
    year, month, day, hour, minute, second, fraction, zulu, sign, off_h, off_m = match.groups()
    if not zulu and not sign:
        raise WireError(f"{field}: {value!r} has no UTC offset")
    offset = timedelta(0) if zulu else timedelta(hours=int(off_h), minutes=int(off_m))
    try:
        return datetime(
            int(year), int(month), int(day), int(hour), int(minute),
            min(int(second), 59),  # a leap second is read as the second before it
            int((fraction or "0")[:6].ljust(6, "0")),
            tzinfo=timezone(-offset if sign == "-" else offset),
        )  # fmt: skip
    except ValueError:
        raise WireError(f"{field}: {value!r} is not a valid date-time") from None


def _text(document: Mapping[str, Any], field: str, *, optional: bool = False) -> str | None:
    value = document.get(field)
    if value is None and optional:
        return None
    if not isinstance(value, str) or (not optional and not value):
        raise WireError(f"{field}: expected a {'string or null' if optional else 'non-empty string'}")
    return value


def _object(document: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(document, Mapping):
        raise WireError(f"{what}: expected a JSON object")
    return document


def customer_to_wire(customer: Customer) -> dict[str, Any]:
    return {
        "id": customer.id,
        "name": customer.name,
        "phone": customer.phone,
        "country": customer.country,
        "timezone": customer.timezone,
        "email": customer.email,
    }


def customer_from_wire(document: Any) -> Customer:
    data = _object(document, "customer")
    return Customer(
        id=_text(data, "id"),
        name=_text(data, "name"),
        phone=_text(data, "phone"),
        country=_text(data, "country"),
        timezone=_text(data, "timezone", optional=True),
        email=_text(data, "email", optional=True),
    )


def order_to_wire(order: Order) -> dict[str, Any]:
    window = order.window
    return {
        "id": order.id,
        "customer_id": order.customer_id,
        "state": order.state.value,
        "items": order.items,
        "placed_at": time_to_wire(order.placed_at),
        "carrier": order.carrier,
        "tracking_url": order.tracking_url,
        "window": {"start": time_to_wire(window.start), "end": time_to_wire(window.end)} if window else None,
        "delivered_at": time_to_wire(order.delivered_at),
        "cancelled_at": time_to_wire(order.cancelled_at),
    }


def order_from_wire(document: Any) -> Order:
    data = _object(document, "order")
    try:
        state = OrderState(data.get("state"))
    except ValueError:
        raise WireError(f"state: {data.get('state')!r} is not an order state") from None
    window = None
    if data.get("window") is not None:
        raw = _object(data["window"], "window")
        window = DeliveryWindow(
            time_from_wire(raw.get("start"), "window.start"), time_from_wire(raw.get("end"), "window.end")
        )
        if window.start is None or window.end is None:
            raise WireError("window: needs start and end")
    placed_at = time_from_wire(data.get("placed_at"), "placed_at")
    if placed_at is None:
        raise WireError("placed_at: required")
    return Order(
        id=_text(data, "id"),
        customer_id=_text(data, "customer_id"),
        state=state,
        items=_text(data, "items"),
        placed_at=placed_at,
        carrier=_text(data, "carrier", optional=True),
        tracking_url=_text(data, "tracking_url", optional=True),
        window=window,
        delivered_at=time_from_wire(data.get("delivered_at"), "delivered_at"),
        cancelled_at=time_from_wire(data.get("cancelled_at"), "cancelled_at"),
    )


def case_to_wire(case: Case) -> dict[str, Any]:
    return {
        "id": case.id,
        "kind": case.kind.value,
        "conversation_id": case.conversation_id,
        "customer_phone": case.customer_phone,
        "details": dict(case.details),
        "opened_at": time_to_wire(case.opened_at),
        "status": case.status,
    }


def case_from_wire(document: Any) -> Case:
    data = _object(document, "case")
    try:
        kind = CaseKind(data.get("kind"))
    except ValueError:
        raise WireError(f"kind: {data.get('kind')!r} is not a case kind") from None
    details = _object(data.get("details"), "details")
    if not all(isinstance(key, str) and isinstance(value, str) for key, value in details.items()):
        raise WireError("details: every value must be a string")
    opened_at = time_from_wire(data.get("opened_at"), "opened_at")
    if opened_at is None:
        raise WireError("opened_at: required")
    return Case(
        id=_text(data, "id"),
        kind=kind,
        conversation_id=_text(data, "conversation_id"),
        customer_phone=_text(data, "customer_phone", optional=True),
        details=dict(details),
        opened_at=opened_at,
        status=_text(data, "status"),
    )


def items_from_wire(document: Any, parse) -> list:
    """`{"items": [...]}`, each item parsed with `parse`."""
    items = _object(document, "list").get("items")
    if not isinstance(items, list):
        raise WireError("items: expected a JSON array")
    return [parse(item) for item in items]


# --- reschedule: delivery zones, windows with capacity, closed days and schedule changes ---------


def _integer(document: Mapping[str, Any], field: str, *, optional: bool = False) -> int | None:
    value = document.get(field)
    if value is None and optional:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise WireError(f"{field}: expected an integer{' or null' if optional else ''}")
    return value


def window_to_wire(window: DeliveryWindow | None) -> dict[str, Any] | None:
    return None if window is None else {"start": time_to_wire(window.start), "end": time_to_wire(window.end)}


def window_from_wire(document: Any, field: str) -> DeliveryWindow | None:
    if document is None:
        return None
    raw = _object(document, field)
    start, end = (
        time_from_wire(raw.get("start"), f"{field}.start"),
        time_from_wire(raw.get("end"), f"{field}.end"),
    )
    if start is None or end is None:
        raise WireError(f"{field}: needs start and end")
    return DeliveryWindow(start, end)


def zone_to_wire(zone: DeliveryZone) -> dict[str, Any]:
    return {
        "id": zone.id,
        "name": zone.name,
        "country": zone.country,
        "timezone": zone.timezone,
        "cutoff_hour": zone.cutoff_hour,
        "max_days_ahead": zone.max_days_ahead,
    }


def zone_from_wire(document: Any) -> DeliveryZone:
    data = _object(document, "zone")
    return DeliveryZone(
        id=_text(data, "id"),
        name=_text(data, "name"),
        country=_text(data, "country"),
        timezone=_text(data, "timezone"),
        cutoff_hour=_integer(data, "cutoff_hour", optional=True),
        max_days_ahead=_integer(data, "max_days_ahead", optional=True),
    )


def delivery_to_wire(order_id: str, zone: DeliveryZone | None) -> dict[str, Any]:
    return {"order_id": order_id, "zone": None if zone is None else zone_to_wire(zone)}


def delivery_zone_from_wire(document: Any) -> DeliveryZone | None:
    """The zone of a Delivery document; null when the order is delivered outside any zone."""
    zone = _object(document, "delivery").get("zone")
    return None if zone is None else zone_from_wire(zone)


def slot_to_wire(slot: WindowSlot) -> dict[str, Any]:
    return {
        "id": slot.id,
        "zone_id": slot.zone_id,
        "start": time_to_wire(slot.window.start),
        "end": time_to_wire(slot.window.end),
        "capacity": slot.capacity,
        "booked": slot.booked,
    }


def slot_from_wire(document: Any) -> WindowSlot:
    data = _object(document, "window")
    window = window_from_wire({"start": data.get("start"), "end": data.get("end")}, "window")
    capacity, booked = _integer(data, "capacity"), _integer(data, "booked")
    if capacity < 0 or booked < 0:
        raise WireError("capacity and booked cannot be negative")
    return WindowSlot(
        id=_integer(data, "id"),
        zone_id=_text(data, "zone_id"),
        window=window,
        capacity=capacity,
        booked=booked,
    )


def closure_to_wire(day: date, reason: str) -> dict[str, Any]:
    return {"day": day.isoformat(), "reason": reason}


def closures_from_wire(document: Any) -> dict[date, str]:
    def closure(item: Any) -> tuple[date, str]:
        data = _object(item, "closure")
        try:
            day = date.fromisoformat(_text(data, "day"))
        except ValueError:
            raise WireError(f"day: {data.get('day')!r} is not a YYYY-MM-DD date") from None
        return day, _text(data, "reason")

    return dict(items_from_wire(document, closure))


def change_to_wire(change: ScheduleChange) -> dict[str, Any]:
    """A ScheduleChange as recorded (GET .../delivery/changes, the answer of PUT .../delivery/window)."""
    return {
        "id": change.id,
        "order_id": change.order_id,
        "customer_id": change.customer_id,
        "phone": change.phone,
        "channel": change.channel,
        "changed_at": time_to_wire(change.changed_at),
        "old_window": window_to_wire(change.old_window),
        "new_window": window_to_wire(change.new_window),
        "window_id": change.new_slot_id,
    }


def change_from_wire(document: Any) -> ScheduleChange:
    data = _object(document, "change")
    changed_at = time_from_wire(data.get("changed_at"), "changed_at")
    new_window = window_from_wire(data.get("new_window"), "new_window")
    if changed_at is None or new_window is None:
        raise WireError("changed_at and new_window are required")
    return ScheduleChange(
        id=_text(data, "id"),
        order_id=_text(data, "order_id"),
        customer_id=_text(data, "customer_id"),
        phone=_text(data, "phone", optional=True),
        channel=_text(data, "channel"),
        changed_at=changed_at,
        old_window=window_from_wire(data.get("old_window"), "old_window"),
        new_window=new_window,
        new_slot_id=_integer(data, "window_id"),
    )


def reschedule_to_wire(change: ScheduleChange) -> dict[str, Any]:
    """The body of PUT /orders/{order_id}/delivery/window: the ERP takes both windows from its own
    records (the order's current one, the chosen window's), so the bot sends only what it knows."""
    return {
        "id": change.id,
        "window_id": change.new_slot_id,
        "customer_id": change.customer_id,
        "phone": change.phone,
        "channel": change.channel,
        "changed_at": time_to_wire(change.changed_at),
    }
