"""agents.last_seen_at: when each agent's console last made an authenticated request, so the
customers' wait estimate counts the agents actually connected (bot/handoff/rules.py).

Revision ID: 0010_agent_presence
Revises: 0009_drop_pending_buttons
Create Date: 2026-11-30 20:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_agent_presence"
down_revision = "0009_drop_pending_buttons"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("agents") as batch:  # batch: SQLite cannot alter tables in place
        batch.add_column(sa.Column("last_seen_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("agents") as batch:
        batch.drop_column("last_seen_at")
