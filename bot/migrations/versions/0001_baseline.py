"""Baseline: the tables the assistant had before migrations (CRM/ERP demo, cases, channel).

Databases created before Alembic already hold some of these (made by metadata.create_all), so
each table is created only where it is missing; the revision then records them as migrated.

Revision ID: 0001_baseline
Revises:
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_baseline"
down_revision = None
branch_labels = None
depends_on = None


def _missing(name: str) -> bool:
    return not sa.inspect(op.get_bind()).has_table(name)


def upgrade() -> None:
    if _missing("customers"):
        op.create_table(
            "customers",
            sa.Column("id", sa.String(64), primary_key=True),
            sa.Column("name", sa.String(200), nullable=False),
            sa.Column("phone", sa.String(20), nullable=False, unique=True),
            sa.Column("country", sa.String(2), nullable=False),
            sa.Column("timezone", sa.String(64)),
            sa.Column("email", sa.String(254)),
        )
    if _missing("orders"):
        op.create_table(
            "orders",
            sa.Column("id", sa.String(64), primary_key=True),
            sa.Column("customer_id", sa.String(64), sa.ForeignKey("customers.id"), nullable=False),
            sa.Column("state", sa.String(32), nullable=False),
            sa.Column("items", sa.String(500), nullable=False),
            sa.Column("placed_at", sa.DateTime, nullable=False),
            sa.Column("carrier", sa.String(100)),
            sa.Column("tracking_url", sa.String(500)),
            sa.Column("window_start", sa.DateTime),
            sa.Column("window_end", sa.DateTime),
            sa.Column("delivered_at", sa.DateTime),
            sa.Column("cancelled_at", sa.DateTime),
        )
        op.create_index("ix_orders_customer_id", "orders", ["customer_id"])
    if _missing("cases"):
        op.create_table(
            "cases",
            sa.Column("id", sa.String(16), primary_key=True),
            sa.Column("kind", sa.String(32), nullable=False),
            sa.Column("conversation_id", sa.String(255), nullable=False),
            sa.Column("customer_phone", sa.String(20)),
            sa.Column("details", sa.JSON, nullable=False),
            sa.Column("status", sa.String(16), nullable=False),
            sa.Column("opened_at", sa.DateTime, nullable=False),
        )
        op.create_index("ix_cases_conversation_kind", "cases", ["conversation_id", "kind"])
    if _missing("demo_meta"):
        op.create_table(
            "demo_meta",
            sa.Column("key", sa.String(64), primary_key=True),
            sa.Column("value", sa.String(500), nullable=False),
        )
    if _missing("channel_contacts"):
        op.create_table(
            "channel_contacts",
            sa.Column("phone", sa.String(20), primary_key=True),
            sa.Column("last_channel", sa.String(16)),
            sa.Column("last_inbound_at", sa.DateTime),
            sa.Column("whatsapp_last_inbound_at", sa.DateTime),
            sa.Column("whatsapp_address", sa.String(40)),
            sa.Column("opted_out_at", sa.DateTime),
            sa.Column("opted_out_channel", sa.String(16)),
            sa.Column("opted_in_at", sa.DateTime),
            sa.Column("pending_buttons", sa.Text),
        )
    if _missing("outbound_messages"):
        op.create_table(
            "outbound_messages",
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("sid", sa.String(64), unique=True),
            sa.Column("to_phone", sa.String(20), nullable=False),
            sa.Column("channel", sa.String(16), nullable=False),
            sa.Column("transport", sa.String(16), nullable=False),
            sa.Column("body", sa.Text, nullable=False),
            sa.Column("media_urls", sa.Text),
            sa.Column("content_sid", sa.String(64)),
            sa.Column("status", sa.String(24), nullable=False),
            sa.Column("error_code", sa.String(16)),
            sa.Column("error_message", sa.String(500)),
            sa.Column("attempts", sa.Integer, nullable=False),
            sa.Column("created_at", sa.DateTime, nullable=False),
            sa.Column("updated_at", sa.DateTime, nullable=False),
        )
        op.create_index("ix_outbound_messages_to_phone", "outbound_messages", ["to_phone"])


def downgrade() -> None:
    for table in ("outbound_messages", "channel_contacts", "demo_meta", "cases", "orders", "customers"):
        op.drop_table(table)
