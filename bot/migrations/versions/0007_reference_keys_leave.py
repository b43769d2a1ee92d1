"""The reference CRM/ERP server's idempotency keys leave the assistant's schema.

Revision 0002 created `idempotency_keys` for the reference server, a development tool that now
lives outside the product (reference/) and creates that table in its own database when it
starts. The assistant never read or wrote it, so it is dropped here; a downgrade puts back the
empty table as 0002 made it.

Revision ID: 0007_reference_keys_leave
Revises: 0006_agent_sessions
Create Date: 2026-11-30 11:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_reference_keys_leave"
down_revision = "0006_agent_sessions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_table("idempotency_keys")


def downgrade() -> None:
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
