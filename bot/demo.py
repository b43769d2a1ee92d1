"""Loads the demo fixture (data/demo/fixture.yml or DEMO_DATA) into the SQL CRM/ERP.

Run `python -m bot.demo` to load it when it changed or was anchored on an earlier day;
`--force` reloads regardless.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlalchemy as sa
import yaml

from bot.adapters.sql import (
    SqlStore,
    contact_changes,
    customer_details,
    customers,
    delivery_closures,
    delivery_slots,
    delivery_zones,
    demo_meta,
    invoices,
    order_deliveries,
    order_lines,
    orders,
    payment_links,
    payment_promises,
    payments,
    schedule_changes,
    to_db_time,
)
from bot.clock import SystemClock, local_day
from bot.migrations import migrate
from bot.phone import InvalidPhoneNumber, normalize_phone
from bot.records import OrderState
from bot.settings import Settings


class FixtureError(ValueError):
    """The fixture file breaks its schema; the message says where and what fits."""


@dataclass(frozen=True)
class LoadResult:
    loaded: bool
    customers: int
    orders: int
    anchor_day: date


def _day(value: Any, anchor: date, where: str) -> date:
    if isinstance(value, bool):
        raise FixtureError(f"{where}: day must be an offset like 1 or -2, or a date like 2026-12-24")
    if isinstance(value, int):
        return anchor + timedelta(days=value)
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise FixtureError(
            f"{where}: day {value!r} must be an offset like 1 or -2, or a date like 2026-12-24"
        ) from None


def _working_day(value: Any, anchor: date, working: list[str], where: str) -> date:
    """`_day`, but an offset that lands on a day without deliveries moves to the next working day:
    the demo's full and closed days then exist whatever weekday the demo is loaded on."""
    day = _day(value, anchor, where)
    if isinstance(value, int) and not isinstance(value, bool):
        while WEEKDAYS[day.weekday()] not in working:
            day += timedelta(days=1)
    return day


def _clock(value: Any, where: str) -> time:
    try:
        return time.fromisoformat(str(value))
    except ValueError:
        raise FixtureError(f"{where}: time {value!r} must look like 14:00") from None


def _moment(spec: Any, anchor: date, zone: ZoneInfo, where: str) -> datetime:
    if not isinstance(spec, dict) or "day" not in spec or "at" not in spec:
        raise FixtureError(f'{where}: write it as {{day: -2, at: "11:30"}}')
    day = _day(spec["day"], anchor, where)
    return datetime.combine(day, _clock(spec["at"], where), tzinfo=zone)


def _required(record: dict, field: str, where: str) -> Any:
    value = record.get(field)
    if value in (None, ""):
        raise FixtureError(f"{where}: '{field}' is required")
    return value


def parse_fixture(text: str, anchor: date, default_timezone: str, default_country: str):
    """Turn the fixture's YAML into rows for the customers and orders tables."""
    try:
        document = yaml.safe_load(text) or {}
    except yaml.YAMLError as error:
        raise FixtureError(f"not valid YAML: {error}") from None
    if not isinstance(document, dict):
        raise FixtureError("the file must hold 'customers:' and 'orders:' lists")

    customer_rows: list[dict] = []
    zones: dict[str, ZoneInfo] = {}
    for index, record in enumerate(document.get("customers") or []):
        where = f"customers[{index}]"
        customer_id = str(_required(record, "id", where))
        country = str(record.get("country") or default_country).upper()
        zone_name = record.get("timezone") or default_timezone
        try:
            zones[customer_id] = ZoneInfo(zone_name)
        except (ZoneInfoNotFoundError, ValueError):
            raise FixtureError(f"{where}: timezone {zone_name!r} is not an IANA zone") from None
        try:
            phone = normalize_phone(str(_required(record, "phone", where)), country)
        except InvalidPhoneNumber as error:
            raise FixtureError(f"{where}: {error}") from None
        customer_rows.append(
            {
                "id": customer_id,
                "name": str(_required(record, "name", where)),
                "phone": phone,
                "country": country,
                "timezone": record.get("timezone"),
                "email": record.get("email"),
            }
        )

    order_rows: list[dict] = []
    states = ", ".join(state.value for state in OrderState)
    for index, record in enumerate(document.get("orders") or []):
        where = f"orders[{index}]"
        owner = str(_required(record, "customer", where))
        if owner not in zones:
            raise FixtureError(f"{where}: customer {owner!r} is not among the customers")
        zone = zones[owner]
        try:
            state = OrderState(_required(record, "state", where))
        except ValueError:
            raise FixtureError(f"{where}: state must be one of {states}") from None
        window_start = window_end = None
        if record.get("window"):
            window = record["window"]
            if not isinstance(window, dict) or not {"day", "from", "to"} <= window.keys():
                raise FixtureError(f'{where}.window: write it as {{day: 1, from: "14:00", to: "18:00"}}')
            day = _day(window["day"], anchor, f"{where}.window")
            window_start = datetime.combine(day, _clock(window["from"], f"{where}.window"), zone)
            window_end = datetime.combine(day, _clock(window["to"], f"{where}.window"), zone)
            if window_end <= window_start:
                raise FixtureError(f"{where}.window: 'to' must be later than 'from'")
        moments = {
            field: _moment(record[field], anchor, zone, f"{where}.{field}") if record.get(field) else None
            for field in ("placed", "delivered", "cancelled")
        }
        if moments["placed"] is None:
            raise FixtureError(f"{where}: 'placed' is required")
        order_rows.append(
            {
                "id": str(_required(record, "id", where)),
                "customer_id": owner,
                "state": state.value,
                "items": str(_required(record, "items", where)),
                "placed_at": to_db_time(moments["placed"]),
                "carrier": record.get("carrier"),
                "tracking_url": record.get("tracking_url"),
                "window_start": to_db_time(window_start),
                "window_end": to_db_time(window_end),
                "delivered_at": to_db_time(moments["delivered"]),
                "cancelled_at": to_db_time(moments["cancelled"]),
            }
        )
    return customer_rows, order_rows


def parse_order_lines(text: str) -> list[dict]:
    """Rows for `order_lines`: each order's optional `lines: [{name, category}]` (the products
    with the category the return rules read, bot/return_rules.yml)."""
    document = yaml.safe_load(text) or {}
    rows: list[dict] = []
    for index, record in enumerate(document.get("orders") or []):
        lines = record.get("lines") or []
        where = f"orders[{index}].lines"
        if not isinstance(lines, list):
            raise FixtureError(f"{where}: write it as a list of {{name: ..., category: ...}}")
        for position, line in enumerate(lines):
            if not isinstance(line, dict) or not line.get("name"):
                raise FixtureError(f"{where}[{position}]: needs a name (and a category)")
            category = line.get("category")
            rows.append(
                {
                    "order_id": str(record["id"]),
                    "position": position,
                    "name": str(line["name"]),
                    "category": str(category) if category else None,
                }
            )
    return rows


# --- payments and contact data (issue 6) ---
# Tables that point at customers: emptied before the customers they point at.
PAYMENT_TABLES = (payment_links, payment_promises, payments, invoices, contact_changes, customer_details)


def _amount(value: Any, where: str) -> Decimal:
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        amount = Decimal(-1)
    if not amount.is_finite() or amount <= 0:
        raise FixtureError(f'{where}: amount must be a positive number like "1234.50"')
    return amount


def parse_payment_fixture(text: str, anchor: date, default_timezone: str, customer_rows: list[dict]) -> dict:
    """Rows for customer_details, invoices and payments from the fixture's YAML."""
    document = yaml.safe_load(text) or {}
    known = {row["id"]: row for row in customer_rows}
    details = [
        {
            "customer_id": str(record["id"]),
            "document_id": str(record["document_id"]) if record.get("document_id") else None,
            "address": record.get("address"),
            "district": record.get("district"),
        }
        for record in document.get("customers") or []
        if any(record.get(field) for field in ("document_id", "address", "district"))
    ]

    def owner(record: dict, where: str) -> str:
        customer = str(_required(record, "customer", where))
        if customer not in known:
            raise FixtureError(f"{where}: customer {customer!r} is not among the customers")
        return customer

    invoice_rows = []
    for index, record in enumerate(document.get("invoices") or []):
        where = f"invoices[{index}]"
        status = str(record.get("status") or "open")
        if status not in ("open", "paid"):
            raise FixtureError(f"{where}: status must be open or paid")
        invoice_rows.append(
            {
                "id": str(_required(record, "id", where)),
                "customer_id": owner(record, where),
                "order_id": record.get("order"),
                "amount": _amount(_required(record, "amount", where), where),
                "currency": str(_required(record, "currency", where)).upper(),
                "issued_on": _day(_required(record, "issued", where), anchor, f"{where}.issued"),
                "due_on": _day(_required(record, "due", where), anchor, f"{where}.due"),
                "status": status,
            }
        )
    payment_rows = []
    for index, record in enumerate(document.get("payments") or []):
        where = f"payments[{index}]"
        customer = owner(record, where)
        zone = ZoneInfo(known[customer]["timezone"] or default_timezone)
        payment_rows.append(
            {
                "id": str(_required(record, "id", where)),
                "customer_id": customer,
                "invoice_id": record.get("invoice"),
                "amount": _amount(_required(record, "amount", where), where),
                "currency": str(_required(record, "currency", where)).upper(),
                "paid_at": to_db_time(
                    _moment(_required(record, "paid", where), anchor, zone, f"{where}.paid")
                ),
                "method": str(record.get("method") or "transferencia"),
            }
        )
    return {customer_details: details, invoices: invoice_rows, payments: payment_rows}


def load_demo(
    store: SqlStore, path: Path, settings: Settings, today: date, force: bool = False
) -> LoadResult:
    """Replace the CRM/ERP tables with the fixture when it changed or was anchored on another day.

    `today` is the business's day (bot.clock.local_day of the clock's now): relative days count
    from it, so "mañana" in the fixture is always tomorrow. The tables come from the migrations
    (`migrate`, as `main` and `make run` do first)."""
    anchor = today
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise FixtureError(f"cannot read demo data {path}: {error.strerror}") from None
    digest = hashlib.sha256(text.encode()).hexdigest()
    wanted = {"fixture_sha256": digest, "anchor_day": anchor.isoformat()}

    with store.connect() as conn:
        current = dict(conn.execute(sa.select(demo_meta.c.key, demo_meta.c.value)).all())
        if not force and all(current.get(key) == value for key, value in wanted.items()):
            count = conn.execute(sa.select(sa.func.count()).select_from(orders)).scalar_one()
            people = conn.execute(sa.select(sa.func.count()).select_from(customers)).scalar_one()
            return LoadResult(False, people, count, anchor)

        customer_rows, order_rows = parse_fixture(
            text, anchor, settings.bot_timezone, settings.default_country
        )
        calendar = parse_calendar(text, anchor)
        line_rows = parse_order_lines(text)
        payment_rows = parse_payment_fixture(text, anchor, settings.bot_timezone, customer_rows)
        for table in (
            *PAYMENT_TABLES,
            schedule_changes,
            order_deliveries,
            delivery_closures,
            delivery_slots,
            delivery_zones,
            order_lines,
        ):
            conn.execute(table.delete())
        conn.execute(orders.delete())
        conn.execute(customers.delete())
        if customer_rows:
            conn.execute(customers.insert(), customer_rows)
        if order_rows:
            conn.execute(orders.insert(), order_rows)
        if line_rows:
            conn.execute(order_lines.insert(), line_rows)
        load_calendar(conn, calendar, order_rows)
        for table, rows in payment_rows.items():
            if rows:
                conn.execute(table.insert(), rows)
        conn.execute(demo_meta.delete())
        conn.execute(demo_meta.insert(), [{"key": k, "value": v} for k, v in wanted.items()])
    return LoadResult(True, len(customer_rows), len(order_rows), anchor)


# --- reschedule: delivery zones, their windows with capacity and closed days ---

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
CALENDAR_DAYS = 45  # windows are generated this many days from the load day


@dataclass(frozen=True)
class DemoCalendar:
    zones: list[dict]
    slots: list[dict]  # rows for delivery_slots, without ids
    closures: list[dict]
    order_zones: dict[str, str]  # order id -> zone id


def parse_calendar(text: str, anchor: date) -> DemoCalendar:
    """The fixture's `zones:` (windows per weekday, capacity, places taken, closed days)."""
    document = yaml.safe_load(text) or {}
    zone_rows, slot_rows, closure_rows = [], [], []
    for index, record in enumerate(document.get("zones") or []):
        where = f"zones[{index}]"
        zone_id = str(_required(record, "id", where))
        zone_name = str(_required(record, "timezone", where))
        try:
            zone = ZoneInfo(zone_name)
        except (ZoneInfoNotFoundError, ValueError):
            raise FixtureError(f"{where}: timezone {zone_name!r} is not an IANA zone") from None
        zone_rows.append(
            {
                "id": zone_id,
                "name": str(_required(record, "name", where)),
                "country": str(_required(record, "country", where)).upper(),
                "timezone": zone_name,
                "cutoff_hour": record.get("cutoff_hour"),
                "max_days_ahead": record.get("max_days_ahead"),
            }
        )
        working = record.get("days") or list(WEEKDAYS[:6])
        if not set(working) <= set(WEEKDAYS):
            raise FixtureError(f"{where}.days: use {', '.join(WEEKDAYS)}")
        taken = {}
        for spec in record.get("booked") or []:
            key = (
                _working_day(spec.get("day"), anchor, working, f"{where}.booked"),
                _clock(spec.get("from"), where),
            )
            taken[key] = int(spec.get("booked", 0))
        for offset in range(CALENDAR_DAYS):
            day = anchor + timedelta(days=offset)
            if WEEKDAYS[day.weekday()] not in working:
                continue
            for number, slot in enumerate(_required(record, "windows", where)):
                spot = f"{where}.windows[{number}]"
                start = _clock(_required(slot, "from", spot), spot)
                end = _clock(_required(slot, "to", spot), spot)
                capacity = _required(slot, "capacity", spot)
                if not isinstance(capacity, int) or isinstance(capacity, bool) or capacity < 1:
                    raise FixtureError(f"{spot}: capacity must be a whole number of deliveries, 1 or more")
                slot_rows.append(
                    {
                        "zone_id": zone_id,
                        "starts_at": to_db_time(datetime.combine(day, start, zone)),
                        "ends_at": to_db_time(datetime.combine(day, end, zone)),
                        "capacity": capacity,
                        "booked": min(taken.get((day, start), 0), capacity),
                    }
                )
        for spec in record.get("closed") or []:
            day = _working_day(spec.get("day"), anchor, working, f"{where}.closed")
            closure_rows.append({"zone_id": zone_id, "day": day, "reason": str(spec.get("reason", ""))})
    order_zones = {
        str(record["id"]): str(record["zone"])
        for record in document.get("orders") or []
        if record.get("zone")
    }
    known = {row["id"] for row in zone_rows}
    for order_id, zone_id in order_zones.items():
        if zone_id not in known:
            raise FixtureError(f"order {order_id}: zone {zone_id!r} is not among the zones")
    return DemoCalendar(zone_rows, slot_rows, closure_rows, order_zones)


def load_calendar(conn: sa.engine.Connection, calendar: DemoCalendar, order_rows: list[dict]) -> None:
    """Insert the zones and windows; each order with a zone holds a place in its current window."""
    if calendar.zones:
        conn.execute(delivery_zones.insert(), calendar.zones)
    if calendar.slots:
        conn.execute(delivery_slots.insert(), calendar.slots)
    if calendar.closures:
        conn.execute(delivery_closures.insert(), calendar.closures)
    for row in order_rows:
        zone_id = calendar.order_zones.get(row["id"])
        if zone_id is None:
            continue
        slot = conn.execute(
            sa.select(delivery_slots.c.id).where(
                delivery_slots.c.zone_id == zone_id, delivery_slots.c.starts_at == row["window_start"]
            )
        ).first()
        slot_id = slot.id if slot and row["window_start"] is not None else None
        if slot_id is not None:
            conn.execute(
                delivery_slots.update()
                .where(delivery_slots.c.id == slot_id, delivery_slots.c.booked < delivery_slots.c.capacity)
                .values(booked=delivery_slots.c.booked + 1)
            )
        conn.execute(
            order_deliveries.insert(), {"order_id": row["id"], "zone_id": zone_id, "slot_id": slot_id}
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="reload even if nothing changed")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    if settings.demo_data is None:
        print("Demo data: not loaded (DEMO_DATA is empty, or DATABASE_URL points at your own data).")
        return 0
    # The tables come from the migrations, as with `make run`: a database the loader created
    # by itself would have no Alembic revision, and the next migration would trip over it.
    migrate(settings.database_url)
    store = SqlStore(settings.database_url)
    try:
        today = local_day(SystemClock(settings.clock_shift).now(), settings.bot_timezone)
        result = load_demo(store, settings.demo_data, settings, today, force=args.force)
    except FixtureError as error:
        print(f"error: demo data {settings.demo_data}: {error}", file=sys.stderr)
        return 1
    finally:
        store.dispose()
    verb = "loaded" if result.loaded else "up to date"
    print(
        f"Demo data {verb}: {result.customers} customers, {result.orders} orders "
        f"from {settings.demo_data} (days counted from {result.anchor_day})."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
