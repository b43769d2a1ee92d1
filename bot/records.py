"""What the business knows about customers and orders, as the rest of bot/ sees it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import Enum


class OrderState(str, Enum):
    """Where an order is in its life; values are what the CRM/ERP stores."""

    CREATED = "created"
    IN_TRANSIT = "in_transit"
    OUT_FOR_DELIVERY = "out_for_delivery"
    DELIVERED = "delivered"
    CANCELLED = "cancelled"

    @property
    def is_open(self) -> bool:
        return self in (OrderState.CREATED, OrderState.IN_TRANSIT, OrderState.OUT_FOR_DELIVERY)


@dataclass(frozen=True)
class Customer:
    id: str
    name: str
    phone: str  # E.164
    country: str  # ISO 3166 alpha-2
    timezone: str | None = None  # IANA; None means the business's zone
    email: str | None = None

    @property
    def first_name(self) -> str:
        return self.name.split()[0] if self.name else ""


@dataclass(frozen=True)
class DeliveryWindow:
    """When a delivery is expected; both ends are timezone-aware."""

    start: datetime
    end: datetime


@dataclass(frozen=True)
class OrderLine:
    """One product of an order, with the ERP's product category (what the return rules read)."""

    name: str
    category: str | None = None  # None: the ERP did not say; the return rules' default applies


@dataclass(frozen=True)
class Order:
    id: str
    customer_id: str
    state: OrderState
    items: str
    placed_at: datetime
    carrier: str | None = None
    tracking_url: str | None = None
    window: DeliveryWindow | None = None
    delivered_at: datetime | None = None
    cancelled_at: datetime | None = None
    lines: tuple[OrderLine, ...] = ()  # empty: an ERP that gives only `items`

    @property
    def products(self) -> tuple[OrderLine, ...]:
        """The order's products: its lines, or `items` as one product of unknown category."""
        return self.lines or (OrderLine(self.items),)


class CaseKind(str, Enum):
    """What a customer asked that a person of the team will handle; values are what is stored."""

    CANCEL_ORDER = "cancel_order"
    RETURN_REQUEST = "return_request"
    EXCHANGE_REQUEST = "exchange_request"  # a product returned for another (the guided return flow)
    HUMAN_HANDOFF = "human_handoff"
    # --- problems reported (issue 16); a wrong or damaged item is a RETURN_REQUEST ---
    ORDER_NOT_ARRIVED = "order_not_arrived"  # not received, even if it shows as delivered
    PAYMENT_PROBLEM = "payment_problem"  # charged twice, card rejected, charged but failed
    REFUND_STATUS = "refund_status"  # a follow-up: how a refund is going (not readable here yet)
    # --- outbox: a change the CRM/ERP never accepted, for a person to finish by hand ---
    FAILED_WRITE = "failed_write"
    # --- payments (issue 6) ---
    PAYMENT_RECEIPT = "payment_receipt"  # "ya pagué" not found: the receipt for a person to check
    PAYMENT_REVIEW = "payment_review"  # above PAYMENT_HANDOFF_THRESHOLD: a person takes the payment


@dataclass(frozen=True)
class Case:
    """A customer's request with a management ID (GES-…) that the team follows up."""

    id: str
    kind: CaseKind
    conversation_id: str  # the channel's sender: where a person answers
    customer_phone: str | None  # E.164, when the sender is a phone number
    details: dict[str, str]  # what the customer wrote and the references in it
    opened_at: datetime  # timezone-aware
    status: str = "open"  # open | in_progress | waiting_customer | resolved | closed (bot/case_work.py)
    assigned_to: str | None = None  # the agent who works it
    rating: int | None = None  # the customer's 1-5 answer once the case is closed
    rating_requested_at: datetime | None = None  # when the closing asked for it


@dataclass(frozen=True)
class CaseEvent:
    """One line of a case's history: who did what, when. `customer_visible` marks what the
    customer was sent; an internal note never is."""

    case_id: str
    at: datetime  # timezone-aware
    actor: str  # the agent's login, or "bot" / "customer"
    action: str  # assigned | status | note | message | rating_requested | rated
    detail: str
    customer_visible: bool = False


@dataclass(frozen=True)
class CaseChange:
    """A change to a case with the line it adds to the history: `event.action` says which
    (assigned: `assigned_to`; status: `from_status` → `to_status`, only if still `from_status`;
    rating_requested; rated: `rating`, once, if asked; note and message change nothing else)."""

    event: CaseEvent
    assigned_to: str | None = None
    from_status: str | None = None
    to_status: str | None = None
    rating: int | None = None


_ORDER_REF = re.compile(r"(?i)^\s*#?\s*(?:ped(?:ido)?)?[\s#:-]*(\d{3,8})\s*$")


def normalize_order_id(text: str) -> str | None:
    """`PED-1001`, `ped1001`, `pedido 1001`, `#1001` and `1001` all name order `PED-1001`."""
    match = _ORDER_REF.match(text or "")
    return f"PED-{match.group(1)}" if match else None


# --- reschedule: delivery zones, windows with capacity, and the record of each change ---


@dataclass(frozen=True)
class DeliveryZone:
    """Where an order is delivered, with the calendar rules the ERP keeps for it.

    `cutoff_hour` and `max_days_ahead` are None when the zone follows the business-wide
    defaults (RESCHEDULE_CUTOFF_HOUR, RESCHEDULE_MAX_DAYS_AHEAD).
    """

    id: str
    name: str
    country: str  # ISO 3166 alpha-2: whose public holidays apply
    timezone: str  # IANA: the windows' local clock
    cutoff_hour: int | None = None
    max_days_ahead: int | None = None


@dataclass(frozen=True)
class WindowSlot:
    """One delivery window of a zone on one day, with how many deliveries it still takes."""

    id: int
    zone_id: str
    window: DeliveryWindow
    capacity: int
    booked: int

    @property
    def remaining(self) -> int:
        return max(self.capacity - self.booked, 0)


@dataclass(frozen=True)
class ScheduleChange:
    """One change of an order's delivery window: who asked, when, from what to what."""

    id: str  # management ID, GES-XXXXXXXX
    order_id: str
    customer_id: str
    phone: str | None  # E.164, when the sender is a phone number
    channel: str  # whatsapp, sms, rest, ...
    changed_at: datetime  # timezone-aware
    old_window: DeliveryWindow | None
    new_window: DeliveryWindow
    new_slot_id: int


class RescheduleOutcome(str, Enum):
    """What the ERP answered to a reschedule write."""

    DONE = "done"
    WINDOW_FULL = "window_full"  # someone took the last place first
    NOT_ALLOWED = "not_allowed"  # the order moved on (dispatched, delivered, cancelled) meanwhile
    ID_TAKEN = "id_taken"  # the management ID exists: draw another


class CancelOutcome(str, Enum):
    """What the ERP answered to a cancellation: only an order not shipped yet can be cancelled."""

    DONE = "done"  # cancelled now, or already cancelled (a retried cancellation applies once)
    NOT_CANCELLABLE = "not_cancellable"  # shipped, out for delivery or delivered meanwhile
    NOT_FOUND = "not_found"  # no such order for this customer


# --- payments and contact data (issue 6) ---


class InvoiceStatus(str, Enum):
    OPEN = "open"
    PAID = "paid"


@dataclass(frozen=True)
class Invoice:
    id: str  # F-0001
    customer_id: str
    amount: Decimal
    currency: str  # ISO 4217: MXN, ARS, PEN
    issued_on: date
    due_on: date
    status: InvoiceStatus
    order_id: str | None = None

    def is_overdue(self, today: date) -> bool:
        return self.status is InvoiceStatus.OPEN and self.due_on < today


@dataclass(frozen=True)
class Payment:
    id: str
    customer_id: str
    invoice_id: str | None
    amount: Decimal
    currency: str
    paid_at: datetime  # timezone-aware
    method: str


@dataclass(frozen=True)
class PaymentLink:
    url: str
    invoice_id: str
    amount: Decimal
    currency: str
    expires_at: datetime  # timezone-aware


@dataclass(frozen=True)
class ContactDetails:
    """What the CRM holds to reach a customer and to identify one who writes from another number."""

    customer_id: str
    email: str | None
    address: str | None
    district: str | None  # distrito, comuna, colonia, barrio: whatever the country uses
    document_id: str | None  # DNI, RUT, RFC, CUIT...: only its last digits are ever asked for


class ContactField(str, Enum):
    EMAIL = "email"
    ADDRESS = "address"


@dataclass(frozen=True)
class ContactChange:
    """One change of contact data, as the audit keeps it: when, where, old → new, verified how."""

    customer_id: str
    field: ContactField
    old: str | None
    new: str
    channel: str
    verified_how: str
    changed_at: datetime  # timezone-aware
