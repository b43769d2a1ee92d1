"""Self-service cancellation: which order the customer means, whether it can still be cancelled,
and the cancellation itself, through the outbox like every write.

Only an order not shipped yet (`created`) is cancelled, after the customer confirms; one on its
way is refused at the door or returned once it arrives, one delivered is returned. The ERP's
cancel is conditional (bot/adapters/base.py `Erp.cancel_order`), so an order that shipped between
the question and the "sí" is not cancelled: the customer is told so.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any

from bot.adapters.base import Crm, Erp
from bot.adapters.outbox_sql import Outbox
from bot.order_status import orders_named
from bot.outbox import WriteConflict, WriteKind, WriteOutcome, WriteRejected, WriteStatus, submit_write
from bot.records import CancelOutcome, Customer, InvoiceStatus, Order, OrderState, normalize_order_id


class Situation(str, Enum):
    CONFIRM = "confirm"  # not shipped yet: ask the customer to confirm
    CHOOSE = "choose"  # several open orders: ask which
    SHIPPED = "shipped"  # on its way: refuse it at the door, or return it once it arrives
    DELIVERED = "delivered"  # a return, not a cancellation
    CANCELLED = "cancelled"  # cancelled already
    NOT_FOUND = "not_found"  # no such order *for this customer* (also: someone else's)
    NO_OPEN_ORDERS = "no_open_orders"  # a known customer with nothing to cancel
    UNKNOWN_CUSTOMER = "unknown_customer"  # the sender's number is not on file


@dataclass(frozen=True)
class CancelLookup:
    situation: Situation
    customer: Customer | None = None
    order: Order | None = None
    choices: tuple[Order, ...] = ()
    paid: bool = False  # the order's invoice is paid: the confirmation carries the refund note


_SITUATION_OF = {
    OrderState.CREATED: Situation.CONFIRM,
    OrderState.IN_TRANSIT: Situation.SHIPPED,
    OrderState.OUT_FOR_DELIVERY: Situation.SHIPPED,
    OrderState.DELIVERED: Situation.DELIVERED,
    OrderState.CANCELLED: Situation.CANCELLED,
}


def is_paid(erp: Erp, order: Order) -> bool:
    """Whether the order's invoice is paid: cancelling it then means a refund."""
    return any(
        invoice.order_id == order.id and invoice.status is InvoiceStatus.PAID
        for invoice in erp.invoices_of(order.customer_id)
    )


def find_order_to_cancel(
    crm: Crm, erp: Erp, phone: str | None, order_ref: str | None = None, text: str = ""
) -> CancelLookup:
    """The order the sender of `phone` wants to cancel, and what can be done with it.

    An order number, else a product named in `text`, else their open orders (one: that one;
    several: CHOOSE). Someone else's order answers exactly like one that does not exist.
    """
    customer = crm.customer_by_phone(phone) if phone else None
    if customer is None:
        return CancelLookup(Situation.NOT_FOUND if order_ref else Situation.UNKNOWN_CUSTOMER)
    orders = erp.orders_of(customer.id)
    if order_ref:
        wanted = normalize_order_id(order_ref) or order_ref.strip().upper()
        named = [order for order in orders if order.id == wanted]
    else:
        named = orders_named(text, orders)  # "cancelá la licuadora"
    if order_ref and not named:
        return CancelLookup(Situation.NOT_FOUND, customer)
    candidates = named or [order for order in orders if order.state.is_open]
    if not candidates:
        return CancelLookup(Situation.NO_OPEN_ORDERS, customer)
    if len(candidates) > 1:
        return CancelLookup(Situation.CHOOSE, customer, choices=tuple(candidates))
    order = candidates[0]
    situation = _SITUATION_OF[order.state]
    paid = situation is Situation.CONFIRM and is_paid(erp, order)
    return CancelLookup(situation, customer, order, paid=paid)


# --- the write kind: an order cancelled in the ERP ------------------------------------------------


def _apply_cancel(erp: Erp, payload: Mapping[str, Any]) -> None:
    outcome = erp.cancel_order(
        payload["order_id"], payload["customer_id"], datetime.fromisoformat(payload["cancelled_at"])
    )
    if outcome is CancelOutcome.NOT_CANCELLABLE:
        raise WriteConflict(f"order {payload['order_id']} has shipped", code=outcome.value)
    if outcome is CancelOutcome.NOT_FOUND:
        raise WriteRejected(f"order {payload['order_id']} is not this customer's")


ORDER_CANCEL = WriteKind(
    "order.cancel",
    _apply_cancel,
    system="erp",
    confirmation="utter_cancel_confirmed_later",
    conflict="utter_cancel_queued_too_late",
    notice_fields=("order_id",),
)


@dataclass(frozen=True)
class CancelResult:
    """What became of a confirmed cancellation."""

    outcome: WriteOutcome | None  # None: the order could not be cancelled (see `too_late`)
    too_late: bool = False  # it shipped between the question and the answer


def cancel_order(
    erp: Erp,
    outbox: Outbox,
    order: Order,
    phone: str | None,
    conversation_id: str,
    now: datetime,
) -> CancelResult:
    """Cancel `order` (already checked to be the sender's) through the outbox.

    A second "sí" while the first cancellation still waits in the outbox gets its management ID
    instead of a second write. Raises WriteRejected when the ERP refuses it for good, and
    BackendUnavailable when not even the assistant's database can record it.
    """
    for entry in outbox.pending_for(conversation_id, ORDER_CANCEL.name):
        if entry.payload.get("order_id") == order.id:
            return CancelResult(WriteOutcome(WriteStatus.QUEUED, entry.management_id))
    payload = {
        "order_id": order.id,
        "customer_id": order.customer_id,
        "cancelled_at": now.isoformat(),
        "notice": {"order_id": order.id},
    }
    try:
        outcome = submit_write(
            ORDER_CANCEL,
            payload,
            system=erp,
            outbox=outbox,
            conversation_id=conversation_id,
            customer_phone=phone,
            now=now,
        )
    except WriteConflict:
        return CancelResult(None, too_late=True)
    return CancelResult(outcome)
