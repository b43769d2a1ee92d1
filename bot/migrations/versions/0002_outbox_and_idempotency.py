"""The outbox of CRM/ERP writes, and the reference server's idempotency keys.

Revision ID: 0002_outbox_and_idempotency
Revises: 0001_baseline
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_outbox_and_idempotency"
down_revision = "0001_baseline"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "outbox_writes",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("idempotency_key", sa.String(64), nullable=False, unique=True),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("management_id", sa.String(32), nullable=False),
        sa.Column("conversation_id", sa.String(255), nullable=False),
        sa.Column("customer_phone", sa.String(20)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", sa.DateTime, nullable=False),
        sa.Column("locked_until", sa.DateTime),
        sa.Column("last_error", sa.String(500)),
        sa.Column("failure_case_id", sa.String(16)),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("finished_at", sa.DateTime),
    )
    op.create_index("ix_outbox_writes_due", "outbox_writes", ["status", "next_attempt_at"])
    op.create_index("ix_outbox_writes_conversation", "outbox_writes", ["conversation_id", "kind"])
    op.create_table(
        "idempotency_keys",
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("method", sa.String(8), nullable=False),
        sa.Column("path", sa.String(500), nullable=False),
        sa.Column("request_sha256", sa.String(64), nullable=False),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("idempotency_keys")
    op.drop_index("ix_outbox_writes_conversation", table_name="outbox_writes")
    op.drop_index("ix_outbox_writes_due", table_name="outbox_writes")
    op.drop_table("outbox_writes")
