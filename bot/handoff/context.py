"""What the agent sees about the customer beside a handoff (issue 18, "the console knows the
customer"): their orders from the ERP and their earlier handoffs with how they ended and the
rating the customer gave. Read when the agent opens the conversation, never stored in the packet
(the orders change; the packet is what the bot knew when it handed over)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from bot.adapters.base import BackendUnavailable, Erp
from bot.handoff.store import Handoff, HandoffStore
from bot.order_status import STATE_LABELS
from bot.records import Order

logger = logging.getLogger(__name__)

ORDERS_SHOWN = 5
EARLIER_SHOWN = 5


@dataclass(frozen=True)
class CustomerContext:
    orders: list[Order] = field(default_factory=list)
    more_orders: int = 0  # orders not listed (older)
    orders_unavailable: bool = False  # the ERP did not answer: say so, do not show "no orders"
    earlier: list[Handoff] = field(default_factory=list)

    def order_state(self, order: Order) -> str:
        return STATE_LABELS.get(order.state, str(order.state))


def customer_context(erp: Erp | None, store: HandoffStore, handoff: Handoff) -> CustomerContext:
    """The customer's orders (newest first) and earlier handoffs. The customer is the one the
    packet names (found by the phone on file, or verified by code); an unknown number has no
    orders to show."""
    customer_id = (handoff.packet.get("customer") or {}).get("id")
    orders: list[Order] = []
    unavailable = False
    if erp is not None and customer_id:
        try:
            orders = erp.orders_of(str(customer_id))
        except BackendUnavailable:
            logger.warning("console: the ERP is unavailable, the customer's orders are not shown")
            unavailable = True
    return CustomerContext(
        orders=orders[:ORDERS_SHOWN],
        more_orders=max(0, len(orders) - ORDERS_SHOWN),
        orders_unavailable=unavailable,
        earlier=store.earlier_for(handoff, limit=EARLIER_SHOWN),
    )
