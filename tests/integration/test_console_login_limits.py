"""Console logins are rate-limited per account and per client address, before scrypt runs.

The console runs for real on a free loopback port (Sanic in a thread) over a SQLite store and
is driven with a real HTTP client; the in-process attempt store runs on a FixedClock, the Redis
one on TEST_REDIS_URL. scrypt is spied on to prove a locked try costs no hashing.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from bot.clock import FixedClock
from bot.handoff.agents import create_agent
from bot.settings import Settings
from connectors.console.__main__ import main as console_cli
from tests.conftest import NOW, REDIS_URL
from tests.console_helpers import RunningConsole, console_graph

AGENT, PASSWORD = "ana", "contraseña-larga-1"
WRONG = "no-es-la-clave"


@pytest.fixture
def consoles(sql_store) -> Iterator:
    """Starts consoles over one database: `consoles(env, clock)`; all stop after the test."""
    running: list[RunningConsole] = []

    def start(env: dict[str, str] | None = None, clock: FixedClock | None = None) -> RunningConsole:
        settings = Settings.from_env({"BOT_ENV": "development", **(env or {})})
        clock = clock or FixedClock(NOW)
        graph = console_graph(settings, sql_store, clock)
        create_agent(graph.handoff.store, AGENT, PASSWORD)
        console = RunningConsole(graph)
        running.append(console)
        return console

    yield start
    for console in running:
        console.stop()


def test_the_sixth_try_after_five_wrong_passwords_is_refused_without_hashing(consoles, scrypt_calls):
    console = consoles()
    scrypt_calls.clear()
    for _ in range(5):
        assert console.login(AGENT, WRONG).status_code == 401
    assert len(scrypt_calls) == 5

    refused = console.login(AGENT, PASSWORD)

    assert refused.status_code == 429
    assert "Demasiados intentos fallidos" in refused.text
    assert "desbloquee" in refused.text
    assert len(scrypt_calls) == 5  # the right password was not even hashed


def test_the_lockout_lasts_the_window_and_then_the_right_password_works(consoles):
    clock = FixedClock(NOW)
    console = consoles(clock=clock)
    for _ in range(5):
        console.login(AGENT, WRONG)

    clock.advance(timedelta(minutes=14))
    assert console.login(AGENT, PASSWORD).status_code == 429
    clock.advance(timedelta(minutes=1, seconds=1))
    assert console.login(AGENT, PASSWORD).status_code == 302


def test_a_successful_login_forgives_the_accounts_earlier_failures(consoles):
    console = consoles()
    for _ in range(4):
        assert console.login(AGENT, WRONG).status_code == 401
    assert console.login(AGENT, PASSWORD).status_code == 302
    for _ in range(4):
        assert console.login(AGENT, WRONG).status_code == 401
    assert console.login(AGENT, PASSWORD).status_code == 302


def test_one_address_is_locked_across_account_names(consoles, scrypt_calls):
    console = consoles({"CONSOLE_LOGIN_MAX_TRIES_PER_ADDRESS": "6"})
    for number in range(6):  # one wrong try each: no account reaches its own limit
        assert console.login(f"agente{number}", WRONG).status_code == 401
    scrypt_calls.clear()

    assert console.login(AGENT, PASSWORD).status_code == 429
    assert scrypt_calls == []


def test_an_operator_unlock_lifts_the_lockout(consoles):
    console = consoles()
    for _ in range(5):
        console.login(AGENT, WRONG)
    assert console.login(AGENT, PASSWORD).status_code == 429

    console.graph.console_logins().unlock(AGENT)

    assert console.login(AGENT, PASSWORD).status_code == 302


def test_redis_counts_are_shared_by_consoles_and_lifted_by_the_unlock_command(
    consoles, redis_client, monkeypatch, capsys
):
    env = {"REDIS_URL": REDIS_URL, "CONSOLE_LOGIN_MAX_TRIES_PER_ADDRESS": "8"}
    first, second = consoles(env), consoles(env)
    for _ in range(3):
        assert first.login(AGENT, WRONG).status_code == 401
    for _ in range(2):
        assert second.login(AGENT, WRONG).status_code == 401
    assert first.login(AGENT, PASSWORD).status_code == 429
    assert second.login(AGENT, PASSWORD).status_code == 429
    assert redis_client.keys("autoservicio:console-login:lock:account:ana")

    # The address has 5 failures of its 8: three more under other names lock it for every name.
    for number in range(3):
        second.login(f"agente{number}", WRONG)
    assert first.login("agente0", WRONG).status_code == 429

    monkeypatch.setenv("REDIS_URL", REDIS_URL)
    assert console_cli(["unlock", AGENT, "--address", "127.0.0.1"]) == 0
    assert "lifted" in capsys.readouterr().out

    assert second.login(AGENT, PASSWORD).status_code == 302


def test_the_unlock_command_says_it_cannot_reach_in_process_counts(monkeypatch, capsys):
    monkeypatch.delenv("REDIS_URL", raising=False)
    assert console_cli(["unlock", AGENT]) == 1
    assert "restart the console" in capsys.readouterr().err
