"""KPI dashboard roles and alerts (docs/kpis.md): agents.role (agent | supervisor: only
supervisors see the KPI page) and kpi_alerts, each alert fired once per rule, subject and week,
with its webhook delivery.

Revision ID: 0014_kpi_alerts
Revises: 0013_analytics
Create Date: 2026-11-30 23:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014_kpi_alerts"
down_revision = "0013_analytics"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("agents") as batch:  # batch: SQLite cannot alter tables in place
        # Every existing agent stays an agent: supervisors are named by `make agent ... ROLE=supervisor`.
        batch.add_column(sa.Column("role", sa.String(length=16), nullable=False, server_default="agent"))
    op.create_table(
        "kpi_alerts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("rule", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("subject", sa.String(length=64), nullable=False),
        sa.Column("week", sa.String(length=10), nullable=False),
        sa.Column("period_start", sa.DateTime(), nullable=False),
        sa.Column("period_end", sa.DateTime(), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("previous", sa.Float(), nullable=True),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("volume", sa.Integer(), nullable=False),
        sa.Column("fired_at", sa.DateTime(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(), nullable=True),
        sa.Column("locked_until", sa.DateTime(), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("delivered_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("rule", "subject", "week", name="uq_kpi_alerts_once"),
    )
    op.create_index("ix_kpi_alerts_fired_at", "kpi_alerts", ["fired_at"])


def downgrade() -> None:
    op.drop_table("kpi_alerts")
    with op.batch_alter_table("agents") as batch:
        batch.drop_column("role")
