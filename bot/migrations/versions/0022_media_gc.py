"""media_files: an index on uploaded_at for the retention's purge (bot/messaging/media_retention.py).

Revision ID: 0022_media_gc
Revises: 0021_returns
Create Date: 2026-12-01 06:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0022_media_gc"
down_revision = "0021_returns"
branch_labels = None
depends_on = None

INDEX = "ix_media_files_uploaded_at"


def upgrade() -> None:
    # A database made by create_all before Alembic adopted it (0018's note) has the index already.
    existing = {index["name"] for index in sa.inspect(op.get_bind()).get_indexes("media_files")}
    if INDEX not in existing:
        op.create_index(INDEX, "media_files", ["uploaded_at"])


def downgrade() -> None:
    op.drop_index(INDEX, table_name="media_files")
