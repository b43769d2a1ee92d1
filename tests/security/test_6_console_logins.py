"""Finding 6: the console login had no rate limit or lockout, and each try cost scrypt's 16 MiB
and ~50 ms. Fixed on main by the previous session (bot/handoff/logins.py): these tests pass
there and guard against a regression. A real console is served on loopback over SQLite and
driven over HTTP; hashlib.scrypt is spied on to prove a refused try costs no hashing.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
import requests

from bot.adapters.sql import SqlStore
from bot.clock import FixedClock
from bot.handoff.agents import create_agent
from bot.migrations import target_metadata
from bot.settings import Settings
from bot.wiring import Wiring
from connectors.console.app import create_app
from connectors.console.rasa_api import RasaApi
from tests.conftest import NOW
from tests.console_helpers import console_graph
from tests.security.conftest import serve

AGENT, PASSWORD, WRONG = "ana", "contraseña-larga-1", "no-es-la-clave"


class Console:
    def __init__(self, graph: Wiring, port: int) -> None:
        self.graph, self.port = graph, port

    def login(self, name: str, password: str) -> int:
        session = requests.Session()
        page = session.get(f"http://127.0.0.1:{self.port}/login", timeout=10)
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
        answer = session.post(
            f"http://127.0.0.1:{self.port}/login",
            data={"csrf": csrf, "name": name, "password": password},
            allow_redirects=False,
            timeout=10,
        )
        return answer.status_code


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
def console(tmp_path, clock) -> Iterator:
    store = SqlStore(f"sqlite:///{tmp_path / 'bot.db'}")
    with store.connect() as conn:
        for tables in target_metadata():
            tables.create_all(conn)

    @contextmanager
    def start(env: dict[str, str] | None = None) -> Iterator[Console]:
        settings = Settings.from_env({"BOT_ENV": "development", **(env or {})})
        graph = console_graph(settings, store, clock)
        create_agent(graph.handoff.store, AGENT, PASSWORD)
        app = create_app(
            graph, "test-secret", RasaApi("http://127.0.0.1:9", None), name=f"c{uuid.uuid4().hex}"
        )
        with serve(app) as port:
            yield Console(graph, port)

    yield start
    store.dispose()


def test_an_account_is_locked_after_five_failures_and_the_next_try_gets_429_before_scrypt(
    console, scrypt_calls
):
    with console() as running:
        scrypt_calls.clear()
        assert [running.login(AGENT, WRONG) for _ in range(5)] == [401] * 5
        assert len(scrypt_calls) == 5
        assert running.login(AGENT, PASSWORD) == 429  # the right password, not even hashed
        assert len(scrypt_calls) == 5


def test_an_address_is_locked_across_names(console, scrypt_calls):
    with console({"CONSOLE_LOGIN_MAX_TRIES_PER_ADDRESS": "6"}) as running:
        for number in range(6):  # one failure per name: no account reaches its own limit
            assert running.login(f"agente{number}", WRONG) == 401
        scrypt_calls.clear()
        assert running.login(AGENT, PASSWORD) == 429
        assert scrypt_calls == []


def test_the_lockout_lasts_its_window(console, clock):
    with console() as running:
        for _ in range(5):
            running.login(AGENT, WRONG)
        clock.advance(timedelta(minutes=14))
        assert running.login(AGENT, PASSWORD) == 429
        clock.advance(timedelta(minutes=1, seconds=1))
        assert running.login(AGENT, PASSWORD) == 302


def test_an_operator_lifts_a_lockout(console):
    with console() as running:
        for _ in range(5):
            running.login(AGENT, WRONG)
        assert running.login(AGENT, PASSWORD) == 429
        running.graph.console_logins().unlock(AGENT, "127.0.0.1")
        assert running.login(AGENT, PASSWORD) == 302
