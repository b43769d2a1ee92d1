"""media_files: files agents send customers from the console, served to Twilio by signed URL.

Revision ID: 0018_media
Revises: 0017_case_csat
Create Date: 2026-12-01 03:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018_media"
down_revision = "0017_case_csat"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The messaging tables share one MetaData: a database made by create_all before Alembic
    # (tests/integration/test_migrations.py adopts one) may have this table already.
    if sa.inspect(op.get_bind()).has_table("media_files"):
        return
    op.create_table(
        "media_files",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("phone", sa.String(length=20), nullable=False),
        sa.Column("content_type", sa.String(length=64), nullable=False),
        sa.Column("filename", sa.String(length=120), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("uploaded_by", sa.String(length=64), nullable=False),
        sa.Column("uploaded_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("media_files")
