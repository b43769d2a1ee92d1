"""Guided returns and exchanges: whether a product can come back (a pure function of the order,
the product, the rules and today), and the return or exchange case opened through the outbox.

The checks a case type makes are its `eligibility:` in bot/case_types.yml; the categories, their
return windows and how a product comes back are bot/return_rules.yml, loaded and checked here
with errors that name the file and the key (`make validate`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import Enum
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml

from bot.adapters.base import CaseBook, Crm, Erp
from bot.adapters.outbox_sql import Outbox
from bot.cases import request_case
from bot.choices import fold
from bot.order_status import mentioned_order
from bot.outbox import WriteOutcome
from bot.records import CaseKind, Customer, Order, OrderLine, OrderState, normalize_order_id

RULES_FILE = Path(__file__).resolve().parent / "return_rules.yml"
HANDOVERS = ("pickup", "drop_off")
_MAX_WINDOW_DAYS = 365


class Reason(str, Enum):
    """Why the product comes back (the reason buttons' payloads)."""

    DAMAGED = "damaged"
    WRONG_ITEM = "wrong_item"
    CHANGED_MIND = "changed_mind"

    @property
    def is_defect(self) -> bool:
        """A damaged or wrong product: photos are asked, and any category comes back."""
        return self is not Reason.CHANGED_MIND


class Resolution(str, Enum):
    """What the customer wants instead of the product (the `resolution` detail of the case)."""

    REFUND = "refund"
    VOUCHER = "voucher"
    EXCHANGE = "exchange"

    @property
    def case_kind(self) -> CaseKind:
        return CaseKind.EXCHANGE_REQUEST if self is Resolution.EXCHANGE else CaseKind.RETURN_REQUEST

    @property
    def case_type(self) -> str:
        """The catalogue type whose `eligibility:` applies (bot/case_types.yml)."""
        return "exchange" if self is Resolution.EXCHANGE else "return"


class Ineligible(str, Enum):
    """Why a product cannot be returned now (each has its plain-Spanish answer in the domain)."""

    NOT_SHIPPED = "not_shipped"  # still being prepared: cancel it instead
    ON_ITS_WAY = "on_its_way"  # shipped: refuse it at the door, or return it once it arrives
    CANCELLED = "cancelled"  # nothing arrived to return
    WINDOW_PASSED = "window_passed"  # delivered more than the category's window ago
    NOT_RETURNABLE = "not_returnable"  # a category that only comes back damaged or wrong


# --- the rules file -----------------------------------------------------------------------------


class ReturnRulesError(ValueError):
    """bot/return_rules.yml is broken; the message names the file and the key."""


@dataclass(frozen=True)
class ReturnCategory:
    id: str
    label: str
    returnable: bool
    return_window_days: int
    handover: str  # pickup | drop_off


@dataclass(frozen=True)
class ReturnRules:
    categories: dict[str, ReturnCategory]
    default: str
    handover: dict[str, str]  # pickup | drop_off -> what the customer is told

    def category_of(self, line: OrderLine) -> ReturnCategory:
        """The product's category; one the ERP did not give or the file does not know is the default."""
        return self.categories.get(line.category or "", self.categories[self.default])

    def instructions_for(self, line: OrderLine) -> str:
        return self.handover[self.category_of(line).handover]


def _fail(path: Path, key: str, problem: str) -> ReturnRulesError:
    return ReturnRulesError(f"{path}: {key}: {problem}")


def _category(path: Path, category_id: str, raw: Any) -> ReturnCategory:
    where = f"categories.{category_id}"
    if not isinstance(raw, Mapping):
        raise _fail(path, where, "must be a mapping of label, returnable, return_window_days, handover")
    fields = {"label", "returnable", "return_window_days", "handover"}
    unknown = sorted(set(raw) - fields)
    if unknown:
        raise _fail(path, f"{where}.{unknown[0]}", f"unknown field (known: {', '.join(sorted(fields))})")
    label = raw.get("label")
    if not isinstance(label, str) or not label.strip():
        raise _fail(path, f"{where}.label", "must be a non-empty text")
    if not isinstance(raw.get("returnable"), bool):
        raise _fail(path, f"{where}.returnable", "must be true or false")
    days = raw.get("return_window_days")
    if isinstance(days, bool) or not isinstance(days, int) or not 0 <= days <= _MAX_WINDOW_DAYS:
        raise _fail(
            path, f"{where}.return_window_days", f"must be a whole number of days, 0 to {_MAX_WINDOW_DAYS}"
        )
    if raw.get("handover") not in HANDOVERS:
        raise _fail(path, f"{where}.handover", f"must be one of {', '.join(HANDOVERS)}")
    return ReturnCategory(category_id, " ".join(label.split()), raw["returnable"], days, raw["handover"])


def parse_rules(raw: Any, path: Path = RULES_FILE) -> ReturnRules:
    """The rules from the YAML's data; ReturnRulesError names the file and the key."""
    if (
        not isinstance(raw, Mapping)
        or not isinstance(raw.get("categories"), Mapping)
        or not raw["categories"]
    ):
        raise _fail(path, "categories", "the file must hold a non-empty mapping `categories:`")
    categories = {str(key): _category(path, str(key), body) for key, body in raw["categories"].items()}
    default = raw.get("default")
    if default not in categories:
        raise _fail(path, "default", f"must name one of the categories ({', '.join(categories)})")
    handover = raw.get("handover")
    if not isinstance(handover, Mapping):
        raise _fail(path, "handover", f"must give the customer's instructions for {', '.join(HANDOVERS)}")
    texts = {}
    for name in HANDOVERS:
        text = handover.get(name)
        if not isinstance(text, str) or not text.strip():
            raise _fail(path, f"handover.{name}", "must be a non-empty text")
        texts[name] = " ".join(text.split())
    return ReturnRules(categories, default, texts)


def load_rules(path: Path = RULES_FILE) -> ReturnRules:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ReturnRulesError(f"{path}: cannot be read ({error.strerror})") from error
    except yaml.YAMLError as error:
        raise ReturnRulesError(f"{path}: is not valid YAML ({error})") from error
    return parse_rules(raw, path)


@lru_cache(maxsize=1)
def return_rules() -> ReturnRules:
    """The project's return rules, read once per process."""
    return load_rules()


# --- eligibility: a pure function of the order, the product, the rules and today ---------------------

_NOT_DELIVERED = {
    OrderState.CREATED: Ineligible.NOT_SHIPPED,
    OrderState.IN_TRANSIT: Ineligible.ON_ITS_WAY,
    OrderState.OUT_FOR_DELIVERY: Ineligible.ON_ITS_WAY,
    OrderState.CANCELLED: Ineligible.CANCELLED,
}


@dataclass(frozen=True)
class Eligibility:
    category: ReturnCategory
    refused: Ineligible | None = None  # None: it can come back
    delivered_on: date | None = None  # the delivery day in the customer's zone
    last_day: date | None = None  # the last day of the return window

    @property
    def eligible(self) -> bool:
        return self.refused is None


def check_return(
    order: Order,
    line: OrderLine,
    rules: ReturnRules,
    checks: tuple[str, ...],
    today: date,
    zone: ZoneInfo,
    reason: Reason | None = None,
) -> Eligibility:
    """Whether `line` of `order` can be returned `today` (the customer's day, from bot.clock),
    by the `checks` of the case type (bot/case_types.yml `eligibility:`).

    The window counts from the delivery day in the customer's zone `zone`: delivered on the 1st
    with 30 days, the 31st is the last day. The category check waits for the reason: a damaged
    or wrong product comes back whatever its category.
    """
    category = rules.category_of(line)
    delivered = order.state is OrderState.DELIVERED and order.delivered_at is not None
    if "delivered" in checks and not delivered:
        return Eligibility(category, _NOT_DELIVERED.get(order.state, Ineligible.ON_ITS_WAY))
    delivered_on = order.delivered_at.astimezone(zone).date() if order.delivered_at else None
    last_day = delivered_on + timedelta(days=category.return_window_days) if delivered_on else None
    if "within_return_window" in checks:
        if last_day is None:
            return Eligibility(category, _NOT_DELIVERED.get(order.state, Ineligible.ON_ITS_WAY))
        if today > last_day:
            return Eligibility(category, Ineligible.WINDOW_PASSED, delivered_on, last_day)
    if (
        "returnable_category" in checks
        and reason is not None
        and not reason.is_defect
        and not category.returnable
    ):
        return Eligibility(category, Ineligible.NOT_RETURNABLE, delivered_on, last_day)
    return Eligibility(category, None, delivered_on, last_day)


# --- the customer's words, when they write instead of tapping (compared folded) ------------------

_REASON_WORDS = (
    (
        Reason.WRONG_ITEM,
        re.compile(r"\b(equivoc\w*|otro producto|no es (?:lo|el|la) que|talla|talle|color)\b"),
    ),
    (
        Reason.DAMAGED,
        re.compile(
            r"\b(rot[oa]s?|danad\w*|danos?|golpead\w*|fall\w*|quebrad\w*|defect\w*|rayad\w*"
            r"|no (?:funciona|anda|prende|enciende))\b"
        ),
    ),
    (
        Reason.CHANGED_MIND,
        re.compile(
            r"\b(no me gust\w*|ya no (?:lo|la) (?:quiero|necesito)|arrepent\w*|cambie de opinion"
            r"|no (?:lo|la) necesito|no me qued\w*)\b"
        ),
    ),
)
_RESOLUTION_WORDS = (
    (Resolution.VOUCHER, re.compile(r"\b(vale|cupon|credito|saldo a favor|gift ?card)\b")),
    (Resolution.EXCHANGE, re.compile(r"\b(cambi\w*|otro igual|otra talla|otro color|reemplaz\w*)\b")),
    (
        Resolution.REFUND,
        re.compile(
            r"\b(reembols\w*|reintegr\w*|devuel\w* (?:el|mi) (?:dinero|plata|pago)"
            r"|mi (?:dinero|plata)|devolucion del dinero)\b"
        ),
    ),
)
_NO_PHOTOS = re.compile(r"\b(no tengo|sin fotos?|no puedo|no (?:la|las) tengo|despues|luego)\b")


def read_reason(text: str) -> Reason | None:
    """The reason a message gives ("vino rota", "me mandaron otro color"), if any."""
    folded = fold(text)
    return next((reason for reason, words in _REASON_WORDS if words.search(folded)), None)


def read_resolution(text: str) -> Resolution | None:
    """What the message asks instead ("quiero mi plata", "un cambio"), if anything."""
    folded = fold(text)
    return next((resolution for resolution, words in _RESOLUTION_WORDS if words.search(folded)), None)


def says_no_photos(text: str) -> bool:
    return _NO_PHOTOS.search(fold(text)) is not None


# --- which order: the customer's own, named by number, product or "el último" ---------------------

MAX_CHOICES = 10  # a WhatsApp list holds 10 rows


class Found(str, Enum):
    ORDER = "order"  # one order: its products and eligibility come next
    CHOOSE = "choose"  # several: the customer picks
    NOT_FOUND = "not_found"  # no such order *for this customer* (also: someone else's)
    NO_ORDERS = "no_orders"  # a known customer with nothing that could come back
    UNKNOWN_CUSTOMER = "unknown_customer"  # the sender's number is not on file


@dataclass(frozen=True)
class ReturnLookup:
    found: Found
    customer: Customer | None = None
    order: Order | None = None
    choices: tuple[Order, ...] = ()


def _return_order_first(order: Order) -> tuple[int, float]:
    """Delivered orders first, the latest delivered first; then the others, newest first."""
    delivered = order.state is OrderState.DELIVERED and order.delivered_at is not None
    moment = order.delivered_at if delivered else order.placed_at
    return (0 if delivered else 1, -moment.timestamp())


def find_order_to_return(
    crm: Crm, erp: Erp, phone: str | None, order_ref: str | None = None, said: str = ""
) -> ReturnLookup:
    """The order the sender of `phone` wants to return: the number they wrote, else the one
    their words name ("la licuadora", "el último"), else their only order; several: CHOOSE.
    An order not delivered is found too: the flow says why it cannot come back yet. Someone
    else's order answers exactly like one that does not exist."""
    customer = crm.customer_by_phone(phone) if phone else None
    if customer is None:
        return ReturnLookup(Found.NOT_FOUND if order_ref else Found.UNKNOWN_CUSTOMER)
    orders = [order for order in erp.orders_of(customer.id) if order.state is not OrderState.CANCELLED]
    if order_ref:
        wanted = normalize_order_id(order_ref) or order_ref.strip().upper()
        named = [order for order in erp.orders_of(customer.id) if order.id == wanted]
        if not named:
            return ReturnLookup(Found.NOT_FOUND, customer)
        return ReturnLookup(Found.ORDER, customer, named[0])
    if not orders:
        return ReturnLookup(Found.NO_ORDERS, customer)
    named_order = mentioned_order(said, orders)
    if named_order is not None:
        return ReturnLookup(Found.ORDER, customer, named_order)
    if len(orders) == 1:
        return ReturnLookup(Found.ORDER, customer, orders[0])
    ranked = sorted(orders, key=_return_order_first)[:MAX_CHOICES]
    return ReturnLookup(Found.CHOOSE, customer, choices=tuple(ranked))


def line_named(order: Order, name: str | None) -> OrderLine | None:
    """The order's product called `name` (as the form keeps it)."""
    return next((line for line in order.products if line.name == name), None)


# --- the case: through the outbox like every write -------------------------------------------------


@dataclass(frozen=True)
class ReturnRequest:
    """What the customer chose, checked: the case's details for the person who works it."""

    order_id: str
    item: str
    category: str
    reason: Reason
    resolution: Resolution
    exchange_for: str | None = None
    photos: tuple[str, ...] = ()  # media URLs the channel stored
    reason_label: str = ""  # the reason as the customer picked it, in Spanish
    handover: str = "drop_off"
    said: str = ""  # the request as the customer wrote it

    def details(self) -> dict[str, str | None]:
        details: dict[str, str | None] = {
            "order_id": self.order_id,
            "item": self.item,
            "category": self.category,
            "reason": self.reason.value,
            "resolution": self.resolution.value,
            "exchange_for": self.exchange_for,
            "handover": self.handover,
            # what the customer wrote, as agents read every case; else the choices in words
            "text": self.said or f"{self.reason_label or self.reason.value}: {self.item}",
        }
        for index, url in enumerate(self.photos, start=1):
            details["media_url" if index == 1 else f"media_url_{index}"] = url
        return details


def open_return(
    cases: CaseBook,
    outbox: Outbox,
    phone: str | None,
    request: ReturnRequest,
    conversation_id: str,
    now: datetime,
) -> WriteOutcome:
    """Open the return (or exchange) case through the outbox, with its management ID; queued
    when the case book is down. The same request again within a day gives the same case."""
    return request_case(
        cases,
        outbox,
        phone,
        request.resolution.case_kind,
        request.details(),
        conversation_id=conversation_id,
        now=now,
    )
