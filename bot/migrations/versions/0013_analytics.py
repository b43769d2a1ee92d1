"""Analytics (KPIs, docs/kpis.md): the events the broker delivered, the sessions built from them,
misunderstood messages, copies of handoffs and cases, and the consumer's read positions.

Revision ID: 0013_analytics
Revises: 0012_notifications
Create Date: 2026-11-30 20:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013_analytics"
down_revision = "0012_notifications"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "analytics_events",
        sa.Column("event_key", sa.String(length=64), nullable=False),
        sa.Column("conversation_id", sa.String(length=255), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("event_key"),
    )
    op.create_index("ix_analytics_events_conversation_id", "analytics_events", ["conversation_id"])
    op.create_table(
        "analytics_sessions",
        sa.Column("session_id", sa.String(length=32), nullable=False),
        sa.Column("conversation_id", sa.String(length=255), nullable=False),
        sa.Column("customer_key", sa.String(length=32), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("country", sa.String(length=2), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("ended_at", sa.DateTime(), nullable=False),
        sa.Column("intent", sa.String(length=64), nullable=True),
        sa.Column("customer_turns", sa.Integer(), nullable=False),
        sa.Column("fallback_turns", sa.Integer(), nullable=False),
        sa.Column("clarification_turns", sa.Integer(), nullable=False),
        sa.Column("last_turn_fell_back", sa.Boolean(), nullable=False),
        sa.Column("handed_over", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("session_id"),
    )
    op.create_index("ix_analytics_sessions_conversation_id", "analytics_sessions", ["conversation_id"])
    op.create_index("ix_analytics_sessions_customer_key", "analytics_sessions", ["customer_key"])
    op.create_index("ix_analytics_sessions_started_at", "analytics_sessions", ["started_at"])
    op.create_table(
        "analytics_misunderstood",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("conversation_id", sa.String(length=255), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("reasons", sa.String(length=64), nullable=False),
        sa.Column("predicted", sa.String(length=100), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_analytics_misunderstood_conversation_id", "analytics_misunderstood", ["conversation_id"]
    )
    op.create_index("ix_analytics_misunderstood_at", "analytics_misunderstood", ["at"])
    op.create_table(
        "analytics_handoffs",
        sa.Column("handoff_id", sa.String(length=16), nullable=False),
        sa.Column("conversation_id", sa.String(length=255), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("agent", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("accepted_at", sa.DateTime(), nullable=True),
        sa.Column("ended_at", sa.DateTime(), nullable=True),
        sa.Column("satisfaction", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("handoff_id"),
    )
    op.create_index("ix_analytics_handoffs_conversation_id", "analytics_handoffs", ["conversation_id"])
    op.create_index("ix_analytics_handoffs_created_at", "analytics_handoffs", ["created_at"])
    op.create_table(
        "analytics_cases",
        sa.Column("case_id", sa.String(length=16), nullable=False),
        sa.Column("conversation_id", sa.String(length=255), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("opened_at", sa.DateTime(), nullable=False),
        sa.Column("resolved_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("case_id"),
    )
    op.create_index("ix_analytics_cases_conversation_id", "analytics_cases", ["conversation_id"])
    op.create_index("ix_analytics_cases_opened_at", "analytics_cases", ["opened_at"])
    op.create_table(
        "analytics_offsets",
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("source"),
    )


def downgrade() -> None:
    for table in (
        "analytics_offsets",
        "analytics_cases",
        "analytics_handoffs",
        "analytics_misunderstood",
        "analytics_sessions",
        "analytics_events",
    ):
        op.drop_table(table)
