"""The JSON shapes of docs/crm-erp-api.yaml and the records they carry, both ways.

The reference server writes them and the REST adapter reads them, so the two cannot drift
apart. Times are ISO 8601 with an offset; an answer without an offset is refused.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from bot.records import (
    Case,
    CaseChange,
    CaseEvent,
    CaseKind,
    ContactChange,
    ContactDetails,
    ContactField,
    Customer,
    DeliveryWindow,
    DeliveryZone,
    Invoice,
    InvoiceStatus,
    Order,
    OrderLine,
    OrderState,
    Payment,
    PaymentLink,
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
        "lines": [{"name": line.name, "category": line.category} for line in order.lines],
    }


def lines_from_wire(raw: Any) -> tuple[OrderLine, ...]:
    """`lines` of an order: optional (an ERP may give only `items`), each a name and a category."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise WireError("lines: must be a list")
    lines = []
    for index, item in enumerate(raw):
        line = _object(item, f"lines[{index}]")
        lines.append(OrderLine(_text(line, "name"), _text(line, "category", optional=True)))
    return tuple(lines)


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
        lines=lines_from_wire(data.get("lines")),
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
        assigned_to=_text(data, "assigned_to", optional=True),
        rating=_integer(data, "rating", optional=True),
        rating_requested_at=time_from_wire(data.get("rating_requested_at"), "rating_requested_at"),
    )


def worked_case_to_wire(case: Case) -> dict[str, Any]:
    """A case as the CRM answers it: what the bot sent (case_to_wire, the NewCase shape) and
    what agents did since (who has it, the rating asked at closing)."""
    return {
        **case_to_wire(case),
        "assigned_to": case.assigned_to,
        "rating": case.rating,
        "rating_requested_at": time_to_wire(case.rating_requested_at),
    }


def case_event_to_wire(event: CaseEvent) -> dict[str, Any]:
    return {
        "case_id": event.case_id,
        "at": time_to_wire(event.at),
        "actor": event.actor,
        "action": event.action,
        "detail": event.detail,
        "customer_visible": event.customer_visible,
    }


def case_event_from_wire(document: Any) -> CaseEvent:
    data = _object(document, "case event")
    at = time_from_wire(data.get("at"), "at")
    if at is None:
        raise WireError("at: required")
    visible = data.get("customer_visible")
    if not isinstance(visible, bool):
        raise WireError("customer_visible: expected true or false")
    detail = data.get("detail")
    if not isinstance(detail, str):
        raise WireError("detail: expected a string")
    return CaseEvent(
        case_id=_text(data, "case_id"),
        at=at,
        actor=_text(data, "actor"),
        action=_text(data, "action"),
        detail=detail,
        customer_visible=visible,
    )


def case_change_to_wire(change: CaseChange) -> dict[str, Any]:
    """The body of POST /cases/{case_id}/events: the history line and what it changes."""
    event = change.event
    body: dict[str, Any] = {
        "at": time_to_wire(event.at),
        "actor": event.actor,
        "action": event.action,
        "detail": event.detail,
        "customer_visible": event.customer_visible,
    }
    extras = {
        "assigned_to": change.assigned_to,
        "from_status": change.from_status,
        "to_status": change.to_status,
        "rating": change.rating,
    }
    return {**body, **{key: value for key, value in extras.items() if value is not None}}


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


# --- payments and contact data (issue 6) ----------------------------------------------------------

_AMOUNT = re.compile(r"^-?[0-9]+(\.[0-9]{1,4})?$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")


def money_to_wire(amount: Decimal, currency: str) -> dict[str, str]:
    return {"amount": format(amount.quantize(Decimal("0.01")), "f"), "currency": currency}


def money_from_wire(document: Any, field: str) -> tuple[Decimal, str]:
    data = _object(document, field)
    amount, currency = data.get("amount"), data.get("currency")
    if not isinstance(amount, str) or not _AMOUNT.match(amount):
        raise WireError(f"{field}.amount: expected a decimal string like '1500.00'")
    if not isinstance(currency, str) or not _CURRENCY.match(currency):
        raise WireError(f"{field}.currency: expected an ISO 4217 code like 'MXN'")
    return Decimal(amount).quantize(Decimal("0.01")), currency


def _day_from_wire(value: Any, field: str) -> date:
    if not isinstance(value, str):
        raise WireError(f"{field}: expected a YYYY-MM-DD date")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise WireError(f"{field}: {value!r} is not a YYYY-MM-DD date") from None


def invoice_to_wire(invoice: Invoice) -> dict[str, Any]:
    return {
        "id": invoice.id,
        "customer_id": invoice.customer_id,
        "order_id": invoice.order_id,
        "amount": money_to_wire(invoice.amount, invoice.currency),
        "issued_on": invoice.issued_on.isoformat(),
        "due_on": invoice.due_on.isoformat(),
        "status": invoice.status.value,
    }


def invoice_from_wire(document: Any) -> Invoice:
    data = _object(document, "invoice")
    amount, currency = money_from_wire(data.get("amount"), "amount")
    try:
        status = InvoiceStatus(data.get("status"))
    except ValueError:
        raise WireError(f"status: {data.get('status')!r} is not an invoice status") from None
    return Invoice(
        id=_text(data, "id"),
        customer_id=_text(data, "customer_id"),
        amount=amount,
        currency=currency,
        issued_on=_day_from_wire(data.get("issued_on"), "issued_on"),
        due_on=_day_from_wire(data.get("due_on"), "due_on"),
        status=status,
        order_id=_text(data, "order_id", optional=True),
    )


def payment_to_wire(payment: Payment) -> dict[str, Any]:
    return {
        "id": payment.id,
        "customer_id": payment.customer_id,
        "invoice_id": payment.invoice_id,
        "amount": money_to_wire(payment.amount, payment.currency),
        "paid_at": time_to_wire(payment.paid_at),
        "method": payment.method,
    }


def payment_from_wire(document: Any) -> Payment:
    data = _object(document, "payment")
    amount, currency = money_from_wire(data.get("amount"), "amount")
    paid_at = time_from_wire(data.get("paid_at"), "paid_at")
    if paid_at is None:
        raise WireError("paid_at: required")
    return Payment(
        id=_text(data, "id"),
        customer_id=_text(data, "customer_id"),
        invoice_id=_text(data, "invoice_id", optional=True),
        amount=amount,
        currency=currency,
        paid_at=paid_at,
        method=_text(data, "method"),
    )


def payment_link_to_wire(link: PaymentLink) -> dict[str, Any]:
    return {
        "invoice_id": link.invoice_id,
        "url": link.url,
        "amount": money_to_wire(link.amount, link.currency),
        "expires_at": time_to_wire(link.expires_at),
    }


def payment_link_from_wire(document: Any) -> PaymentLink:
    data = _object(document, "payment link")
    amount, currency = money_from_wire(data.get("amount"), "amount")
    expires_at = time_from_wire(data.get("expires_at"), "expires_at")
    if expires_at is None:
        raise WireError("expires_at: required")
    return PaymentLink(
        url=_text(data, "url"),
        invoice_id=_text(data, "invoice_id"),
        amount=amount,
        currency=currency,
        expires_at=expires_at,
    )


def cancellation_to_wire(customer_id: str, cancelled_at: datetime) -> dict[str, Any]:
    """The body of POST /orders/{order_id}/cancellation: whose order, and when the customer
    confirmed (the assistant's clock, as for a reschedule's changed_at)."""
    return {"customer_id": customer_id, "cancelled_at": time_to_wire(cancelled_at)}


def promise_to_wire(invoice_id: str | None, promised_for: date, channel: str) -> dict[str, Any]:
    """The body of POST /customers/{customer_id}/promises-to-pay."""
    return {"invoice_id": invoice_id, "promised_for": promised_for.isoformat(), "channel": channel}


def contact_details_to_wire(details: ContactDetails) -> dict[str, Any]:
    return {
        "customer_id": details.customer_id,
        "email": details.email,
        "address": details.address,
        "district": details.district,
        "document_id": details.document_id,
    }


def contact_details_from_wire(document: Any) -> ContactDetails:
    data = _object(document, "contact details")
    return ContactDetails(
        customer_id=_text(data, "customer_id"),
        email=_text(data, "email", optional=True),
        address=_text(data, "address", optional=True),
        district=_text(data, "district", optional=True),
        document_id=_text(data, "document_id", optional=True),
    )


def contact_change_to_wire(change: ContactChange) -> dict[str, Any]:
    """A ContactChange as the CRM's audit keeps it."""
    return {
        "customer_id": change.customer_id,
        "field": change.field.value,
        "old": change.old,
        "new": change.new,
        "channel": change.channel,
        "verified_how": change.verified_how,
        "changed_at": time_to_wire(change.changed_at),
    }


def contact_change_from_wire(document: Any) -> ContactChange:
    data = _object(document, "contact change")
    try:
        field = ContactField(data.get("field"))
    except ValueError:
        raise WireError(f"field: {data.get('field')!r} is not email or address") from None
    changed_at = time_from_wire(data.get("changed_at"), "changed_at")
    if changed_at is None:
        raise WireError("changed_at: required")
    return ContactChange(
        customer_id=_text(data, "customer_id"),
        field=field,
        old=_text(data, "old", optional=True),
        new=_text(data, "new"),
        channel=_text(data, "channel"),
        verified_how=_text(data, "verified_how"),
        changed_at=changed_at,
    )


def new_contact_change_to_wire(change: ContactChange, district: str | None) -> dict[str, Any]:
    """The body of POST /customers/{customer_id}/contact-changes: the CRM records the old value
    from its own data, so a retried change carries the same body."""
    return {
        "field": change.field.value,
        "new": change.new,
        "district": district,
        "channel": change.channel,
        "verified_how": change.verified_how,
        "changed_at": time_to_wire(change.changed_at),
    }
