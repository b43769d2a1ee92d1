"""order_lines: the products of an order with the ERP's category of each, read by the return rules.

An order without lines stays one product (its `items`) of unknown category, so existing data
needs nothing.

Revision ID: 0021_returns
Revises: 0020_feedback
Create Date: 2026-12-01 05:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0021_returns"
down_revision = "0020_feedback"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "order_lines",
        sa.Column("order_id", sa.String(length=64), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("category", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"]),
        sa.PrimaryKeyConstraint("order_id", "position"),
    )


def downgrade() -> None:
    op.drop_table("order_lines")
