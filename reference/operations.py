"""The operations of docs/crm-erp-api.yaml the reference server implements: one function each.

Each handler gets a connection (one transaction), the path's parameters, the query and the JSON
body, and answers (status, body); a refusal is an `ApiError`. They run the SQL CRM/ERP's own
public functions (`reschedule_in`, `issue_payment_link_in`...), so the server and the embedded
adapter answer alike, and read rows with this package's readers (reference/tables.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bot.adapters.payment_links import PaymentLinkSigner
from bot.adapters.rest.wire import (
    WireError,
    case_event_to_wire,
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
    worked_case_to_wire,
)
from bot.adapters.sql import (
    CASE_CHANGE_ACTIONS,
    apply_case_change_in,
    cancel_order_in,
    case_from_row,
    case_history_in,
    cases,
    closed_days_in,
    contact_changes_in,
    contact_details_in,
    customer_from_row,
    customers,
    invoice_in,
    invoice_pdf_in,
    invoices_of_in,
    issue_payment_link_in,
    open_invoices_in,
    order_from_row,
    order_in,
    orders,
    orders_in_progress_in,
    orders_of_in,
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
from bot.clock import SystemClock
from bot.records import (
    CancelOutcome,
    CaseChange,
    CaseEvent,
    CaseKind,
    ContactChange,
    ContactField,
    RescheduleOutcome,
    ScheduleChange,
)
from bot.settings import Settings

NEW_CASE_STATUSES = ("open", "closed")  # what the bot records a case with
CASE_STATUSES = ("open", "in_progress", "waiting_customer", "resolved", "closed")  # as agents work it
MAX_CASES = 500
CASE_ID = re.compile(r"^GES-[2-9A-HJKMNP-Z]{8}$")
E164 = re.compile(r"^\+[1-9]\d{6,14}$")


@lru_cache(maxsize=1)
def _clock() -> SystemClock:
    return SystemClock(Settings.from_env().clock_shift)


def server_now() -> datetime:
    """The server keeps the assistant's time: BOT_NOW / BOT_CLOCK_SHIFT_S move it in development."""
    return _clock().now()


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
    return 200, {"items": [customer_to_wire(customer_from_row(row)) for row in rows]}


MAX_ID_LENGTH = 64


def _id(match: dict[str, str]) -> str:
    if len(match["id"]) > MAX_ID_LENGTH:
        raise ApiError(400, "invalid_request", f"ids are at most {MAX_ID_LENGTH} characters")
    return match["id"]


def get_customer(conn: Connection, match, _q, _body) -> Answer:
    row = conn.execute(sa.select(customers).where(customers.c.id == _id(match))).first()
    if row is None:
        raise ApiError(404, "not_found", "no customer with this id")
    return 200, customer_to_wire(customer_from_row(row))


def get_order(conn: Connection, match, _q, _body) -> Answer:
    order = order_in(conn, _id(match))
    if order is None:
        raise ApiError(404, "not_found", "no order with this id")
    return 200, order_to_wire(order)


def orders_of_customer(conn: Connection, match, _q, _body) -> Answer:
    return 200, {"items": [order_to_wire(order) for order in orders_of_in(conn, _id(match))]}


def orders_in_progress(conn: Connection, _m, query: dict[str, str], _body) -> Answer:
    if _param(query, "state") != "in_progress":
        raise ApiError(400, "invalid_request", "state=in_progress is the only listing served")
    return 200, {"items": [order_to_wire(order) for order in orders_in_progress_in(conn)]}


def open_invoices(conn: Connection, _m, query: dict[str, str], _body) -> Answer:
    if _param(query, "status") != "open":
        raise ApiError(400, "invalid_request", "status=open is the only listing served")
    return 200, {"items": [invoice_to_wire(invoice) for invoice in open_invoices_in(conn)]}


def get_case(conn: Connection, match, _q, _body) -> Answer:
    row = conn.execute(sa.select(cases).where(cases.c.id == match["id"])).first()
    if row is None:
        raise ApiError(404, "not_found", "no case with this id")
    return 200, worked_case_to_wire(case_from_row(row))


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


def _limit(query: dict[str, str]) -> int:
    raw = query.get("limit", str(MAX_CASES))  # given empty ("limit="): refused, not the default
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_CASES:
        raise ApiError(400, "invalid_request", f"limit must be a whole number from 1 to {MAX_CASES}")
    return int(raw)


def search_cases(conn: Connection, _m, query: dict[str, str], _body) -> Answer:
    """Every filter optional: the bot asks for one conversation's recent open cases of a kind,
    the agents' console for cases by status, and for a conversation's case awaiting its rating."""
    conversation = query.get("conversation_id")
    if conversation is not None and not 0 < len(conversation) <= 255:
        raise ApiError(400, "invalid_request", "conversation_id is 1 to 255 characters")
    status = query.get("status")
    if status is not None and status not in CASE_STATUSES:
        raise ApiError(400, "invalid_request", f"status must be one of {list(CASE_STATUSES)}")
    awaiting = query.get("awaiting_rating", "false")
    if awaiting not in ("true", "false"):
        raise ApiError(400, "invalid_request", "awaiting_rating must be true or false")
    limit = _limit(query)
    if awaiting == "true":
        # Asked for a rating, not answered yet: the most recently asked first.
        select = (
            sa.select(cases)
            .where(cases.c.rating_requested_at.is_not(None), cases.c.rating.is_(None))
            .order_by(cases.c.rating_requested_at.desc(), cases.c.id)
            .limit(limit)
        )
    else:
        select = sa.select(cases).order_by(cases.c.opened_at.desc(), cases.c.id).limit(limit)
    if conversation is not None:
        select = select.where(cases.c.conversation_id == conversation)
    phone = query.get("customer_phone")
    if phone is not None:
        if not E164.match(phone):
            raise ApiError(400, "invalid_request", "customer_phone must be E.164, like +525512345678")
        select = select.where(cases.c.customer_phone == phone)
    if query.get("kind") is not None:
        select = select.where(cases.c.kind == _kind(query["kind"]).value)
    if query.get("opened_since") is not None:
        select = select.where(cases.c.opened_at >= _db_time(_since(query["opened_since"])))
    if status is not None:
        select = select.where(cases.c.status == status)
    return 200, {"items": [worked_case_to_wire(case_from_row(row)) for row in conn.execute(select)]}


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
    if status not in NEW_CASE_STATUSES:
        raise ApiError(400, "invalid_request", f"status must be one of {list(NEW_CASE_STATUSES)}")
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
    return 201, worked_case_to_wire(case_from_row(stored))


def _case_exists(conn: Connection, case_id: str) -> None:
    if conn.execute(sa.select(cases.c.id).where(cases.c.id == case_id)).first() is None:
        raise ApiError(404, "not_found", "no case with this id")


def list_case_events(conn: Connection, match, _q, _body) -> Answer:
    case_id = _id(match)
    _case_exists(conn, case_id)
    return 200, {"items": [case_event_to_wire(event) for event in case_history_in(conn, case_id)]}


CASE_EVENT_FIELDS = {
    "at", "actor", "action", "detail", "customer_visible",
    "assigned_to", "from_status", "to_status", "rating",
}  # fmt: skip


def create_case_event(conn: Connection, match, _q, body: Any) -> Answer:
    """An agent's change to a case and its line in the history, in one transaction."""
    case_id = _id(match)
    fields = _fields(body, CASE_EVENT_FIELDS, {"at", "actor", "action", "detail", "customer_visible"})
    action = fields["action"]
    if action not in CASE_CHANGE_ACTIONS:
        raise ApiError(400, "invalid_request", f"action must be one of {list(CASE_CHANGE_ACTIONS)}")
    detail = fields["detail"]
    if not isinstance(detail, str) or len(detail) > 2000:
        raise ApiError(400, "invalid_request", "detail must be a string of at most 2000 characters")
    if not isinstance(fields["customer_visible"], bool):
        raise ApiError(400, "invalid_request", "customer_visible must be true or false")
    for name in ("from_status", "to_status"):
        if fields.get(name) is not None and fields[name] not in CASE_STATUSES:
            raise ApiError(400, "invalid_request", f"{name} must be one of {list(CASE_STATUSES)}")
    rating = fields.get("rating")
    if rating is not None and (not isinstance(rating, int) or isinstance(rating, bool)):
        raise ApiError(400, "invalid_request", "rating must be a whole number from 1 to 5")
    event = CaseEvent(
        case_id=case_id,
        at=_moment(fields, "at"),
        actor=_short_text(fields, "actor", 64),
        action=action,
        detail=detail,
        customer_visible=fields["customer_visible"],
    )
    change = CaseChange(
        event,
        assigned_to=_short_text(fields, "assigned_to", 64, optional=True),
        from_status=fields.get("from_status"),
        to_status=fields.get("to_status"),
        rating=rating,
    )
    _case_exists(conn, case_id)
    try:
        applied = apply_case_change_in(conn, change)
    except ValueError as error:
        raise ApiError(400, "invalid_request", str(error)) from None
    if not applied:
        raise ApiError(409, "case_change_refused", "the case is no longer in that state: read it again")
    return 201, case_event_to_wire(event)


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
    order = order_from_row(_order_row(conn, _id(match)))
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


CANCELLATION_FIELDS = {"customer_id", "cancelled_at"}


def cancel_order(conn: Connection, match, _q, body: Any) -> Answer:
    """The SQL ERP's own conditional cancellation: only a `created` order of this customer."""
    asked = _fields(body, CANCELLATION_FIELDS, CANCELLATION_FIELDS)
    customer_id = _short_text(asked, "customer_id", MAX_ID_LENGTH)
    outcome = cancel_order_in(conn, _id(match), customer_id, _moment(asked, "cancelled_at"))
    if outcome is CancelOutcome.NOT_FOUND:
        raise ApiError(404, "not_found", "no order with this id for this customer")
    if outcome is CancelOutcome.NOT_CANCELLABLE:
        raise ApiError(409, "not_cancellable", "the order has shipped: it cannot be cancelled")
    return 200, order_to_wire(order_in(conn, _id(match)))


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
    recorded_at = server_now()
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
    link = issue_payment_link_in(conn, signer, invoice, server_now())
    return 201, payment_link_to_wire(link)


@dataclass(frozen=True)
class Document:
    """A body that is not JSON (an invoice's PDF): the server writes its bytes as they are."""

    content_type: str
    data: bytes


def invoice_pdf(conn: Connection, match, _q, _body) -> Answer:
    """The invoice's PDF, rendered as the embedded ERP renders it (a real ERP serves its own)."""
    document = invoice_pdf_in(conn, _id(match))
    if document is None:
        raise ApiError(404, "not_found", "no invoice with this id")
    return 200, Document("application/pdf", document)


# (method, path pattern under BASE_PATH, handler, is a write)
ROUTES: list[tuple[str, re.Pattern[str], Handler, bool]] = [
    ("GET", re.compile(r"^/customers$"), find_customers, False),
    ("GET", re.compile(r"^/customers/(?P<id>[^/]+)$"), get_customer, False),
    ("GET", re.compile(r"^/customers/(?P<id>[^/]+)/orders$"), orders_of_customer, False),
    ("GET", re.compile(r"^/orders/(?P<id>[^/]+)$"), get_order, False),
    ("GET", re.compile(r"^/orders$"), orders_in_progress, False),
    ("GET", re.compile(r"^/invoices$"), open_invoices, False),
    ("GET", re.compile(r"^/invoices/(?P<id>[^/]+)/pdf$"), invoice_pdf, False),
    ("GET", re.compile(r"^/cases$"), search_cases, False),
    ("POST", re.compile(r"^/cases$"), create_case, True),
    ("GET", re.compile(r"^/cases/(?P<id>[^/]+)$"), get_case, False),
    ("GET", re.compile(r"^/cases/(?P<id>[^/]+)/events$"), list_case_events, False),
    ("POST", re.compile(r"^/cases/(?P<id>[^/]+)/events$"), create_case_event, True),
    # --- reschedule ---
    ("GET", re.compile(r"^/orders/(?P<id>[^/]+)/delivery$"), get_delivery, False),
    ("PUT", re.compile(r"^/orders/(?P<id>[^/]+)/delivery/window$"), reschedule_delivery, True),
    ("GET", re.compile(r"^/orders/(?P<id>[^/]+)/delivery/changes$"), schedule_history, False),
    ("POST", re.compile(r"^/orders/(?P<id>[^/]+)/cancellation$"), cancel_order, True),
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
