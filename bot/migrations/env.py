"""Alembic's environment: the database comes from the caller or bot/settings.py; online only."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from bot.migrations import include_name, target_metadata
from bot.settings import Settings

config = context.config


def database_url() -> str:
    url = config.attributes.get("database_url")
    if url:
        return url
    return Settings.from_env().database_url


def run_migrations_online() -> None:
    engine = sa.create_engine(database_url(), future=True, poolclass=sa.pool.NullPool)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata(),
            include_name=include_name,
            compare_type=True,
            # SQLite alters a table by copying it: let later revisions use batch operations.
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (SQL script) migrations are not supported: run against a database")
run_migrations_online()
