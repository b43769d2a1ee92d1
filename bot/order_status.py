"""Answers "¿dónde está mi pedido?": finds the customer's order and describes where it is."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from zoneinfo import ZoneInfo

from bot.adapters.base import Crm, Erp
from bot.choices import fold
from bot.kb.text import stem, terms
from bot.records import Customer, Order, OrderState, normalize_order_id
from bot.spanish_time import locale_for, moment_phrase, window_phrase


class Outcome(str, Enum):
    FOUND = "found"  # one order to describe
    CHOOSE = "choose"  # several open orders: ask which
    NO_OPEN_ORDERS = "no_open_orders"  # a known customer with nothing on the way
    NOT_FOUND = "not_found"  # no such order *for this customer* (also: someone else's)
    UNKNOWN_CUSTOMER = "unknown_customer"  # the sender's number is not on file


@dataclass(frozen=True)
class StatusLookup:
    outcome: Outcome
    customer: Customer | None = None
    order: Order | None = None
    choices: tuple[Order, ...] = ()


# How an open order is named when the customer must choose among several.
STATE_LABELS = {
    OrderState.CREATED: "en preparación",
    OrderState.IN_TRANSIT: "en camino",
    OrderState.OUT_FOR_DELIVERY: "en reparto",
    OrderState.DELIVERED: "entregado",
    OrderState.CANCELLED: "cancelado",
}


def look_up_status(
    crm: Crm, erp: Erp, phone: str | None, order_ref: str | None = None, said: str = ""
) -> StatusLookup:
    """Find what the sender of `phone` asked about; `order_ref` is an order number they wrote,
    `said` their whole message, which may name the order otherwise ("las zapatillas", "el último").

    Identity is the phone: an order is shown only to the customer it belongs to, and an order of
    someone else gets exactly the answer of an order that does not exist.
    """
    customer = crm.customer_by_phone(phone) if phone else None
    if order_ref:
        order_id = normalize_order_id(order_ref) or order_ref.strip().upper()
        order = erp.order(order_id) if customer else None
        if order is None or order.customer_id != customer.id:
            return StatusLookup(Outcome.NOT_FOUND, customer)
        return StatusLookup(Outcome.FOUND, customer, order)

    if customer is None:
        return StatusLookup(Outcome.UNKNOWN_CUSTOMER)
    open_orders = [order for order in erp.orders_of(customer.id) if order.state.is_open]
    if not open_orders:
        return StatusLookup(Outcome.NO_OPEN_ORDERS, customer)
    if len(open_orders) == 1:
        return StatusLookup(Outcome.FOUND, customer, open_orders[0])
    named = mentioned_order(said, open_orders)
    if named is not None:
        return StatusLookup(Outcome.FOUND, customer, named)
    return StatusLookup(Outcome.CHOOSE, customer, choices=tuple(sorted(open_orders, key=_soonest)))


# "el último", "mi ultimo pedido", "lo último que compré", "el más reciente": the newest order.
_LATEST = re.compile(
    r"\b(?:(?:el|mi|lo) ultimo|la ultima (?:compra|orden)|el mas reciente|lo mas reciente)\b"
    r"(?! (?:dia|mes|ano|lunes|martes|miercoles|jueves|viernes|sabado|domingo|semana)\b)"
)
# Words of an order's items that name no product ("Zapatillas de running talla 42"), stemmed.
_NOT_PRODUCT = frozenset(
    stem(word) for word in ("talla", "talle", "color", "modelo", "pack", "set", "juego", "kit")
)


def _product_terms(text: str) -> set[str]:
    return {term for term in terms(text) if len(term) >= 3 and not term.isdigit()} - _NOT_PRODUCT


def mentioned_order(said: str, orders: list[Order]) -> Order | None:
    """The one order of `orders` that the customer's words name, or None if they name none or
    several: a product of its items ("cambiar la entrega de las zapatillas": stems, so plurals
    and verb forms match), or "el último" (the most recently placed). Numbers are left to the
    order number entity: "talla 42" must not pick an order for "a las 42 horas"."""
    text = fold(said)
    if not text.strip() or not orders:
        return None
    if _LATEST.search(text):
        return max(orders, key=lambda order: order.placed_at)
    naming = orders_named(text, orders)
    return naming[0] if len(naming) == 1 else None


def orders_named(said: str, orders: list[Order]) -> list[Order]:
    """The orders a product of whose items the customer's words name ("cancelá la licuadora")."""
    wanted = _product_terms(said)
    return [order for order in orders if wanted & _product_terms(order.items)]


def _soonest(order: Order) -> tuple[int, datetime]:
    """Orders arriving first come first; those with no window go last, oldest first."""
    return (0, order.window.start) if order.window else (1, order.placed_at)


def choice_title(order: Order) -> str:
    """`PED-1003 · Mate de calabaza (en preparación)`: one line that tells orders apart."""
    return f"{order.id} · {order.items} ({STATE_LABELS[order.state]})"


@dataclass(frozen=True)
class StatusView:
    """What to say about one order: a situation name and the values its message needs."""

    situation: str
    values: dict[str, str] = field(default_factory=dict)


def describe(order: Order, customer: Customer, now: datetime, business_timezone: str) -> StatusView:
    """Describe `order` in the customer's time zone and locale.

    Situations: created, created_no_eta, in_transit, in_transit_no_eta, in_transit_late,
    out_for_delivery, delivered, cancelled. Conversation design maps each to a response.
    """
    zone = ZoneInfo(customer.timezone or business_timezone)
    locale = locale_for(customer.country)
    values = {
        "order_id": order.id,
        "items": order.items,
        "name": customer.first_name,
        "carrier": order.carrier or "la empresa de envíos",
        "tracking_url": order.tracking_url or "",
    }
    state = order.state
    if state is OrderState.DELIVERED:
        when = order.delivered_at
        values["when"] = moment_phrase(when, zone, now, locale) if when else "hace unos días"
        return StatusView("delivered", values)
    if state is OrderState.CANCELLED:
        when = order.cancelled_at
        values["when"] = moment_phrase(when, zone, now, locale) if when else "hace unos días"
        return StatusView("cancelled", values)

    if order.window is None:
        situation = "created_no_eta" if state is OrderState.CREATED else "in_transit_no_eta"
        return StatusView(situation, values)
    values["eta"] = window_phrase(order.window, zone, now, locale)
    if state is OrderState.CREATED:
        return StatusView("created", values)
    if order.window.end < now:
        return StatusView("in_transit_late", values)
    return StatusView(state.value, values)
