"""Health and readiness of the processes that had none (docs/deploy.md): the outbox worker's
loopback endpoint as its real process serves it, and the console's, over real HTTP. Without a
credential they say one word and nothing about customers, agents, secrets or the database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests

from bot.adapters.sql import SqlStore
from bot.handoff.announce import Announcer
from bot.handoff.config import parse_config
from bot.handoff.service import HandoffServices, build_services
from bot.handoff.store import HandoffStore
from bot.messaging.sender import MessageSender, OutboxTransport
from bot.messaging.store import MessagingStore
from bot.migrations import target_metadata
from bot.settings import Settings
from bot.wiring import Wiring
from connectors.twilio_channel import TwilioInput
from tests.conftest import CLOCK
from tests.console_helpers import RunningConsole
from tests.harness import free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
# What an unauthenticated answer must never carry.
SECRETS = ("postgres", "sqlite", "bot.db", "secret", "token", "password", "+52", "traceback")


def reveals_nothing(reply: requests.Response) -> bool:
    body = reply.text.lower()
    return set(reply.json()) == {"status"} and not any(word in body for word in SECRETS)


def wait_for(url: str, status: int, timeout_s: float = 30) -> requests.Response:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            reply = requests.get(url, timeout=2)
            if reply.status_code == status:
                return reply
        except requests.ConnectionError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} did not answer {status} within {timeout_s} s")


class WorkerProcess:
    """`python -m connectors.outbox_worker` as `make run` starts it, on a free port."""

    def __init__(self, database_url: str, log: Path) -> None:
        self.port = free_port()
        env = {
            **os.environ,
            "BOT_ENV": "development",
            "DATABASE_URL": database_url,
            "OUTBOX_WORKER_PORT": str(self.port),
            "PYTHONPATH": str(ROOT),
        }
        env.pop("REDIS_URL", None)
        self.log = log
        with log.open("w") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "connectors.outbox_worker", "--poll", "0.2"],
                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def migrated_sqlite(tmp_path) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'bot.db'}"
    store = SqlStore(url)
    with store.connect() as conn:
        for tables in target_metadata():
            tables.create_all(conn)
    store.dispose()
    yield url


def test_the_outbox_worker_is_alive_and_ready_on_loopback_and_stops_on_sigterm(migrated_sqlite, tmp_path):
    worker = WorkerProcess(migrated_sqlite, tmp_path / "worker.log")
    try:
        ready = wait_for(worker.url("/ready"), 200)
        assert ready.json() == {"status": "ready"} and reveals_nothing(ready)
        health = requests.get(worker.url("/health"), timeout=2)
        assert health.json() == {"status": "ok"} and reveals_nothing(health)
        assert requests.get(worker.url("/metrics"), timeout=2).status_code == 404
        assert requests.post(worker.url("/ready"), timeout=2).status_code == 405
        worker.process.send_signal(signal.SIGTERM)
        assert worker.process.wait(timeout=10) == 0
    finally:
        worker.stop()
    assert "health on http://127.0.0.1:" in worker.log.read_text()


def test_the_outbox_worker_without_its_database_is_alive_but_not_ready(tmp_path):
    # A PostgreSQL nobody listens on: every round fails to reach it.
    unreachable = f"postgresql+psycopg2://postgres:hunter2@127.0.0.1:{free_port()}/nowhere"
    worker = WorkerProcess(unreachable, tmp_path / "worker.log")
    try:
        health = wait_for(worker.url("/health"), 200)
        time.sleep(1)  # a few failed rounds
        not_ready = requests.get(worker.url("/ready"), timeout=2)
        assert not_ready.status_code == 503 and not_ready.json() == {"status": "not ready"}
        assert reveals_nothing(not_ready) and reveals_nothing(health)
    finally:
        worker.stop()
    assert "hunter2" not in worker.log.read_text()  # the password is not logged either


@pytest.fixture
def console(sql_store) -> Iterator[RunningConsole]:
    settings = Settings.from_env({"BOT_ENV": "development"})
    graph = Wiring.of(settings, CLOCK, handoff=build_services(settings, sql_store, CLOCK))
    running = RunningConsole(graph)
    yield running
    running.stop()


def test_the_console_is_alive_and_ready_without_a_session_and_says_nothing_else(console):
    health = requests.get(f"{console.url}/health", timeout=5)
    ready = requests.get(f"{console.url}/ready", timeout=5)
    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    assert (ready.status_code, ready.json()) == (200, {"status": "ready"})
    assert reveals_nothing(health) and reveals_nothing(ready)
    assert "set-cookie" not in {name.lower() for name in ready.headers}


def test_the_console_without_its_database_is_not_ready(console, sql_store, tmp_path):
    sql_store.engine.dispose()
    db = Path(sql_store.engine.url.database)
    db.rename(tmp_path / "moved.db")
    db.mkdir()  # where the database file was, a directory: SQLite cannot open it
    try:
        ready = requests.get(f"{console.url}/ready", timeout=5)
        assert (ready.status_code, ready.json()) == (503, {"status": "not ready"})
        assert reveals_nothing(ready)
        assert requests.get(f"{console.url}/health", timeout=5).status_code == 200
    finally:
        db.rmdir()
        (tmp_path / "moved.db").rename(db)


class Agent:
    def __init__(self, loaded: bool) -> None:
        self.loaded = loaded

    def is_ready(self) -> bool:
        return self.loaded


def test_a_rasa_replica_is_ready_once_its_model_is_loaded_and_its_journal_processed_until_it_stops(
    sql_store, settings
):
    messages = MessagingStore(sql_store, CLOCK)
    services = HandoffServices(HandoffStore(sql_store, CLOCK), parse_config({}), Announcer(None), False)
    sender = MessageSender(settings, messages, OutboxTransport(), clock=CLOCK)
    channel = TwilioInput(settings, store=messages, sender=sender, handoff=services, clock=CLOCK)
    assert not channel.is_ready()  # before the server started
    channel._app = SimpleNamespace(ctx=SimpleNamespace(agent=Agent(loaded=False)))
    channel._worker_loop()  # the journal's worker, as after_server_start starts it
    try:
        assert not channel.is_ready()  # a model that did not load
        channel._app.ctx.agent = Agent(loaded=True)
        assert channel.is_ready()
        channel._stopping = True  # SIGTERM: before_server_stop drains
        assert not channel.is_ready()
    finally:
        channel._worker.stop()
