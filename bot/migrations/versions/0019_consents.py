"""consents and consent_log: what each number receives per topic and channel, and every change.

`consents` holds the customer's own choices (a missing row is the topic's default, declared in
bot/notifications.yml); `consent_log` is append-only: who, what, when, through which channel and
with which (masked) message, BAJA / ALTA included (bot/consents/store.py).

Revision ID: 0019_consents
Revises: 0017_case_csat
Create Date: 2026-12-01 02:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019_consents"
down_revision = "0018_media"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "consents",
        sa.Column("phone", sa.String(length=20), nullable=False),
        sa.Column("topic", sa.String(length=40), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("granted", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("phone", "topic", "channel"),
    )
    op.create_table(
        "consent_log",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("phone", sa.String(length=20), nullable=False),
        sa.Column("topic", sa.String(length=40), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("granted", sa.Boolean(), nullable=False),
        sa.Column("via", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=24), nullable=False),
        sa.Column("message_id", sa.String(length=64), nullable=True),
        sa.Column("message_text", sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_consent_log_at", "consent_log", ["at"])
    op.create_index("ix_consent_log_phone", "consent_log", ["phone", "at"])
    op.create_index("ix_consent_log_message", "consent_log", ["message_id", "topic", "channel"], unique=True)


def downgrade() -> None:
    op.drop_index("ix_consent_log_message", table_name="consent_log")
    op.drop_index("ix_consent_log_phone", table_name="consent_log")
    op.drop_index("ix_consent_log_at", table_name="consent_log")
    op.drop_table("consent_log")
    op.drop_table("consents")
