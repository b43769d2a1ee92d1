"""Shared fixtures: real SQLite and PostgreSQL stores loaded with the demo fixture, real Redis.

Time is an input: the suite runs at TEST_NOW (default a Thursday morning in Mexico City), whatever
the machine's date. Every process the tests start (the stack, the reference CRM/ERP server) reads
the same moment through BOT_CLOCK_SHIFT_S, set here before anything builds a clock.
`TEST_NOW=2027-11-25T10:00:00-06:00 make test` runs the whole suite at another moment.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import uuid
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import redis
import sqlalchemy as sa
import yaml
from babel.dates import format_date
from cryptography.fernet import Fernet

from bot import wiring as wiring_module
from bot.adapters.outbox_sql import Outbox
from bot.adapters.sql import SqlCaseBook, SqlCrm, SqlErp, SqlStore
from bot.backends import Backends
from bot.clock import SystemClock, parse_moment, shift_to
from bot.demo import load_demo
from bot.handoff.announce import Announcer
from bot.handoff.config import load_config
from bot.handoff.service import HandoffServices
from bot.messaging.templates import DEFAULT_TEMPLATES
from bot.migrations import target_metadata
from bot.settings import DEFAULT_DEMO_DATA, Settings
from bot.wiring import NotWired, Wiring
from reference.tables import metadata as reference_server_tables
from tests.fake_twilio import FakeTwilio, approve_templates
from tests.harness import Stack

PG_URL = os.environ.get("TEST_DATABASE_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
# The running stack's own Redis database (Rasa locks, conversation memories), apart from REDIS_URL's flushes.
STACK_REDIS_URL = os.environ.get("TEST_STACK_REDIS_URL", "redis://127.0.0.1:6379/13")
PUBLIC_URL = "https://bot.example.test"
STACK_PAYMENT_LINK_SECRET = (
    "stack-payment-link-secret-" + uuid.uuid4().hex
)  # what the fake signs webhooks against, as Twilio would

# What the stack signs media URLs with (invoice PDFs, agents' files: bot/media_links.py).
STACK_MEDIA_LINK_SECRET = "stack-media-link-secret-" + uuid.uuid4().hex
# What the stack signs identity claims with (bot/identity.py), so tests can sign a right one.
STACK_IDENTITY_SECRET = "stack-identity-secret-" + uuid.uuid4().hex
# What the stack's notification intake checks event signatures against (tests sign with it).
STACK_NOTIFY_SECRET = "stack-notify-secret-" + uuid.uuid4().hex
# What the actions built in-process (the `wire` fixture) sign identity claims with.
TEST_IDENTITY_SECRET = "test-identity-secret-" + uuid.uuid4().hex

# The moment the suite runs at: the demo data is anchored on its day in Mexico City.
NOW = parse_moment(os.environ.get("TEST_NOW") or "2026-11-26T10:00:00-06:00").astimezone(
    ZoneInfo("America/Mexico_City")
)
TODAY = NOW.date()
# The machine's clock moved to NOW for every process of the test run (bot/clock.py, BOT_NOW):
# it starts at NOW and runs, so stack tests see time pass as a real conversation would.
os.environ["BOT_CLOCK_SHIFT_S"] = str(shift_to(NOW).total_seconds())
# Moving the clock is a development setting, and so is every process the suite starts or builds
# its settings from the environment in (production is the default when BOT_ENV is unset).
os.environ["BOT_ENV"] = "development"
CLOCK = SystemClock(shift_to(NOW))


def delivery_day(offset: int) -> date:
    """TODAY + `offset` days, or the next day with deliveries in the demo's Mexico City zone (Monday
    to Saturday): where the demo fixture puts its booked and closed days given as offsets."""
    day = TODAY + timedelta(days=offset)
    return day + timedelta(days=1) if day.weekday() == 6 else day


def written_day(offset: int, today: date | None = None) -> str:
    """How the assistant writes the day `offset` days from TODAY: `viernes 27 de noviembre`
    (with the year when it is not this year's), for expectations that move with TEST_NOW."""
    today = today or TODAY
    day = today + timedelta(days=offset)
    return format_date(day, "EEEE d 'de' MMMM" + ("" if day.year == today.year else " 'de' y"), locale="es")


MARIANA_MX = "+525512345678"  # one open order (in transit, arrives tomorrow) + one delivered
JULIAN_AR = "+5491123456789"  # three open orders + one cancelled
ROSA_PE = "+51987654321"  # only closed orders
CAMILA_CL = "+56987654321"  # no orders at all
ANDRES_CO = "+573105551234"  # in transit, no delivery day yet
STRANGER = "+525500000000"  # not a customer
LUCIA_MX = "+523312345678"  # one order being prepared, free to move (the rescheduling demo)


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings.from_env({"BOT_ENV": "development", "IDENTITY_SECRET": TEST_IDENTITY_SECRET})


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A schema of its own in the real PostgreSQL, dropped at the end of the session."""
    engine = sa.create_engine(PG_URL, future=True)
    schema = f"bot_test_{uuid.uuid4().hex[:10]}"
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    except sa.exc.OperationalError as error:
        pytest.fail(f"PostgreSQL must run for the tests ({PG_URL}); `make services` starts it: {error}")
    yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path, pg_url) -> Iterator[SqlStore]:
    """An empty SQL store on SQLite and, as a second run of the same test, on PostgreSQL."""
    url = f"sqlite:///{tmp_path / 'bot.db'}" if request.param == "sqlite" else pg_url
    sql_store = SqlStore(url)
    # Every table the assistant owns (CRM/ERP, cases, channel, outbox, handoffs), and the
    # reference server's idempotency keys, so no test replays another's answer.
    every_table = [*target_metadata(), reference_server_tables]
    with sql_store.connect() as conn:
        for tables in every_table:
            tables.drop_all(conn)
            tables.create_all(conn)
    yield sql_store
    with sql_store.connect() as conn:
        for tables in every_table:
            tables.drop_all(conn)
    sql_store.dispose()


@pytest.fixture
def demo(store, settings) -> Backends:
    """The CRM and ERP holding the demo fixture, anchored on TODAY, and an empty case book."""
    load_demo(store, DEFAULT_DEMO_DATA, settings, today=TODAY, force=True)
    return Backends(crm=SqlCrm(store), erp=SqlErp(store), cases=SqlCaseBook(store), outbox=Outbox(store))


@pytest.fixture
def wire(monkeypatch, settings):
    """Installs a graph of the given parts as the process's (bot/wiring.py) for one test: what
    the actions and channels then use. A part left out fails loudly instead of reaching a real
    system; the handoff rules are the shipped configuration unless a test gives its own. A second
    call in the same test replaces only the parts it names."""
    given: dict = {
        "clock": CLOCK,
        "handoff": HandoffServices(NotWired("handoff store"), load_config(None), Announcer(None), False),
    }

    def install(**parts) -> Wiring:
        given.update(parts)
        graph = Wiring.of(settings, **given)
        monkeypatch.setattr(wiring_module, "_process", graph)
        return graph

    return install


@pytest.fixture
def redis_client() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.ConnectionError as error:
        pytest.fail(f"Redis must run for the tests ({REDIS_URL}); `make services` starts it: {error}")
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture(scope="session")
def fake_twilio() -> Iterator[FakeTwilio]:
    """Twilio's cloud, replaced by a local server speaking its Messages API."""
    server = FakeTwilio().start()
    yield server
    server.stop()


def stack_env(fake_twilio: FakeTwilio) -> dict[str, str]:
    """What the test stacks run with: the Twilio channel aimed at the fake, known secrets, and the
    shipped WhatsApp templates approved at the fake (its Content API refuses unknown SIDs)."""
    templates = Path(tempfile.mkdtemp(prefix="whatsapp-templates-")) / "whatsapp_templates.yml"
    approved = approve_templates(fake_twilio, DEFAULT_TEMPLATES)
    templates.write_text(yaml.safe_dump(approved, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return {
        "WHATSAPP_TEMPLATES": str(templates),
        "TWILIO_ACCOUNT_SID": fake_twilio.account_sid,
        "TWILIO_AUTH_TOKEN": fake_twilio.auth_token,
        "TWILIO_API_BASE": fake_twilio.url,
        "TWILIO_WHATSAPP_NUMBER": "+14155238886",
        "TWILIO_SMS_NUMBER": "+15005550006",
        "PUBLIC_URL": PUBLIC_URL,
        "REDIS_URL": STACK_REDIS_URL,
        # payments (issue 6): known secrets, so tests can check the links the stack signs
        "PAYMENT_LINK_SECRET": STACK_PAYMENT_LINK_SECRET,
        "OTP_SECRET_KEY": Fernet.generate_key().decode(),
        "IDENTITY_SECRET": STACK_IDENTITY_SECRET,
        "MEDIA_LINK_SECRET": STACK_MEDIA_LINK_SECRET,
        "NOTIFY_WEBHOOK_SECRET": STACK_NOTIFY_SECRET,  # what the CRM/ERP signs events with
    }


@pytest.fixture(scope="session")
def stack(tmp_path_factory, fake_twilio) -> Iterator[Stack]:
    """The real stack with the trained model: REST channel, and Twilio channel aimed at the fake."""
    running = Stack(tmp_path_factory.mktemp("stack"), stack_env(fake_twilio))
    try:
        running.wait_ready()
        yield running
    finally:
        running.stop()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that stop the shared stack run last."""
    items.sort(key=lambda item: item.get_closest_marker("stops_stack") is not None)


@pytest.fixture
def scrypt_calls(monkeypatch) -> list[int]:
    """Every scrypt the process runs from now on, counted (each is 16 MiB and ~50 ms)."""
    calls: list[int] = []
    real = hashlib.scrypt

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(hashlib, "scrypt", counting)
    return calls
