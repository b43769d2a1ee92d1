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


def downgrade() -> None:
    with op.batch_alter_table("agents") as batch:
        batch.drop_column("role")
