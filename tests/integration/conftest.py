"""Fixtures of the integration tests that more than one file uses (tests/conftest.py holds the
databases, Redis and the stack)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bot.adapters.sql import SqlStore
from bot.demo import load_demo
from bot.messaging.inbound import Channel
from bot.messaging.store import MessagingStore
from bot.migrations import migrate, target_metadata
from bot.settings import DEFAULT_DEMO_DATA, Settings
from tests.conftest import ANDRES_CO, CLOCK, JULIAN_AR, MARIANA_MX, TODAY
from tests.console_helpers import FakeRasaBridge


@pytest.fixture
def bridge() -> Iterator[FakeRasaBridge]:
    """The Rasa server's console door, keeping what the console writes into trackers."""
    running = FakeRasaBridge()
    yield running
    running.stop()


@pytest.fixture
def crm_store(tmp_path):
    """The CRM's own database, as `make crm-server` prepares it: migrated, demo data loaded."""
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    migrate(url)
    crm = SqlStore(url)
    load_demo(crm, DEFAULT_DEMO_DATA, Settings.from_env({}), today=TODAY, force=True)
    yield crm
    crm.dispose()


@pytest.fixture
def customers_wrote(store):
    """The customers wrote on WhatsApp just now: confirmations fit in the 24-hour window."""
    messaging = MessagingStore(store, CLOCK)
    for phone in (MARIANA_MX, JULIAN_AR, ANDRES_CO):
        messaging.record_inbound(phone, Channel.WHATSAPP)


@pytest.fixture
def sql_store(tmp_path) -> Iterator[SqlStore]:
    """An empty SQLite database with every table of the assistant (the console's tests)."""
    store = SqlStore(f"sqlite:///{tmp_path / 'bot.db'}")
    with store.connect() as conn:
        for tables in target_metadata():
            tables.create_all(conn)
    yield store
    store.dispose()
