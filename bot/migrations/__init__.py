"""Alembic migrations of the assistant's own tables; `migrate(url)` brings a database to the newest.

`make migrate` runs `python -m bot.migrations upgrade` on DATABASE_URL (and `make run` does it
before starting anything); `make migration MSG="add x"` autogenerates a revision from the
difference between the tables in code (`target_metadata()`) and a database migrated to head.
Rasa's own tracker-store tables share the database but are Rasa's: migrations leave them alone.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from bot.adapters.outbox_sql import metadata as outbox
from bot.adapters.sql import metadata as crm_erp_and_cases
from bot.analytics.schema import metadata as analytics
from bot.consents.store import metadata as consents
from bot.handoff.store import metadata as handoff
from bot.messaging.journal import metadata as journal
from bot.messaging.store import metadata as messaging
from bot.notifications.store import metadata as notifications
from bot.settings import Settings, SettingsError, shown_url

HERE = Path(__file__).resolve().parent


def target_metadata() -> list[sa.MetaData]:
    """Every table the assistant owns; a table added to code without a revision fails a test.

    Not the reference CRM/ERP server's `idempotency_keys`: that development tool (reference/)
    creates its own table in its own database, and the product never imports it.
    """
    return [crm_erp_and_cases, messaging, journal, outbox, handoff, notifications, analytics, consents]


def owned_tables() -> set[str]:
    return {name for meta in target_metadata() for name in meta.tables}


def include_name(name: str | None, type_: str, _parent: dict) -> bool:
    """Alembic's filter: the database also holds Rasa's tracker-store tables, not ours to migrate."""
    return type_ != "table" or name in owned_tables()


def schema_differences(connection: sa.engine.Connection) -> list:
    """What autogenerate would change to make this database match the tables in code."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    context = MigrationContext.configure(
        connection, opts={"include_name": include_name, "compare_type": True}
    )
    return compare_metadata(context, target_metadata())


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(HERE))
    # Passed beside the ini options: a URL's %-escapes would read as interpolation there.
    config.attributes["database_url"] = database_url
    return config


def migrate(database_url: str, revision: str = "head") -> None:
    """Upgrade the database at `database_url` to `revision` (creating the tables on a new one)."""
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str) -> None:
    command.downgrade(alembic_config(database_url), revision)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot.migrations", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("upgrade", help="migrate DATABASE_URL to the newest revision")
    down = commands.add_parser("downgrade", help="migrate DATABASE_URL back to REVISION")
    down.add_argument("revision", help="a revision id, or -1 for one step back")
    commands.add_parser("current", help="print the revision DATABASE_URL is at")
    new = commands.add_parser("revision", help="autogenerate a revision from the tables in code")
    new.add_argument("-m", "--message", required=True)
    args = parser.parse_args(argv)
    try:
        url = Settings.from_env().database_url
    except SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    config = alembic_config(url)
    if args.command == "upgrade":
        command.upgrade(config, "head")
        print(f"Database migrated to the newest revision ({shown_url(url)}).")
    elif args.command == "downgrade":
        command.downgrade(config, args.revision)
    elif args.command == "current":
        command.current(config, verbose=False)
    else:
        command.upgrade(config, "head")  # compare against the newest schema, not an empty one
        command.revision(config, message=args.message, autogenerate=True)
    return 0
