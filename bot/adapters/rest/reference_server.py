"""The reference CRM/ERP server: docs/crm-erp-api.yaml over the SQL store, for `rest` mode and integrators.

`make crm-server` runs it (`python -m bot.adapters.rest.reference_server`): a threaded stdlib
HTTP server (blocking SQL is fine on its own threads, and it needs nothing outside the lock).
It checks the same credentials the bot sends (CRM_TOKEN / ERP_TOKEN as bearer tokens,
CRM_API_KEY / ERP_API_KEY as X-API-Key), stores every Idempotency-Key with the first answer in
the `idempotency_keys` table, in the same transaction as the change, and replays that answer for
a repeated key. Fault injection (latency, 5xx, answers lost after the change) exists only as a
Python object handed to the constructor by tests: no request, setting or flag can turn it on.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import re
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import partial
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bot.adapters.base import BackendUnavailable
from bot.adapters.payment_links import PaymentLinkSigner
from bot.adapters.rest.wire import (
    WireError,
    case_to_wire,
    change_to_wire,
    closure_to_wire,
    contact_change_to_wire,
    contact_details_to_wire,
    customer_to_wire,
    delivery_to_wire,
    invoice_to_wire,
    order_to_wire,
    payment_link_to_wire,
    payment_to_wire,
    slot_to_wire,
    time_from_wire,
    time_to_wire,
)

# The SQL adapter's row readers, so a row means the same record on both sides of the wire.
from bot.adapters.sql import (
    SqlStore,
    _case,
    _customer,
    _order,
    cases,
    closed_days_in,
    contact_changes_in,
    contact_details_in,
    customers,
    invoice_in,
    invoices_of_in,
    issue_payment_link_in,
    orders,
    payments_of_in,
    record_promise_in,
    reschedule_in,
    schedule_changes,
    schedule_history_in,
    slot_in,
    to_db_time,
    update_contact_in,
    window_slots_in,
    zone_in,
    zone_of_order_in,
)
from bot.clock import SystemClock, local_day
from bot.records import CaseKind, ContactChange, ContactField, RescheduleOutcome, ScheduleChange
from bot.settings import VAR_DIR, Settings, SettingsError, current

logger = logging.getLogger(__name__)

BASE_PATH = "/v1"
MAX_BODY_BYTES = 64 * 1024
CASE_STATUSES = ("open", "closed")
CASE_ID = re.compile(r"^GES-[2-9A-HJKMNP-Z]{8}$")
E164 = re.compile(r"^\+[1-9]\d{6,14}$")
IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")

metadata = sa.MetaData()

# Every write's Idempotency-Key with its first answer, so a repeated key gets that answer again.
idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("method", sa.String(8), nullable=False),
    sa.Column("path", sa.String(500), nullable=False),
    sa.Column("request_sha256", sa.String(64), nullable=False),
    sa.Column("status", sa.Integer, nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False),
)


def _now() -> datetime:
    """The server keeps the assistant's time: BOT_NOW / BOT_CLOCK_SHIFT_S move it in development."""
    return SystemClock(current().clock_shift).now()


@dataclass
class Credentials:
    """Accepted bearer tokens and API keys; none at all means an open server (development)."""

    tokens: frozenset[str] = frozenset()
    api_keys: frozenset[str] = frozenset()

    @property
    def open(self) -> bool:
        return not self.tokens and not self.api_keys

    @classmethod
    def from_settings(cls, settings: Settings) -> Credentials:
        tokens = {s.token for s in (settings.crm, settings.erp) if s.token}
        keys = {s.api_key for s in (settings.crm, settings.erp) if s.api_key}
        return cls(frozenset(tokens), frozenset(keys))

    def accepts(self, headers: Any) -> bool:
        if self.open:
            return True
        authorization = headers.get("Authorization") or ""
        if authorization.startswith("Bearer ") and authorization[7:].strip() in self.tokens:
            return True
        return (headers.get("X-API-Key") or "") in self.api_keys


@dataclass
class Faults:
    """Test-only trouble: set by tests on the server object, never from outside the process."""

    latency_s: float = 0.0  # every request waits this long before it is handled
    _fail_left: int = 0
    _fail_status: int = 500
    _lose_left: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def fail_next(self, count: int, status: int = 500) -> None:
        """The next `count` requests answer `status` without being handled."""
        with self._lock:
            self._fail_left, self._fail_status = count, status

    def lose_next_answers(self, count: int) -> None:
        """The next `count` writes are applied, then answered 500: the client cannot know."""
        with self._lock:
            self._lose_left = count

    def clear(self) -> None:
        with self._lock:
            self.latency_s, self._fail_left, self._lose_left = 0.0, 0, 0

    def take_failure(self) -> int | None:
        with self._lock:
            if self._fail_left <= 0:
                return None
            self._fail_left -= 1
            return self._fail_status

    def take_lost_answer(self) -> bool:
        with self._lock:
            if self._lose_left <= 0:
                return False
            self._lose_left -= 1
            return True


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


Answer = tuple[int, Any]
Handler = Callable[[Connection, "re.Match[str]", dict[str, str], Any], Answer]


def _param(query: dict[str, str], name: str) -> str:
    value = query.get(name)
    if not value:
        raise ApiError(400, "invalid_request", f"query parameter '{name}' is required")
    return value


# --- operations (one function per operation of the contract) ------------------------------------


def find_customers(conn: Connection, _m, query: dict[str, str], _body) -> Answer:
    phone = _param(query, "phone")
    rows = conn.execute(sa.select(customers).where(customers.c.phone == phone)).all()
    return 200, {"items": [customer_to_wire(_customer(row)) for row in rows]}


MAX_ID_LENGTH = 64


def _id(match: dict[str, str]) -> str:
    if len(match["id"]) > MAX_ID_LENGTH:
        raise ApiError(400, "invalid_request", f"ids are at most {MAX_ID_LENGTH} characters")
    return match["id"]


def get_customer(conn: Connection, match, _q, _body) -> Answer:
    row = conn.execute(sa.select(customers).where(customers.c.id == _id(match))).first()
    if row is None:
        raise ApiError(404, "not_found", "no customer with this id")
    return 200, customer_to_wire(_customer(row))


def get_order(conn: Connection, match, _q, _body) -> Answer:
    row = conn.execute(sa.select(orders).where(orders.c.id == _id(match))).first()
    if row is None:
        raise ApiError(404, "not_found", "no order with this id")
    return 200, order_to_wire(_order(row))


def orders_of_customer(conn: Connection, match, _q, _body) -> Answer:
    query = (
        sa.select(orders)
        .where(orders.c.customer_id == _id(match))
        .order_by(orders.c.placed_at.desc(), orders.c.id.desc())
    )
    return 200, {"items": [order_to_wire(_order(row)) for row in conn.execute(query)]}


def get_case(conn: Connection, match, _q, _body) -> Answer:
    row = conn.execute(sa.select(cases).where(cases.c.id == match["id"])).first()
    if row is None:
        raise ApiError(404, "not_found", "no case with this id")
    return 200, case_to_wire(_case(row))


def _kind(value: Any) -> CaseKind:
    try:
        return CaseKind(value)
    except ValueError:
        raise ApiError(400, "invalid_request", f"kind must be one of {[k.value for k in CaseKind]}") from None


def _since(value: str) -> datetime:
    try:
        return time_from_wire(value, "opened_since")
    except WireError as error:
        raise ApiError(400, "invalid_request", str(error)) from None


def _db_time(moment: datetime) -> datetime:
    """Naive UTC for the store; moments at the very ends of the calendar are clamped to them."""
    try:
        return to_db_time(moment)
    except OverflowError:
        return datetime.min if moment.year == 1 else datetime.max


def search_cases(conn: Connection, _m, query: dict[str, str], _body) -> Answer:
    kind = _kind(_param(query, "kind"))
    since = _since(_param(query, "opened_since"))
    status = query.get("status") or "open"
    if status not in CASE_STATUSES:
        raise ApiError(400, "invalid_request", f"status must be one of {list(CASE_STATUSES)}")
    conversation = _param(query, "conversation_id")
    if len(conversation) > 255:
        raise ApiError(400, "invalid_request", "conversation_id is at most 255 characters")
    select = (
        sa.select(cases)
        .where(
            cases.c.conversation_id == conversation,
            cases.c.kind == kind.value,
            cases.c.status == status,
            cases.c.opened_at >= _db_time(since),
        )
        .order_by(cases.c.opened_at.desc())
    )
    return 200, {"items": [case_to_wire(_case(row)) for row in conn.execute(select)]}


CASE_FIELDS = {"id", "kind", "conversation_id", "customer_phone", "details", "opened_at", "status"}


def _case_row(body: Any) -> dict[str, Any]:
    """The NewCase schema of the contract, checked field by field."""
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_request", "the body must be a JSON object")
    unknown, missing = (
        set(body) - CASE_FIELDS,
        {"id", "kind", "conversation_id", "details", "opened_at"} - set(body),
    )
    if unknown or missing:
        raise ApiError(400, "invalid_request", f"unknown fields {sorted(unknown)}, missing {sorted(missing)}")
    if not isinstance(body["id"], str) or not CASE_ID.match(body["id"]):
        raise ApiError(400, "invalid_request", "id must look like GES-7F3K2Q9M")
    conversation = body["conversation_id"]
    if not isinstance(conversation, str) or not 0 < len(conversation) <= 255:
        raise ApiError(400, "invalid_request", "conversation_id must be a string of 1 to 255 characters")
    phone = body.get("customer_phone")
    if phone is not None and (not isinstance(phone, str) or not E164.match(phone)):
        raise ApiError(400, "invalid_request", "customer_phone must be E.164, like +525512345678, or null")
    details = body["details"]
    if not isinstance(details, dict) or not all(
        isinstance(v, str) and len(k) <= 64 and len(v) <= 2000 for k, v in details.items()
    ):
        raise ApiError(400, "invalid_request", "details must map short names to strings")
    status = body.get("status", "open")
    if status not in CASE_STATUSES:
        raise ApiError(400, "invalid_request", f"status must be one of {list(CASE_STATUSES)}")
    if not isinstance(body["opened_at"], str):
        raise ApiError(400, "invalid_request", "opened_at must be an ISO 8601 date-time with offset")
    try:
        opened_at = time_from_wire(body["opened_at"], "opened_at")
    except WireError as error:
        raise ApiError(400, "invalid_request", str(error)) from None
    return {
        "id": body["id"],
        "kind": _kind(body["kind"]).value,
        "conversation_id": conversation,
        "customer_phone": phone,
        "details": details,
        "status": status,
        "opened_at": _db_time(opened_at),
    }


def create_case(conn: Connection, _m, _q, body: Any) -> Answer:
    row = _case_row(body)
    taken = conn.execute(sa.select(cases.c.id).where(cases.c.id == row["id"])).first()
    if taken:
        raise ApiError(409, "case_id_taken", "a case with this id exists: draw another id")
    conn.execute(cases.insert(), row)
    stored = conn.execute(sa.select(cases).where(cases.c.id == row["id"])).one()
    return 201, case_to_wire(_case(stored))


# --- reschedule: the delivery calendar and the atomic move, over the SQL ERP's own functions ------

MAX_CALENDAR_DAYS = 92  # a window query spans at most this many days


def _day(query: dict[str, str], name: str) -> date:
    try:
        return date.fromisoformat(_param(query, name))
    except ValueError:
        raise ApiError(400, "invalid_request", f"'{name}' must be a date, YYYY-MM-DD") from None


def _days(query: dict[str, str]) -> tuple[date, date]:
    first, last = _day(query, "from"), _day(query, "to")
    if last < first or (last - first).days >= MAX_CALENDAR_DAYS:
        raise ApiError(
            400, "invalid_request", f"'to' must be 'from' or up to {MAX_CALENDAR_DAYS - 1} days later"
        )
    return first, last


def _order_row(conn: Connection, order_id: str):
    row = conn.execute(sa.select(orders).where(orders.c.id == order_id)).first()
    if row is None:
        raise ApiError(404, "not_found", "no order with this id")
    return row


def _known_zone(conn: Connection, match) -> str:
    zone_id = _id(match)
    if zone_in(conn, zone_id) is None:
        raise ApiError(404, "not_found", "no delivery zone with this id")
    return zone_id


def get_delivery(conn: Connection, match, _q, _body) -> Answer:
    order = _order_row(conn, _id(match))
    return 200, delivery_to_wire(order.id, zone_of_order_in(conn, order.id))


def zone_windows(conn: Connection, match, query: dict[str, str], _body) -> Answer:
    zone_id = _known_zone(conn, match)
    first, last = _days(query)
    try:
        slots = window_slots_in(conn, zone_id, first, last)
    except OverflowError:  # days at the very ends of the calendar, shifted by the zone's offset
        raise ApiError(400, "invalid_request", "dates out of range") from None
    return 200, {"items": [slot_to_wire(slot) for slot in slots]}


def zone_closures(conn: Connection, match, query: dict[str, str], _body) -> Answer:
    zone_id = _known_zone(conn, match)
    first, last = _days(query)
    closed = closed_days_in(conn, zone_id, first, last)
    return 200, {"items": [closure_to_wire(day, reason) for day, reason in sorted(closed.items())]}


def schedule_history(conn: Connection, match, _q, _body) -> Answer:
    order = _order_row(conn, _id(match))
    return 200, {"items": [change_to_wire(change) for change in schedule_history_in(conn, order.id)]}


RESCHEDULE_FIELDS = {"id", "window_id", "customer_id", "phone", "channel", "changed_at"}
RESCHEDULE_CONFLICTS = {
    RescheduleOutcome.WINDOW_FULL: ("window_taken", "no place is left in this window"),
    RescheduleOutcome.NOT_ALLOWED: (
        "not_reschedulable",
        "the order can no longer move, or the window is not of its zone",
    ),
}


def _reschedule_body(body: Any) -> dict[str, Any]:
    """The Reschedule schema of the contract, checked field by field."""
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_request", "the body must be a JSON object")
    unknown = set(body) - RESCHEDULE_FIELDS
    missing = RESCHEDULE_FIELDS - {"phone"} - set(body)
    if unknown or missing:
        raise ApiError(400, "invalid_request", f"unknown fields {sorted(unknown)}, missing {sorted(missing)}")
    if not isinstance(body["id"], str) or not CASE_ID.match(body["id"]):
        raise ApiError(400, "invalid_request", "id must look like GES-7F3K2Q9M")
    window_id = body["window_id"]
    if not isinstance(window_id, int) or isinstance(window_id, bool) or not 1 <= window_id <= 2**31 - 1:
        raise ApiError(400, "invalid_request", "window_id must be a positive integer")
    for name, longest in (("customer_id", MAX_ID_LENGTH), ("channel", 32)):
        if not isinstance(body[name], str) or not 0 < len(body[name]) <= longest:
            raise ApiError(400, "invalid_request", f"{name} must be a string of 1 to {longest} characters")
    phone = body.get("phone")
    if phone is not None and (not isinstance(phone, str) or not E164.match(phone)):
        raise ApiError(400, "invalid_request", "phone must be E.164, like +525512345678, or null")
    if not isinstance(body["changed_at"], str):
        raise ApiError(400, "invalid_request", "changed_at must be an ISO 8601 date-time with offset")
    try:
        changed_at = time_from_wire(body["changed_at"], "changed_at")
        to_db_time(changed_at)  # a moment the store can hold
    except (WireError, OverflowError) as error:
        raise ApiError(400, "invalid_request", str(error)) from None
    return {**body, "phone": phone, "changed_at": changed_at}


def reschedule_delivery(conn: Connection, match, _q, body: Any) -> Answer:
    """Both windows come from the ERP's own rows; the move is the SQL ERP's atomic one."""
    asked = _reschedule_body(body)
    order = _order(_order_row(conn, _id(match)))
    if order.customer_id != asked["customer_id"]:
        raise ApiError(409, "not_reschedulable", "the order is not this customer's")
    taken = conn.execute(sa.select(schedule_changes.c.id).where(schedule_changes.c.id == asked["id"])).first()
    if taken:
        raise ApiError(409, "change_id_taken", "a change with this id exists: draw another id")
    slot = slot_in(conn, asked["window_id"])
    if slot is None:
        raise ApiError(409, *RESCHEDULE_CONFLICTS[RescheduleOutcome.NOT_ALLOWED])
    change = ScheduleChange(
        id=asked["id"],
        order_id=order.id,
        customer_id=order.customer_id,
        phone=asked["phone"],
        channel=asked["channel"],
        changed_at=asked["changed_at"],
        old_window=order.window,
        new_window=slot.window,
        new_slot_id=slot.id,
    )
    outcome = reschedule_in(conn, change)
    if outcome is not RescheduleOutcome.DONE:
        # The idempotency store rolls the transaction back before it records this answer.
        raise ApiError(409, *RESCHEDULE_CONFLICTS.get(outcome, ("not_reschedulable", outcome.value)))
    return 200, change_to_wire(change)


# --- payments and contact data (issue 6), over the SQL CRM/ERP's own functions ---------------------

CONTACT_FIELDS = {"field", "new", "district", "channel", "verified_how", "changed_at"}
PROMISE_FIELDS = {"invoice_id", "promised_for", "channel"}


def _customer_row(conn: Connection, match) -> str:
    customer_id = _id(match)
    if conn.execute(sa.select(customers.c.id).where(customers.c.id == customer_id)).first() is None:
        raise ApiError(404, "not_found", "no customer with this id")
    return customer_id


def _fields(body: Any, allowed: set[str], required: set[str]) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_request", "the body must be a JSON object")
    unknown, missing = set(body) - allowed, required - set(body)
    if unknown or missing:
        raise ApiError(400, "invalid_request", f"unknown fields {sorted(unknown)}, missing {sorted(missing)}")
    return body


def _short_text(body: dict[str, Any], name: str, longest: int, *, optional: bool = False) -> str | None:
    value = body.get(name)
    if value is None and optional:
        return None
    if not isinstance(value, str) or not 0 < len(value) <= longest:
        raise ApiError(400, "invalid_request", f"{name} must be a string of 1 to {longest} characters")
    return value


def _moment(body: dict[str, Any], name: str) -> datetime:
    if not isinstance(body.get(name), str):
        raise ApiError(400, "invalid_request", f"{name} must be an ISO 8601 date-time with offset")
    try:
        moment = time_from_wire(body[name], name)
        to_db_time(moment)  # a moment the store can hold
    except (WireError, OverflowError) as error:
        raise ApiError(400, "invalid_request", str(error)) from None
    return moment


def get_contact(conn: Connection, match, _q, _body) -> Answer:
    details = contact_details_in(conn, _id(match))
    if details is None:
        raise ApiError(404, "not_found", "no customer with this id")
    return 200, contact_details_to_wire(details)


def create_contact_change(conn: Connection, match, _q, body: Any) -> Answer:
    """The CRM records the old value from its own data; e-mail or address, with its audit."""
    asked = _fields(body, CONTACT_FIELDS, CONTACT_FIELDS - {"district"})
    try:
        field = ContactField(asked["field"])
    except ValueError:
        raise ApiError(400, "invalid_request", "field must be email or address") from None
    new = _short_text(asked, "new", 400)  # the bot checked its shape before the customer confirmed
    district = _short_text(asked, "district", 100, optional=True)
    channel, verified_how = _short_text(asked, "channel", 32), _short_text(asked, "verified_how", 64)
    changed_at = _moment(asked, "changed_at")
    details = contact_details_in(conn, _id(match))
    if details is None:
        raise ApiError(404, "not_found", "no customer with this id")
    change = ContactChange(
        customer_id=details.customer_id,
        field=field,
        old=details.email if field is ContactField.EMAIL else details.address,
        new=new,
        channel=channel,
        verified_how=verified_how,
        changed_at=changed_at,
    )
    update_contact_in(conn, change, district)
    return 201, contact_change_to_wire(change)


def list_contact_changes(conn: Connection, match, _q, _body) -> Answer:
    customer_id = _customer_row(conn, match)
    return 200, {
        "items": [contact_change_to_wire(change) for change in contact_changes_in(conn, customer_id)]
    }


def invoices_of_customer(conn: Connection, match, _q, _body) -> Answer:
    return 200, {"items": [invoice_to_wire(invoice) for invoice in invoices_of_in(conn, _id(match))]}


def payments_of_customer(conn: Connection, match, _q, _body) -> Answer:
    return 200, {"items": [payment_to_wire(payment) for payment in payments_of_in(conn, _id(match))]}


def create_promise(conn: Connection, match, _q, body: Any) -> Answer:
    asked = _fields(body, PROMISE_FIELDS, {"promised_for", "channel"})
    invoice_id = _short_text(asked, "invoice_id", MAX_ID_LENGTH, optional=True)
    try:
        promised_for = (
            date.fromisoformat(asked["promised_for"]) if isinstance(asked["promised_for"], str) else None
        )
    except ValueError:
        promised_for = None
    if promised_for is None:
        raise ApiError(400, "invalid_request", "promised_for must be a date, YYYY-MM-DD")
    channel = _short_text(asked, "channel", 32)
    customer_id = _customer_row(conn, match)
    recorded_at = _now()
    promise_id = record_promise_in(conn, customer_id, invoice_id, promised_for, channel, recorded_at)
    return 201, {
        "id": str(promise_id),
        "customer_id": customer_id,
        "invoice_id": invoice_id,
        "promised_for": promised_for.isoformat(),
        "channel": channel,
        "recorded_at": time_to_wire(recorded_at),
    }


def create_payment_link(signer: PaymentLinkSigner | None, conn: Connection, match, _q, body: Any) -> Answer:
    """A new signed link for the invoice's amount (503 without PAYMENT_LINK_SECRET)."""
    _fields(body, set(), set())
    invoice = invoice_in(conn, _id(match))
    if invoice is None:
        raise ApiError(404, "not_found", "no invoice with this id")
    link = issue_payment_link_in(conn, signer, invoice, _now())
    return 201, payment_link_to_wire(link)


# (method, path pattern under BASE_PATH, handler, is a write)
ROUTES: list[tuple[str, re.Pattern[str], Handler, bool]] = [
    ("GET", re.compile(r"^/customers$"), find_customers, False),
    ("GET", re.compile(r"^/customers/(?P<id>[^/]+)$"), get_customer, False),
    ("GET", re.compile(r"^/customers/(?P<id>[^/]+)/orders$"), orders_of_customer, False),
    ("GET", re.compile(r"^/orders/(?P<id>[^/]+)$"), get_order, False),
    ("GET", re.compile(r"^/cases$"), search_cases, False),
    ("POST", re.compile(r"^/cases$"), create_case, True),
    ("GET", re.compile(r"^/cases/(?P<id>[^/]+)$"), get_case, False),
    # --- reschedule ---
    ("GET", re.compile(r"^/orders/(?P<id>[^/]+)/delivery$"), get_delivery, False),
    ("PUT", re.compile(r"^/orders/(?P<id>[^/]+)/delivery/window$"), reschedule_delivery, True),
    ("GET", re.compile(r"^/orders/(?P<id>[^/]+)/delivery/changes$"), schedule_history, False),
    ("GET", re.compile(r"^/delivery-zones/(?P<id>[^/]+)/windows$"), zone_windows, False),
    ("GET", re.compile(r"^/delivery-zones/(?P<id>[^/]+)/closures$"), zone_closures, False),
    # --- payments and contact data ---
    ("GET", re.compile(r"^/customers/(?P<id>[^/]+)/contact$"), get_contact, False),
    ("GET", re.compile(r"^/customers/(?P<id>[^/]+)/contact-changes$"), list_contact_changes, False),
    ("POST", re.compile(r"^/customers/(?P<id>[^/]+)/contact-changes$"), create_contact_change, True),
    ("GET", re.compile(r"^/customers/(?P<id>[^/]+)/invoices$"), invoices_of_customer, False),
    ("GET", re.compile(r"^/customers/(?P<id>[^/]+)/payments$"), payments_of_customer, False),
    ("POST", re.compile(r"^/customers/(?P<id>[^/]+)/promises-to-pay$"), create_promise, True),
]

# Served with the server's own link signer (see ReferenceServer.routes).
PAYMENT_LINKS = re.compile(r"^/invoices/(?P<id>[^/]+)/payment-links$")


# --- the HTTP server ----------------------------------------------------------------------------


class ReferenceServer:
    """The contract over `store`, on 127.0.0.1:`port` (0 picks a free port), on its own threads."""

    def __init__(
        self,
        store: SqlStore,
        credentials: Credentials | None = None,
        port: int = 0,
        faults: Faults | None = None,
        host: str = "127.0.0.1",
        link_signer: PaymentLinkSigner | None = None,
    ) -> None:
        self.store = store
        self.routes = [*ROUTES, ("POST", PAYMENT_LINKS, partial(create_payment_link, link_signer), True)]
        self.credentials = credentials or Credentials()
        self.faults = faults or Faults()
        # One idempotent write at a time, so two requests with one key never race. Several server
        # processes would instead rely on the key's primary key: the loser gets a 500 and its
        # client's retry is then answered from the stored response.
        self._write_lock = threading.Lock()
        # (method, path) of the latest requests, for tests; bounded for a long-running server.
        self.received: deque[tuple[str, str]] = deque(maxlen=1000)
        self.httpd = ThreadingHTTPServer((host, port), _handler_class(self))
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}{BASE_PATH}"

    def start(self) -> ReferenceServer:
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="crm-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread:
            self._thread.join(timeout=5)

    def serve_forever(self) -> None:
        self.httpd.serve_forever()

    # --- request handling ----------------------------------------------------------------------

    def answer(self, method: str, target: str, headers: Any, raw_body: bytes) -> tuple[int, Any, dict]:
        """(status, JSON body, extra headers) for one request."""
        self.received.append((method, urlsplit(target).path))
        if self.faults.latency_s:
            time.sleep(self.faults.latency_s)
        failure = self.faults.take_failure()
        if failure is not None:
            return failure, {"code": "injected_failure", "message": "test fault"}, {}
        split = urlsplit(target)
        if split.path in ("/health", f"{BASE_PATH}/health"):
            if method != "GET":
                return 405, {"code": "method_not_allowed", "message": "use GET"}, {"Allow": "GET"}
            return 200, {"status": "ok"}, {}
        if not self.credentials.accepts(headers):
            return (
                401,
                {"code": "unauthorized", "message": "send Authorization: Bearer <token> or X-API-Key"},
                {"WWW-Authenticate": 'Bearer realm="crm"'},
            )
        try:
            if not split.path.startswith(BASE_PATH + "/"):
                raise ApiError(404, "not_found", "no such path")
            path = split.path[len(BASE_PATH) :]
            query = {key: values[0] for key, values in parse_qs(split.query, keep_blank_values=True).items()}
            allowed = []
            for route_method, pattern, handler, is_write in self.routes:
                match = pattern.match(path)
                if not match:
                    continue
                allowed.append(route_method)
                if route_method != method:
                    continue
                match_values = {k: unquote(v) for k, v in match.groupdict().items()}
                if is_write:
                    return self._write(method, split.path, headers, raw_body, handler, match_values)
                with self.store.connect() as conn:
                    status, body = handler(conn, match_values, query, None)
                return status, body, {}
            if allowed:
                methods = ", ".join(sorted(set(allowed)))
                return 405, {"code": "method_not_allowed", "message": f"use {methods}"}, {"Allow": methods}
            raise ApiError(404, "not_found", "no such path")
        except ApiError as error:
            return error.status, {"code": error.code, "message": error.message}, {}
        except BackendUnavailable:
            logger.exception("reference server: database unavailable")
            return (
                503,
                {"code": "unavailable", "message": "the database is unavailable"},
                {"Retry-After": "1"},
            )

    def _write(
        self, method: str, path: str, headers: Any, raw_body: bytes, handler: Handler, match: dict
    ) -> tuple[int, Any, dict]:
        key = headers.get("Idempotency-Key") or ""
        if not IDEMPOTENCY_KEY.match(key):
            raise ApiError(
                400,
                "idempotency_key_required",
                "send an Idempotency-Key header: 1-255 visible ASCII characters",
            )
        if "json" not in (headers.get("Content-Type") or ""):
            raise ApiError(415, "unsupported_media_type", "send Content-Type: application/json")
        try:
            body = json.loads(raw_body or b"null")
        except ValueError:
            raise ApiError(400, "invalid_json", "the body is not JSON") from None
        digest = hashlib.sha256(method.encode() + b" " + path.encode() + b"\n" + raw_body).hexdigest()
        with self._write_lock:
            try:
                with self.store.connect() as conn:
                    seen = conn.execute(
                        sa.select(idempotency_keys).where(idempotency_keys.c.key == key)
                    ).first()
                    if seen is not None:
                        if seen.request_sha256 != digest:
                            raise ApiError(
                                422,
                                "idempotency_key_reused",
                                "this Idempotency-Key was used for another request",
                            )
                        return seen.status, json.loads(seen.body), {"Idempotent-Replayed": "true"}
                    status, answer = handler(conn, match, {}, body)
                    self._remember(conn, key, method, path, digest, status, answer)
            except ApiError as error:
                if error.code == "idempotency_key_reused":
                    raise
                # A refused write changes nothing (leaving the block rolled back whatever the
                # handler did), and the refusal is what a retry with this key hears again.
                status, answer = error.status, {"code": error.code, "message": error.message}
                with self.store.connect() as conn:
                    self._remember(conn, key, method, path, digest, status, answer)
        if self.faults.take_lost_answer():
            return 500, {"code": "injected_failure", "message": "applied, answer lost (test fault)"}, {}
        return status, answer, {}

    @staticmethod
    def _remember(
        conn: Connection, key: str, method: str, path: str, digest: str, status: int, answer: Any
    ) -> None:
        conn.execute(
            idempotency_keys.insert().values(
                key=key,
                method=method,
                path=path,
                request_sha256=digest,
                status=status,
                body=json.dumps(answer, ensure_ascii=False),
                created_at=_now().replace(tzinfo=None),
            )
        )


def _handler_class(server: ReferenceServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, so the bot's pooled connections are reused
        server_version = "crm-reference/1"

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY_BYTES:
                self._reply(413, {"code": "too_large", "message": "the body is too large"}, {})
                self.close_connection = True
                return
            raw = self.rfile.read(length) if length else b""
            try:
                status, body, extra = server.answer(self.command, self.path, self.headers, raw)
            except Exception:
                logger.exception("reference server: %s %s failed", self.command, self.path)
                status, body, extra = 500, {"code": "internal_error", "message": "unexpected error"}, {}
            self._reply(status, body, extra)

        def _reply(self, status: int, body: Any, extra: dict) -> None:
            payload = json.dumps(body, ensure_ascii=False).encode("utf-8")
            try:
                self.send_response(
                    status, HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else ""
                )
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for name, value in extra.items():
                    self.send_header(name, value)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True  # the client gave up (its read timeout)

        def __getattr__(self, name: str) -> Any:
            # Every method (TRACE, QUERY...) reaches the router: those the contract lacks get 405.
            if name.startswith("do_"):
                return self._handle
            raise AttributeError(name)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib signature)
            logger.info("%s - %s", self.address_string(), format % args)

    return Handler


def link_signer(settings: Settings) -> PaymentLinkSigner | None:
    """Signs the payment links this server issues, as the embedded ERP does (PAYMENT_LINK_SECRET;
    in development the one `make run` generated into var/, so the bot's checks accept them)."""
    secret = settings.payment_link_secret
    generated = VAR_DIR / "payment_link_secret"
    if not secret and settings.is_development and generated.exists():
        secret = generated.read_text().strip()
    if not secret:
        return None
    return PaymentLinkSigner(
        secret,
        settings.payment_base_url,
        timedelta(minutes=settings.payment_link_ttl_minutes),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, help="default CRM_SERVER_PORT (8090)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    try:
        settings = Settings.from_env()
    except SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    from bot.demo import FixtureError, load_demo
    from bot.migrations import migrate

    database_url = settings.crm_server_database_url
    migrate(database_url)
    store = SqlStore(database_url)
    if settings.crm_server_demo_data is not None:
        try:
            today = local_day(SystemClock(settings.clock_shift).now(), settings.bot_timezone)
            result = load_demo(store, settings.crm_server_demo_data, settings, today)
        except FixtureError as error:
            print(f"error: demo data {settings.crm_server_demo_data}: {error}", file=sys.stderr)
            return 1
        print(f"Demo data: {result.customers} customers, {result.orders} orders.", flush=True)
    credentials = Credentials.from_settings(settings)
    server = ReferenceServer(
        store, credentials, port=args.port or settings.crm_server_port, link_signer=link_signer(settings)
    )
    auth = "open (no CRM_TOKEN/ERP_TOKEN/CRM_API_KEY/ERP_API_KEY set)" if credentials.open else "required"
    print(
        f"Reference CRM/ERP server on {server.url}  (database {database_url}; auth {auth})\n"
        f"  Point the bot at it: CRM_BACKEND=rest CRM_URL={server.url} "
        f"ERP_BACKEND=rest ERP_URL={server.url} make run",
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.httpd.server_close()
        store.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
