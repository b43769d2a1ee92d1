"""analytics_cases.satisfaction: the customer's 1-5 on a closed case counts in CSAT.

Revision ID: 0017_case_csat
Revises: 0016_held_messages
Create Date: 2026-12-01 00:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017_case_csat"
down_revision = "0016_held_messages"
branch_labels = None
depends_on = None


def upgrade() -> None:
    columns = {column["name"] for column in sa.inspect(op.get_bind()).get_columns("analytics_cases")}
    if "satisfaction" not in columns:
        op.add_column("analytics_cases", sa.Column("satisfaction", sa.Integer(), nullable=True))


def downgrade() -> None:
    op.drop_column("analytics_cases", "satisfaction")
