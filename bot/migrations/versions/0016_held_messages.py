"""held_messages: what a sender could not send because the WhatsApp 24-hour window was closed.

A template (the one meant for it, or the generic one) went out instead; the message waits here
and is delivered, in order and once, when the customer writes again (bot/messaging/sender.py).

Revision ID: 0016_held_messages
Revises: 0015_case_work
Create Date: 2026-11-30 23:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016_held_messages"
down_revision = "0015_case_work"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The messaging tables share one MetaData: a database made by create_all before Alembic
    # (tests/integration/test_migrations.py adopts one) may have this table already.
    if sa.inspect(op.get_bind()).has_table("held_messages"):
        return
    op.create_table(
        "held_messages",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("phone", sa.String(length=20), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=24), nullable=False),
        sa.Column("source_key", sa.String(length=100), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("media_urls", sa.Text(), nullable=True),
        sa.Column("options", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("template", sa.String(length=64), nullable=True),
        sa.Column("template_status", sa.String(length=200), nullable=True),
        sa.Column("held_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=True),
        sa.Column("delivered_at", sa.DateTime(), nullable=True),
        sa.Column("delivered_after", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_held_messages_phone_status", "held_messages", ["phone", "status"])
    op.create_index("ix_held_messages_source_key", "held_messages", ["source_key"], unique=True)


def downgrade() -> None:
    op.drop_index("ix_held_messages_source_key", table_name="held_messages")
    op.drop_index("ix_held_messages_phone_status", table_name="held_messages")
    op.drop_table("held_messages")
