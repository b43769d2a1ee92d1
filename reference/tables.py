"""The reference server's own table (idempotency keys) and its readers of the CRM/ERP rows it serves.

The server's database is a copy of the assistant's CRM/ERP schema (`make crm-server` migrates it
with the assistant's migrations and loads the demo data), so it reads the SQL adapter's public
tables. Its bookkeeping is its own: `idempotency_keys` belongs to this development tool, not to
the assistant, so Alembic does not own it and the server creates it in its own database
(`create_tables`) when it starts. Keeping it out of the assistant's migrations means the product
never imports this package, and an old migration never changes when this tool does.
"""

from __future__ import annotations

import sqlalchemy as sa

from bot.adapters.sql import SqlStore, from_db_time
from bot.records import Case, CaseKind, Customer, DeliveryWindow, Order, OrderState

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


def create_tables(store: SqlStore) -> None:
    """The server's own tables, if the database lacks them (the CRM/ERP tables come from migrations)."""
    with store.connect() as conn:
        metadata.create_all(conn)


# --- rows of the CRM/ERP tables as the records the wire format writes -----------------------------


def customer_from_row(row: sa.engine.Row) -> Customer:
    return Customer(
        id=row.id,
        name=row.name,
        phone=row.phone,
        country=row.country,
        timezone=row.timezone,
        email=row.email,
    )


def order_from_row(row: sa.engine.Row) -> Order:
    window = None
    if row.window_start is not None and row.window_end is not None:
        window = DeliveryWindow(from_db_time(row.window_start), from_db_time(row.window_end))
    return Order(
        id=row.id,
        customer_id=row.customer_id,
        state=OrderState(row.state),
        items=row.items,
        placed_at=from_db_time(row.placed_at),
        carrier=row.carrier,
        tracking_url=row.tracking_url,
        window=window,
        delivered_at=from_db_time(row.delivered_at),
        cancelled_at=from_db_time(row.cancelled_at),
    )


def case_from_row(row: sa.engine.Row) -> Case:
    return Case(
        id=row.id,
        kind=CaseKind(row.kind),
        conversation_id=row.conversation_id,
        customer_phone=row.customer_phone,
        details=dict(row.details or {}),
        opened_at=from_db_time(row.opened_at),
        status=row.status,
    )
