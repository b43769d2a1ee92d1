"""The pull job, for an ERP that cannot push events: it lists the orders in progress and the open
invoices (bot/adapters/base.py, `orders_in_progress`, `open_invoices`) and turns what it sees into
events. Each event's id names the fact (`order:PED-1001:in_transit`), so seeing it again on the
next poll is the same event, stored and notified once (bot/notifications/store.py)."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from bot.notifications.events import EventKind, NotificationEvent
from bot.notifications.store import NotificationStore
from bot.records import Invoice, Order, OrderState

SOURCE = "erp-pull"
DUE_SOON_DAYS = 3


def pulled_events(
    orders: list[Order], invoices: list[Invoice], *, now: datetime, zone: str
) -> list[NotificationEvent]:
    """The events these orders and invoices show at `now`; "tomorrow" and "in three days" are
    days in `zone` (the business's: the pull job does not look every customer up)."""
    tz = ZoneInfo(zone)
    today = now.astimezone(tz).date()
    events = []

    def event(kind: EventKind, event_id: str, customer_id: str, **variables: str) -> NotificationEvent:
        return NotificationEvent(SOURCE, event_id, kind, now, customer_id=customer_id, variables=variables)

    for order in orders:
        if order.state is OrderState.IN_TRANSIT:
            events.append(
                event(
                    EventKind.ORDER_SHIPPED,
                    f"order:{order.id}:in_transit",
                    order.customer_id,
                    order_id=order.id,
                )
            )
        elif order.state is OrderState.OUT_FOR_DELIVERY:
            events.append(
                event(
                    EventKind.OUT_FOR_DELIVERY,
                    f"order:{order.id}:out_for_delivery",
                    order.customer_id,
                    order_id=order.id,
                )
            )
        window = order.window
        if order.state.is_open and window is not None:
            start, end = window.start.astimezone(tz), window.end.astimezone(tz)
            if start.date() == today + timedelta(days=1) and order.state is not OrderState.OUT_FOR_DELIVERY:
                events.append(
                    event(
                        EventKind.DELIVERY_TOMORROW,
                        f"order:{order.id}:delivery_tomorrow:{start.date()}",
                        order.customer_id,
                        order_id=order.id,
                        delivery_date=start.date().isoformat(),
                        window=f"{start:%H:%M} y {end:%H:%M}",
                    )  # fmt: skip
                )
    for invoice in invoices:
        values = {
            "invoice_id": invoice.id,
            "amount": str(invoice.amount),
            "currency": invoice.currency,
            "due_date": invoice.due_on.isoformat(),
        }
        if invoice.due_on == today + timedelta(days=DUE_SOON_DAYS):
            key = f"invoice:{invoice.id}:due_soon:{invoice.due_on}"
            events.append(event(EventKind.INVOICE_DUE_SOON, key, invoice.customer_id, **values))
        elif invoice.is_overdue(today):
            key = f"invoice:{invoice.id}:overdue:{invoice.due_on}"
            events.append(event(EventKind.INVOICE_OVERDUE, key, invoice.customer_id, **values))
    return events


def pull_once(erp: object, store: NotificationStore, now: datetime, zone: str) -> int:
    """Poll the ERP once and store what is new; how many events were new."""
    events = pulled_events(erp.orders_in_progress(), erp.open_invoices(), now=now, zone=zone)  # type: ignore[attr-defined]
    return sum(1 for event in events if store.receive(event, now)[1])
