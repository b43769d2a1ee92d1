"""Cases worked by agents in the console: who has each case, when it last changed, the customer's
1-5 rating asked at closing, and case_events, the history of every change (who, what, when).

Revision ID: 0015_case_work
Revises: 0014_kpi_alerts
Create Date: 2026-11-30 23:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015_case_work"
down_revision = "0014_kpi_alerts"
branch_labels = None
depends_on = None


NEW_COLUMNS = (
    ("assigned_to", sa.String(length=64)),
    ("updated_at", sa.DateTime()),
    ("rating", sa.Integer()),
    ("rating_requested_at", sa.DateTime()),
    ("rated_at", sa.DateTime()),
)


def upgrade() -> None:
    # A `cases` table made by create_all before Alembic (the baseline adopts it) may hold the
    # columns already: only what is missing is added.
    inspector = sa.inspect(op.get_bind())
    present = {column["name"] for column in inspector.get_columns("cases")}
    indexes = {index["name"] for index in inspector.get_indexes("cases")}
    with op.batch_alter_table("cases") as batch:  # batch: SQLite cannot alter tables in place
        for name, type_ in NEW_COLUMNS:
            if name not in present:
                batch.add_column(sa.Column(name, type_, nullable=True))
        if "ix_cases_status_opened" not in indexes:
            batch.create_index("ix_cases_status_opened", ["status", "opened_at"])
    op.create_table(
        "case_events",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("case_id", sa.String(length=16), sa.ForeignKey("cases.id"), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("customer_visible", sa.Boolean(), nullable=False),
    )
    op.create_index("ix_case_events_case_id", "case_events", ["case_id"])


def downgrade() -> None:
    op.drop_index("ix_case_events_case_id", table_name="case_events")
    op.drop_table("case_events")
    with op.batch_alter_table("cases") as batch:
        batch.drop_index("ix_cases_status_opened")
        for name, _ in reversed(NEW_COLUMNS):
            batch.drop_column(name)
