"""Helpers the handoff integration and browser tests share: an agent, a console session, waits."""

from __future__ import annotations

import re
import time

import requests

from bot.adapters.sql import SqlStore
from bot.handoff.agents import create_agent
from bot.handoff.store import Handoff, HandoffStore
from tests.conftest import CLOCK
from tests.harness import API_TOKEN, CONSOLE_TOKEN

AGENT, PASSWORD = "ana", "clave-de-prueba-1"


def handoff_store(stack) -> HandoffStore:
    return HandoffStore(SqlStore(stack.database_url), CLOCK)


def ensure_agent(stack) -> None:
    create_agent(handoff_store(stack), AGENT, PASSWORD)


def console_session(stack, name: str | None = None, password: str | None = None) -> requests.Session:
    """A browser session logged in to the console: as the test agent, or as `name` (which must
    exist already)."""
    if name is None:
        ensure_agent(stack)
        name, password = AGENT, PASSWORD
    session = requests.Session()
    form = session.get(f"{stack.console}/login", timeout=10)
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)
    answer = session.post(
        f"{stack.console}/login",
        data={"csrf": csrf, "name": name, "password": password},
        allow_redirects=False,
        timeout=10,
    )
    assert answer.status_code == 302, answer.text
    return session


def csrf_of(page: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', page).group(1)


def wait_for_handoff(stack, phone: str, timeout_s: float = 30) -> Handoff:
    deadline = time.monotonic() + timeout_s
    store = handoff_store(stack)
    while time.monotonic() < deadline:
        found = store.active_for(phone)
        if found is not None:
            return found
        time.sleep(0.2)
    raise AssertionError(f"no active handoff for {phone}:\n{stack.tail()}")


def wait_for_messages(stack, handoff_id: str, count: int, timeout_s: float = 15):
    deadline = time.monotonic() + timeout_s
    store = handoff_store(stack)
    while time.monotonic() < deadline:
        found = store.messages(handoff_id)
        if len(found) >= count:
            return found
        time.sleep(0.2)
    raise AssertionError(f"{count} handoff message(s) expected, got {store.messages(handoff_id)}")


def tracker(stack, phone: str) -> dict:
    return requests.get(
        f"{stack.base}/conversations/{phone}/tracker", params={"token": API_TOKEN}, timeout=30
    ).json()


def release(stack, phone: str) -> None:
    """End whatever handoff a failed test left open, so later tests talk to the bot."""
    store = handoff_store(stack)
    active = store.active_for(phone)
    if active is not None:
        store.end(active.id, "closed", "test cleanup")
        # As the console does, through its route: the pause stopped the bot before its
        # action_listen, and without it the next message (even /restart) matches no rule.
        requests.post(
            f"{stack.base}/webhooks/console/events",
            headers={"Authorization": f"Bearer {CONSOLE_TOKEN}"},
            json={
                "conversation_id": phone,
                "events": [{"event": "resume"}, {"event": "action", "name": "action_listen"}],
            },
            timeout=30,
        )


def eventually(check, timeout_s: float = 15, what: str = "the condition") -> None:
    """Rasa saves a turn after sending its replies: poll until `check()` holds."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"{what} did not hold within {timeout_s} s")


def paused(stack, phone: str) -> bool:
    return tracker(stack, phone)["paused"] is True
