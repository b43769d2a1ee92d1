"""analytics_feedback and analytics_exposures: the "¿Te sirvió?" answers and the A/B variants shown.

Both are rebuilt from analytics_events by the consumer (like analytics_sessions), so an empty
table fills again as conversations receive new events.

Revision ID: 0020_feedback
Revises: 0017_case_csat
Create Date: 2026-12-01 03:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020_feedback"
down_revision = "0019_consents"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "analytics_feedback",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("conversation_id", sa.String(length=255), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("flow", sa.String(length=64), nullable=False),
        sa.Column("useful", sa.Boolean(), nullable=False),
        sa.Column("experiment", sa.String(length=64), nullable=True),
        sa.Column("variant", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_analytics_feedback_conversation_id", "analytics_feedback", ["conversation_id"])
    op.create_index("ix_analytics_feedback_at", "analytics_feedback", ["at"])
    op.create_table(
        "analytics_exposures",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("conversation_id", sa.String(length=255), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("experiment", sa.String(length=64), nullable=False),
        sa.Column("variant", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_analytics_exposures_conversation_id", "analytics_exposures", ["conversation_id"])
    op.create_index("ix_analytics_exposures_at", "analytics_exposures", ["at"])


def downgrade() -> None:
    op.drop_table("analytics_exposures")
    op.drop_table("analytics_feedback")
