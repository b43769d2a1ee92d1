"""What the CRM/ERP tells the assistant happened: one event, validated at the door."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any

from bot.clock import parse_moment
from bot.messaging.inbound import Channel
from bot.phone import InvalidPhoneNumber, normalize_phone

MAX_VARIABLES = 20
MAX_VARIABLE_LENGTH = 200
MAX_ID_LENGTH = 120


class EventKind(str, Enum):
    """The business events the assistant can notify; values are the contract's names."""

    ORDER_SHIPPED = "order_shipped"
    OUT_FOR_DELIVERY = "out_for_delivery"
    DELIVERY_TOMORROW = "delivery_tomorrow"
    DELIVERY_FAILED = "delivery_failed"
    INVOICE_DUE_SOON = "invoice_due_soon"
    INVOICE_OVERDUE = "invoice_overdue"
    VISIT_TOMORROW = "visit_tomorrow"
    CASE_UPDATED = "case_updated"


class InvalidEvent(ValueError):
    """The event cannot be accepted as sent; the message says what to fix."""


@dataclass(frozen=True)
class NotificationEvent:
    """One event. `(source, event_id)` is the source's own identity for it: the same pair twice
    is the same event (a retried POST, a pull job seeing it again) and is notified once."""

    source: str
    event_id: str
    kind: EventKind
    occurred_at: datetime  # timezone-aware
    phone: str | None = None  # E.164; or the customer's id, looked up in the CRM
    customer_id: str | None = None
    channel: Channel | None = None  # None: the channel the customer last wrote from
    variables: dict[str, str] = field(default_factory=dict)

    def to_payload(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "event_id": self.event_id,
            "kind": self.kind.value,
            "occurred_at": self.occurred_at.isoformat(),
            "phone": self.phone,
            "customer_id": self.customer_id,
            "channel": self.channel.value if self.channel else None,
            "variables": dict(self.variables),
        }


def parse_event(payload: Any, default_country: str = "MX") -> NotificationEvent:
    """An event from its JSON form (docs/crm-erp-api.yaml, NotificationEvent); InvalidEvent if not."""
    if not isinstance(payload, dict):
        raise InvalidEvent("the body must be a JSON object")
    event_id = _text(payload, "event_id", required=True)
    source = _text(payload, "source") or "crm"
    kind_name = _text(payload, "kind", required=True)
    try:
        kind = EventKind(kind_name)
    except ValueError:
        names = ", ".join(kind.value for kind in EventKind)
        raise InvalidEvent(f"kind {kind_name!r} is not one of: {names}") from None
    try:
        occurred_at = parse_moment(_text(payload, "occurred_at", required=True) or "")
    except ValueError as error:
        raise InvalidEvent(f"occurred_at: {error}") from None
    phone = _text(payload, "phone")
    if phone:
        try:
            phone = normalize_phone(phone, default_country)
        except InvalidPhoneNumber:
            raise InvalidEvent(f"phone {phone!r} is not a phone number") from None
    customer_id = _text(payload, "customer_id")
    if not phone and not customer_id:
        raise InvalidEvent("give the customer's phone (E.164) or customer_id")
    channel_name = _text(payload, "channel")
    try:
        channel = Channel(channel_name) if channel_name else None
    except ValueError:
        raise InvalidEvent(f"channel {channel_name!r}: use whatsapp or sms") from None
    variables = payload.get("variables") or {}
    if not isinstance(variables, dict) or len(variables) > MAX_VARIABLES:
        raise InvalidEvent(f"variables must be an object of at most {MAX_VARIABLES} names")
    clean: dict[str, str] = {}
    for name, value in variables.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise InvalidEvent(f"variable name {name!r}: letters, digits and _ only")
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise InvalidEvent(f"variable {name}: a string or a number")
        text = str(value)
        if len(text) > MAX_VARIABLE_LENGTH:
            raise InvalidEvent(f"variable {name}: at most {MAX_VARIABLE_LENGTH} characters")
        clean[name] = text
    return NotificationEvent(source, event_id, kind, occurred_at, phone, customer_id, channel, clean)


def _text(payload: dict, name: str, required: bool = False) -> str | None:
    value = payload.get(name)
    if value is None or value == "":
        if required:
            raise InvalidEvent(f"{name} is required")
        return None
    if not isinstance(value, str) or len(value) > MAX_ID_LENGTH:
        raise InvalidEvent(f"{name} must be a string of at most {MAX_ID_LENGTH} characters")
    return value.strip()
