"""whatsapp_contents: the WhatsApp buttons and lists created at Twilio's Content API.

One row per distinct set of options (bot/messaging/contents.py): its ContentSid is created once
and reused by every replica and after restarts, instead of a new content per message.

Revision ID: 0011_whatsapp_contents
Revises: 0010_agent_presence
Create Date: 2026-11-30 20:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_whatsapp_contents"
down_revision = "0010_agent_presence"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if not sa.inspect(op.get_bind()).has_table("whatsapp_contents"):
        op.create_table(
            "whatsapp_contents",
            sa.Column("shape_key", sa.String(64), primary_key=True),
            sa.Column("content_sid", sa.String(64), nullable=False),
            sa.Column("kind", sa.String(32), nullable=False),
            sa.Column("created_at", sa.DateTime, nullable=False),
        )


def downgrade() -> None:
    op.drop_table("whatsapp_contents")
