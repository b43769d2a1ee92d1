"""notifications: each business event received from the CRM/ERP, its decision, when it is due,
its attempts and its result (bot/notifications/store.py).

Revision ID: 0012_notifications
Revises: 0011_whatsapp_contents
Create Date: 2026-11-30 21:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012_notifications"
down_revision = "0011_whatsapp_contents"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "notifications",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("source", sa.String(120), nullable=False),
        sa.Column("event_id", sa.String(120), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("phone", sa.String(20)),
        sa.Column("customer_id", sa.String(64)),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(300)),
        sa.Column("due_at", sa.DateTime, nullable=False),
        sa.Column("locked_until", sa.DateTime),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("message_sid", sa.String(64)),
        sa.Column("send_status", sa.String(24)),
        sa.Column("received_at", sa.DateTime, nullable=False),
        sa.Column("finished_at", sa.DateTime),
        sa.UniqueConstraint("source", "event_id", name="uq_notifications_event"),
    )
    op.create_index("ix_notifications_due", "notifications", ["status", "due_at"])
    op.create_index("ix_notifications_sent", "notifications", ["phone", "status", "finished_at"])


def downgrade() -> None:
    op.drop_index("ix_notifications_sent", table_name="notifications")
    op.drop_index("ix_notifications_due", table_name="notifications")
    op.drop_table("notifications")
