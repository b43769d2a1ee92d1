"""Notifications in the analytics (docs/kpis.md, "Notifications"): the channel a notification went
on, why it was deferred and until when its deep links worked; their copy for the KPIs and the
deep links customers opened. KPI alerts acknowledged from the console: who, when.

Revision ID: 0023_notif_kpis
Revises: 0022_media_gc
Create Date: 2026-12-01 06:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0023_notif_kpis"
down_revision = "0022_media_gc"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("notifications") as batch:
        batch.add_column(sa.Column("channel", sa.String(16)))
        batch.add_column(sa.Column("deferred", sa.String(64)))
        batch.add_column(sa.Column("link_expires_at", sa.DateTime))
    op.create_table(
        "analytics_notifications",
        sa.Column("notification_id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("outcome", sa.String(24), nullable=False),
        sa.Column("customer_key", sa.String(32), nullable=False),
        sa.Column("finished_at", sa.DateTime, nullable=False),
        sa.Column("link_expires_at", sa.DateTime),
        sa.Column("quiet_hours", sa.Boolean, nullable=False),
        sa.Column("daily_cap", sa.Boolean, nullable=False),
        sa.Column("opted_out_at", sa.DateTime),
    )
    op.create_index("ix_analytics_notifications_finished_at", "analytics_notifications", ["finished_at"])
    op.create_table(
        "analytics_link_taps",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("conversation_id", sa.String(255), nullable=False),
        sa.Column("notification_id", sa.Integer, nullable=False),
        sa.Column("at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_analytics_link_taps_conversation_id", "analytics_link_taps", ["conversation_id"])
    op.create_index("ix_analytics_link_taps_notification_id", "analytics_link_taps", ["notification_id"])
    with op.batch_alter_table("kpi_alerts") as batch:
        batch.add_column(sa.Column("acknowledged_by", sa.String(64)))
        batch.add_column(sa.Column("acknowledged_at", sa.DateTime))


def downgrade() -> None:
    with op.batch_alter_table("kpi_alerts") as batch:
        batch.drop_column("acknowledged_at")
        batch.drop_column("acknowledged_by")
    op.drop_table("analytics_link_taps")
    op.drop_table("analytics_notifications")
    with op.batch_alter_table("notifications") as batch:
        batch.drop_column("link_expires_at")
        batch.drop_column("deferred")
        batch.drop_column("channel")
