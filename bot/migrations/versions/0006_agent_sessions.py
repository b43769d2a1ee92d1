"""Console sessions end when the agent logs out or gets a new password.

Revision ID: 0006_agent_sessions
Revises: 0005_payments
Create Date: 2026-11-21 10:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_agent_sessions"
down_revision = "0005_payments"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("agents") as batch:  # batch: SQLite cannot alter tables in place
        batch.add_column(sa.Column("sessions_valid_after", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("agents") as batch:
        batch.drop_column("sessions_valid_after")
