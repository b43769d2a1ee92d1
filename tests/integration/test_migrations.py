"""Alembic migrations: the migrated schema is exactly the tables in code, on SQLite and PostgreSQL.

A table or column added to code without a revision makes `schema_differences` non-empty and
fails here; `make migration MSG=...` writes the missing revision.
"""

from __future__ import annotations

import ast
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from bot.adapters.sql import SqlStore
from bot.adapters.sql import metadata as crm_erp_and_cases
from bot.messaging.store import metadata as messaging
from bot.migrations import HERE, downgrade, migrate, owned_tables, schema_differences
from tests.conftest import PG_URL


@pytest.fixture
def pg_schema_url() -> Iterator[str]:
    """An empty PostgreSQL schema of its own (the shared test schema is built by create_all)."""
    engine = sa.create_engine(PG_URL, future=True)
    schema = f"migrations_{uuid.uuid4().hex[:10]}"
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'migrated.db'}"
    return request.getfixturevalue("pg_schema_url")


def differences(url: str) -> list:
    engine = sa.create_engine(url, future=True)
    with engine.connect() as conn:
        found = schema_differences(conn)
    engine.dispose()
    return found


def tables(url: str) -> set[str]:
    engine = sa.create_engine(url, future=True)
    names = set(sa.inspect(engine).get_table_names())
    engine.dispose()
    return names


def test_the_migrated_schema_is_the_schema_in_code(empty_url):
    migrate(empty_url)
    assert differences(empty_url) == []
    assert tables(empty_url) == owned_tables() | {"alembic_version"}


def test_a_table_in_code_without_a_migration_is_detected(empty_url, monkeypatch):
    migrate(empty_url)
    extra = sa.MetaData()
    sa.Table("loyalty_points", extra, sa.Column("id", sa.String(32), primary_key=True))
    import bot.migrations as migrations

    real = migrations.target_metadata
    monkeypatch.setattr(migrations, "target_metadata", lambda: [*real(), extra])
    assert [diff[0] for diff in differences(empty_url)] == ["add_table"]


def test_rasa_tracker_tables_in_the_same_database_are_left_alone(empty_url):
    migrate(empty_url)
    engine = sa.create_engine(empty_url, future=True)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE events (id INTEGER PRIMARY KEY, sender_id VARCHAR(255))"))
    engine.dispose()
    assert differences(empty_url) == []


# The assistant's tables in the release before migrations existed (the baseline revision).
BEFORE_ALEMBIC = ("customers", "orders", "cases", "demo_meta")


def test_a_database_made_before_migrations_is_adopted(empty_url):
    store = SqlStore(empty_url)
    with store.connect() as conn:  # what create_all made before Alembic arrived
        crm_erp_and_cases.create_all(conn, tables=[crm_erp_and_cases.tables[name] for name in BEFORE_ALEMBIC])
        messaging.create_all(conn)
    store.dispose()
    migrate(empty_url)
    assert differences(empty_url) == []


def test_migrations_go_down_and_up_again_on_postgresql(pg_schema_url):
    migrate(pg_schema_url)
    downgrade(pg_schema_url, "0001_baseline")
    assert not {"outbox_writes", "idempotency_keys"} & tables(pg_schema_url)
    downgrade(pg_schema_url, "base")
    assert tables(pg_schema_url) == {"alembic_version"}
    migrate(pg_schema_url)
    assert differences(pg_schema_url) == []


def imported_modules(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            found.add((node.module or "").split(".")[0])
    return found


def test_a_revision_imports_no_live_code():
    """An old revision must not change when the code does: sqlalchemy and alembic only."""
    revisions = sorted((HERE / "versions").glob("*.py"))
    assert revisions
    for revision in revisions:
        assert imported_modules(revision) <= {"__future__", "sqlalchemy", "alembic"}, revision.name


def test_the_product_never_imports_the_reference_server():
    """The reference CRM/ERP server is a development tool: it imports the product, not the reverse."""
    root = HERE.parent.parent
    for package in ("bot", "actions", "connectors"):
        for module in (root / package).rglob("*.py"):
            assert "reference" not in imported_modules(module), module


def columns(url: str, table: str) -> set[str]:
    engine = sa.create_engine(url, future=True)
    found = {column["name"] for column in sa.inspect(engine).get_columns(table)}
    engine.dispose()
    return found


def test_the_unused_pending_buttons_column_is_dropped_and_the_contacts_kept(empty_url):
    migrate(empty_url, "0008_inbound_journal")
    assert "pending_buttons" in columns(empty_url, "channel_contacts")
    engine = sa.create_engine(empty_url, future=True)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO channel_contacts (phone, last_channel, whatsapp_address, pending_buttons) "
                "VALUES ('+525512345678', 'whatsapp', 'whatsapp:+5215512345678', '[]')"
            )
        )
    migrate(empty_url)  # on SQLite: a batch copy of the table without the column
    assert "pending_buttons" not in columns(empty_url, "channel_contacts")
    with engine.begin() as conn:
        query = "SELECT phone, last_channel, whatsapp_address FROM channel_contacts"
        row = conn.execute(sa.text(query)).one()
    assert tuple(row) == ("+525512345678", "whatsapp", "whatsapp:+5215512345678")
    assert differences(empty_url) == []
    downgrade(empty_url, "0008_inbound_journal")
    assert "pending_buttons" in columns(empty_url, "channel_contacts")
    with engine.begin() as conn:
        assert conn.execute(sa.text("SELECT phone, pending_buttons FROM channel_contacts")).one() == (
            "+525512345678",
            None,
        )
    engine.dispose()
    migrate(empty_url)
    assert differences(empty_url) == []


def test_the_migrate_command_names_the_database_without_its_password(pg_schema_url, monkeypatch, capsys):
    from bot.migrations import main

    # PostgreSQL here trusts loopback, so the password is accepted and must not be printed.
    with_password = pg_schema_url.replace("postgres@", "postgres:pa55-w0rd@", 1)
    assert with_password != pg_schema_url
    monkeypatch.setenv("DATABASE_URL", with_password)
    assert main(["upgrade"]) == 0
    printed = capsys.readouterr().out
    assert "migrated to the newest revision" in printed
    assert "pa55-w0rd" not in printed and "postgres:***@" in printed
