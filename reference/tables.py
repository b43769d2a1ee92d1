"""The reference server's own table: idempotency keys.

The server's database is a copy of the assistant's CRM/ERP schema (`make crm-server` migrates it
with the assistant's migrations and loads the demo data), so it reads the SQL adapter's public
tables with the adapter's public row readers, and the two answer alike. Its bookkeeping is its
own: `idempotency_keys` belongs to this development tool, not to the assistant, so Alembic does
not own it and the server creates it in its own database (`create_tables`) when it starts.
Keeping it out of the assistant's migrations means the product never imports this package, and
an old migration never changes when this tool does.
"""

from __future__ import annotations

import sqlalchemy as sa

from bot.adapters.sql import SqlStore

metadata = sa.MetaData()

# Every write's Idempotency-Key with its first answer, so a repeated key gets that answer again.
idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("method", sa.String(8), nullable=False),
    sa.Column("path", sa.String(500), nullable=False),
    sa.Column("request_sha256", sa.String(64), nullable=False),
    sa.Column("status", sa.Integer, nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False),
)


def create_tables(store: SqlStore) -> None:
    """The server's own tables, if the database lacks them (the CRM/ERP tables come from migrations)."""
    with store.connect() as conn:
        metadata.create_all(conn)
