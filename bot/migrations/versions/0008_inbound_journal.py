"""The inbound journal, and idempotency keys on outbound messages.

`inbound_journal` holds every message Twilio delivered, committed before the webhook answers
2xx (bot/messaging/journal.py): the unique MessageSid is the durable de-duplication, the rows
are processed in order per conversation under a lease, and replayed after a crash.
`outbound_messages.idempotency_key` names each reply by the inbound message it answers and its
place among that message's replies, so a replay never sends a reply twice.

Revision ID: 0008_inbound_journal
Revises: 0007_reference_keys_leave
Create Date: 2026-11-30 14:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_inbound_journal"
down_revision = "0007_reference_keys_leave"
branch_labels = None
depends_on = None


def _columns(table: str) -> set[str]:
    return {column["name"] for column in sa.inspect(op.get_bind()).get_columns(table)}


def upgrade() -> None:
    # A database adopted from before Alembic (0001) may already have what create_all made.
    if not sa.inspect(op.get_bind()).has_table("inbound_journal"):
        _create_journal()
    if "idempotency_key" not in _columns("outbound_messages"):
        with op.batch_alter_table("outbound_messages") as table:
            table.add_column(sa.Column("idempotency_key", sa.String(100)))
            table.create_index("ix_outbound_messages_idempotency_key", ["idempotency_key"], unique=True)


def _create_journal() -> None:
    op.create_table(
        "inbound_journal",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("message_sid", sa.String(64), nullable=False, unique=True),
        sa.Column("phone", sa.String(20), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("address", sa.String(64)),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("card_data", sa.Boolean, nullable=False),
        sa.Column("details", sa.Text),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("received_at", sa.DateTime, nullable=False),
        sa.Column("claimed_by", sa.String(64)),
        sa.Column("lease_until", sa.DateTime),
        sa.Column("finished_at", sa.DateTime),
        sa.Column("last_error", sa.String(500)),
    )
    op.create_index("ix_inbound_journal_conversation", "inbound_journal", ["phone", "status", "id"])
    op.create_index("ix_inbound_journal_status", "inbound_journal", ["status", "lease_until"])


def downgrade() -> None:
    with op.batch_alter_table("outbound_messages") as table:
        table.drop_index("ix_outbound_messages_idempotency_key")
        table.drop_column("idempotency_key")
    op.drop_index("ix_inbound_journal_status", table_name="inbound_journal")
    op.drop_index("ix_inbound_journal_conversation", table_name="inbound_journal")
    op.drop_table("inbound_journal")
