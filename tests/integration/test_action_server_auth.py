"""The action server answers only Rasa, and only on loopback unless configured (issue 15).

The launcher (connectors/action_server.py) runs alone here, over the demo data on SQLite:
a made-up call to action_open_case without ACTION_SERVER_TOKEN, or with a wrong one, gets 403
and opens no case; the same call with the token opens one. The running stack (`stack`) shows the
same door closed on the stack's action server while its conversations, which run actions, pass
(tests/integration/test_stack.py), and that none of its servers answers off loopback.
"""

from __future__ import annotations

import ipaddress
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa
from rasa_sdk import __version__ as rasa_sdk_version

from bot.adapters.sql import SqlStore
from bot.adapters.sql import cases as cases_table
from bot.demo import load_demo
from bot.migrations import migrate
from bot.settings import DEFAULT_DEMO_DATA, Settings
from tests.action_helpers import DOMAIN
from tests.conftest import MARIANA_MX, TODAY
from tests.harness import ACTION_SERVER_TOKEN, free_port, is_up

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "actions-" + uuid.uuid4().hex


def open_case_call() -> dict:
    """What Rasa POSTs to run action_open_case for a return request from Mariana."""
    return {
        "next_action": "action_open_case",
        "sender_id": MARIANA_MX,
        "version": rasa_sdk_version,
        "domain": DOMAIN,
        "tracker": {
            "sender_id": MARIANA_MX,
            "slots": {"order_choices": None},
            "latest_message": {
                "text": "me llego roto, lo quiero devolver",
                "intent": {"name": "return_request", "confidence": 0.99},
                "entities": [],
            },
            "events": [],
            "paused": False,
            "followup_action": None,
            "active_loop": {},
            "latest_action_name": "action_listen",
        },
    }


class ActionServer:
    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        url = f"sqlite:///{tmp / 'bot.db'}"
        migrate(url)
        self.store = SqlStore(url)
        load_demo(
            self.store,
            DEFAULT_DEMO_DATA,
            Settings.from_env({"BOT_ENV": "development"}),
            today=TODAY,
            force=True,
        )
        self.env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "BOT_ENV": "development",
            "DATABASE_URL": url,
            "ACTION_PORT": str(self.port),
            "ACTION_SERVER_TOKEN": TOKEN,
        }
        self.env.pop("REDIS_URL", None)
        self.env.pop("ACTION_HOST", None)
        self.log = tmp / "actions.log"

    def start(self) -> subprocess.Popen:
        with self.log.open("w") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "connectors.action_server"],
                cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + 120
        while not is_up(f"{self.url}/health"):
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"the action server did not start:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.3)
        return process

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cases(self) -> int:
        with self.store.connect() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(cases_table)).scalar_one()


@pytest.fixture(scope="module")
def action_server(tmp_path_factory) -> Iterator[ActionServer]:
    server = ActionServer(tmp_path_factory.mktemp("action_server"))
    process = server.start()
    yield server
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
    server.store.dispose()


def post(url: str, headers: dict | None = None, params: dict | None = None) -> requests.Response:
    return requests.post(f"{url}/webhook", json=open_case_call(), headers=headers, params=params, timeout=30)


def test_without_the_token_no_action_runs(action_server):
    before = action_server.cases()
    assert post(action_server.url).status_code == 403
    assert post(action_server.url, {"Authorization": "Bearer wrong"}).status_code == 403
    assert post(action_server.url, params={"token": TOKEN[:-1]}).status_code == 403
    assert post(action_server.url, {"Authorization": f"Basic {TOKEN}"}).status_code == 403
    assert requests.get(f"{action_server.url}/actions", timeout=10).status_code == 403
    assert action_server.cases() == before  # nothing opened a case


def test_with_the_token_the_action_runs(action_server):
    before = action_server.cases()
    reply = post(action_server.url, {"Authorization": f"Bearer {TOKEN}"})
    assert reply.status_code == 200, reply.text
    assert [r["response"] for r in reply.json()["responses"]] == ["utter_return_guide", "utter_return_case"]
    assert action_server.cases() == before + 1
    # rasa's own `token:` option sends it in the query string: accepted too.
    assert post(action_server.url, params={"token": TOKEN}).status_code == 200


def test_health_stays_open(action_server):
    assert requests.get(f"{action_server.url}/health", timeout=10).json() == {"status": "ok"}


def test_without_a_token_the_action_server_refuses_to_start(action_server):
    env = {**action_server.env, "ACTION_SERVER_TOKEN": "", "ACTION_PORT": str(free_port())}
    done = subprocess.run(
        [sys.executable, "-m", "connectors.action_server"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1
    assert "ACTION_SERVER_TOKEN must be set" in done.stderr


def listening_addresses(port: int) -> set[str]:
    """The local addresses a socket listens on for `port`, read from the kernel's tables
    (/proc/net/tcp and tcp6): no packet is sent to any address but loopback."""
    found = set()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state != "0A" or int(hex_port, 16) != port:  # 0A: LISTEN
                continue
            raw = bytes.fromhex(address)
            # The kernel writes each 32-bit word in host (little-endian) order.
            packed = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
            found.add(str(ipaddress.ip_address(packed)) if width == 8 else str(ipaddress.IPv6Address(packed)))
    return found


def only_loopback(port: int) -> bool:
    addresses = listening_addresses(port)
    return bool(addresses) and all(ipaddress.ip_address(a).is_loopback for a in addresses)


def test_the_action_server_listens_on_loopback_only(action_server):
    assert only_loopback(action_server.port), listening_addresses(action_server.port)


def test_the_stacks_action_server_answers_only_rasa_and_nothing_listens_off_loopback(stack):
    url = f"http://127.0.0.1:{stack.action_port}"
    call = open_case_call()
    assert requests.post(f"{url}/webhook", json=call, timeout=30).status_code == 403
    wrong = {"Authorization": "Bearer not-the-token"}
    assert requests.post(f"{url}/webhook", json=call, headers=wrong, timeout=30).status_code == 403
    # Rasa holds the token: a conversation that runs a custom action still gets its answer.
    assert stack.say("+525599990001", "quiero devolver un producto, me llego roto")
    right = {"Authorization": f"Bearer {ACTION_SERVER_TOKEN}"}
    assert requests.get(f"{url}/actions", headers=right, timeout=10).status_code == 200
    for port in (stack.rasa_port, stack.action_port, stack.console_port):
        assert only_loopback(port), f"port {port} listens on {listening_addresses(port)}"
