"""Finding 1 (its last sentence) and finding 9 (blocking calls): one RASA_TOKEN guarded the public
REST channel (whose caller picks the sender, the customer's identity), Rasa's whole HTTP API
(`PUT /model`, `POST /conversations/<id>/tracker/events` forging a verified identity) and the
console's writes; and the REST channel screened card data with synchronous Redis calls on
Sanic's event loop, so a slow Redis froze every request of the server.

Now each door has its own credential (RASA_TOKEN, REST_CHANNEL_TOKEN, CONSOLE_RASA_TOKEN) that
opens no other; the HTTP API only reads unless RASA_API_WRITES=on; the console writes through
its own route, which takes only its allow-listed events (never an identity slot) and intent;
and the REST channel answers while Redis is slow. The stack (`make run`) is driven over HTTP.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from sanic import Sanic

from bot import wiring as wiring_module
from bot.messaging.memory import RedisMemory
from bot.settings import Settings
from bot.wiring import Wiring
from connectors.rest import TokenRestInput
from tests.conftest import CLOCK, REDIS_URL
from tests.harness import API_TOKEN, CONSOLE_TOKEN, REST_TOKEN, free_port

IDENTITY_SLOTS = ("verified_customer_id", "verified_until", "verified_identity", "identity_customer_id")
ALL_TOKENS = {"RASA_TOKEN": API_TOKEN, "REST_CHANNEL_TOKEN": REST_TOKEN, "CONSOLE_RASA_TOKEN": CONSOLE_TOKEN}
# Every write of Rasa's HTTP API, on a conversation of its own (the model routes act on the server).
CONVERSATION = "+525599990001"
API_WRITES = [
    ("PUT", "/model", {"model_file": "models/not-there.tar.gz"}),
    ("POST", "/model/train", {}),
    ("POST", f"/conversations/{CONVERSATION}/tracker/events", [{"event": "pause"}]),
    ("PUT", f"/conversations/{CONVERSATION}/tracker/events", [{"event": "pause"}]),
    ("POST", f"/conversations/{CONVERSATION}/execute", {"name": "utter_greet"}),
    ("POST", f"/conversations/{CONVERSATION}/trigger_intent", {"name": "greet"}),
    ("POST", f"/conversations/{CONVERSATION}/predict", None),
    ("POST", f"/conversations/{CONVERSATION}/messages", {"text": "hola", "sender": "user"}),
    ("DELETE", "/model", None),  # last: on a server that obeyed it, the model is gone
]


def conversation() -> str:
    """A conversation of one test's own, so no test sees another's events."""
    return "+52559" + str(uuid.uuid4().int)[:7]


def tracker(stack, conversation_id: str) -> dict:
    answer = requests.get(
        f"{stack.base}/conversations/{conversation_id}/tracker", params={"token": API_TOKEN}, timeout=30
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


def console_post(
    stack, path: str, body: dict, token: str | None = CONSOLE_TOKEN, **kwargs
) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.post(
        f"{stack.base}/webhooks/console{path}", json=body, headers=headers, timeout=30, **kwargs
    )


def rest_post(stack, token: str, sender: str, text: str = "hola") -> requests.Response:
    return requests.post(
        f"{stack.base}/webhooks/rest/webhook",
        json={"sender": sender, "message": text},
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
    )


# --- Rasa's HTTP API: reads, no writes ---------------------------------------------------------


def test_the_api_token_cannot_replace_the_model(stack):
    answer = requests.put(
        f"{stack.base}/model",
        params={"token": API_TOKEN},
        json={"model_file": "models/not-there.tar.gz"},
        timeout=30,
    )
    assert answer.status_code == 403, answer.text
    assert "RASA_API_WRITES=on" in answer.json()["error"]
    assert requests.get(f"{stack.base}/status", params={"token": API_TOKEN}, timeout=30).json()["model_id"]


def test_the_api_token_cannot_forge_a_verified_identity(stack):
    phone = conversation()
    answer = requests.post(
        f"{stack.base}/conversations/{phone}/tracker/events",
        params={"token": API_TOKEN},
        json=[{"event": "slot", "name": "verified_customer_id", "value": "C-001"}],
        timeout=30,
    )
    assert answer.status_code == 403, answer.text
    assert "RASA_API_WRITES" in answer.json()["error"]
    assert tracker(stack, phone)["slots"].get("verified_customer_id") is None


@pytest.mark.parametrize(("method", "path", "body"), API_WRITES, ids=[f"{m} {p}" for m, p, _ in API_WRITES])
def test_every_write_of_the_http_api_is_refused_and_reads_still_work(stack, method, path, body):
    answer = requests.request(
        method, f"{stack.base}{path}", params={"token": API_TOKEN}, json=body, timeout=30
    )
    assert answer.status_code == 403, answer.text
    assert answer.json()["setting"] == "RASA_API_WRITES"
    for read in ("/", "/version", "/status", f"/conversations/{CONVERSATION}/tracker"):
        assert requests.get(f"{stack.base}{read}", params={"token": API_TOKEN}, timeout=30).status_code == 200
    parsed = requests.post(
        f"{stack.base}/model/parse", params={"token": API_TOKEN}, json={"text": "hola"}, timeout=30
    )
    assert parsed.status_code == 200 and parsed.json()["intent"]["name"]


# --- one credential per door ---------------------------------------------------------------------


def test_the_rest_token_opens_the_rest_channel_and_not_the_api(stack):
    assert rest_post(stack, REST_TOKEN, conversation()).status_code == 200
    for read in ("/status", f"/conversations/{CONVERSATION}/tracker"):
        assert (
            requests.get(f"{stack.base}{read}", params={"token": REST_TOKEN}, timeout=30).status_code == 401
        )
    phone = conversation()
    forged = requests.post(
        f"{stack.base}/conversations/{phone}/tracker/events",
        params={"token": REST_TOKEN},
        json=[{"event": "slot", "name": "verified_customer_id", "value": "C-001"}],
        timeout=30,
    )
    assert forged.status_code in (401, 403)
    assert tracker(stack, phone)["slots"].get("verified_customer_id") is None


def test_the_api_token_does_not_open_the_rest_channel(stack):
    answer = rest_post(stack, API_TOKEN, "+525512345678", "donde esta mi pedido")
    assert answer.status_code == 401
    assert "PED-1001" not in answer.text


def test_the_console_token_opens_only_the_console_route(stack):
    phone = conversation()
    said = console_post(
        stack, "/events", {"conversation_id": phone, "events": [{"event": "bot", "text": "Hola, soy Ana"}]}
    )
    assert said.status_code == 200, said.text
    assert any(
        e.get("text") == "Hola, soy Ana" for e in tracker(stack, phone)["events"] if e["event"] == "bot"
    )
    # The console's token opens neither the HTTP API nor the REST channel.
    assert (
        requests.get(f"{stack.base}/status", params={"token": CONSOLE_TOKEN}, timeout=30).status_code == 401
    )
    assert rest_post(stack, CONSOLE_TOKEN, phone).status_code == 401
    # The other doors' tokens, a wrong one or none do not open the console's route.
    event = {"conversation_id": phone, "events": [{"event": "bot", "text": "no"}]}
    for other in (API_TOKEN, REST_TOKEN, CONSOLE_TOKEN[:-1] + "x", None):
        assert console_post(stack, "/events", event, token=other).status_code == 401
    # Nor does the right token in the URL, where logs would keep it.
    in_url = console_post(stack, "/events", event, token=None, params={"token": CONSOLE_TOKEN})
    assert in_url.status_code == 400
    assert [e["text"] for e in tracker(stack, phone)["events"] if e["event"] == "bot"] == ["Hola, soy Ana"]


@pytest.mark.parametrize("slot", IDENTITY_SLOTS)
def test_the_console_route_cannot_set_an_identity_slot(stack, slot):
    phone = conversation()
    batch = [{"event": "bot", "text": "un momento"}, {"event": "slot", "name": slot, "value": "C-001"}]
    answer = console_post(stack, "/events", {"conversation_id": phone, "events": batch})
    assert answer.status_code == 403, answer.text
    assert slot in answer.json()["error"]
    state = tracker(stack, phone)
    assert state["slots"].get(slot) is None
    assert not [e for e in state["events"] if e["event"] == "bot"]  # the whole batch was refused


def test_the_console_route_takes_only_what_the_console_sends(stack):
    phone = conversation()
    hand_back = [{"event": "pause"}, {"event": "resume"}, {"event": "action", "name": "action_listen"}]
    assert console_post(stack, "/events", {"conversation_id": phone, "events": hand_back}).status_code == 200
    refused = [
        [{"event": "user", "text": "/greet"}],
        [{"event": "action", "name": "action_verify_identity"}],
        [{"event": "restart"}],
        [{"event": "active_loop", "name": "payment_form"}],
    ]
    for events in refused:
        answer = console_post(stack, "/events", {"conversation_id": phone, "events": events})
        assert answer.status_code == 403, (events, answer.text)
    wrong_intent = console_post(stack, "/trigger_intent", {"conversation_id": phone, "intent": "affirm"})
    assert wrong_intent.status_code == 403
    api_door = requests.post(
        f"{stack.base}/webhooks/console/trigger_intent",
        json={"conversation_id": phone, "intent": "handoff_returned"},
        headers={"Authorization": f"Bearer {API_TOKEN}"},
        timeout=30,
    )
    assert api_door.status_code == 401


# --- each process holds only its own credential -------------------------------------------------


def descendants(pid: int) -> list[int]:
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        children = [child for child, of in parents.items() if of == parent]
        found += children
        frontier += children
    return found


def environment(pid: int) -> tuple[str, dict[str, str]]:
    command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return command, dict(item.decode().split("=", 1) for item in raw if b"=" in item)


def test_each_process_of_the_stack_holds_only_its_own_credentials(stack):
    held: dict[str, set[str]] = {}
    for pid in descendants(stack.process.pid):
        try:
            command, env = environment(pid)
        except OSError:
            continue
        for role in ("connectors.rasa_launcher", "connectors.console", "connectors.action_server",
                     "connectors.outbox_worker"):  # fmt: skip
            if role in command:
                held[role] = {name for name, value in ALL_TOKENS.items() if env.get(name) == value}
    assert held == {
        "connectors.rasa_launcher": set(ALL_TOKENS),
        "connectors.console": {"CONSOLE_RASA_TOKEN"},
        "connectors.action_server": set(),
        "connectors.outbox_worker": set(),
    }


# --- finding 9: no blocking Redis call on the REST channel's event loop -------------------------

REDIS_DELAY_S = 1.5


class SlowRedis:
    """A TCP proxy to the test Redis that holds every answer back for `delay_s` seconds."""

    def __init__(self, delay_s: float) -> None:
        target = urlsplit(REDIS_URL)
        self.upstream = (target.hostname or "127.0.0.1", target.port or 6379)
        self.url = f"redis://127.0.0.1:{{port}}{target.path or '/0'}"
        self.delay_s = delay_s
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = self.url.format(port=self.listener.getsockname()[1])
        self.closing = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closing:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.upstream)
            threading.Thread(target=self._pump, args=(client, upstream, 0.0), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, self.delay_s), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, target: socket.socket, delay_s: float) -> None:
        try:
            while chunk := source.recv(65536):
                time.sleep(delay_s)
                target.sendall(chunk)
        except OSError:
            pass
        finally:
            source.close()
            target.close()

    def close(self) -> None:
        self.closing = True
        self.listener.close()


@pytest.fixture
def rest_channel_on_slow_redis() -> Iterator[str]:
    """The REST channel served on a free loopback port (Sanic in a thread, as Rasa serves it), its
    card memory on a Redis that answers every command 1.5 s late. Yields the base URL."""
    Sanic.test_mode = True
    slow = SlowRedis(REDIS_DELAY_S)
    channel = TokenRestInput(token=REST_TOKEN, memory=RedisMemory(slow.url))

    async def bot(message) -> None:  # the bot's part is not what is measured here
        return None

    app = Sanic(f"rest{uuid.uuid4().hex}")
    app.blueprint(channel.blueprint(bot), url_prefix="/webhooks/rest")
    port = free_port()
    loop = asyncio.new_event_loop()
    started = threading.Event()
    holder: dict = {}

    def serve() -> None:
        asyncio.set_event_loop(loop)

        async def start() -> None:
            holder["server"] = await app.create_server(
                host="127.0.0.1", port=port, return_asyncio_server=True, access_log=False
            )
            await holder["server"].startup()
            started.set()

        loop.run_until_complete(start())
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert started.wait(10), "the REST channel did not start"
    try:
        yield f"http://127.0.0.1:{port}/webhooks/rest"
    finally:

        async def close() -> None:
            holder["server"].close()
            await holder["server"].wait_closed()

        asyncio.run_coroutine_threadsafe(close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        slow.close()


def test_the_rest_channel_answers_while_redis_is_slow(rest_channel_on_slow_redis):
    base = rest_channel_on_slow_redis
    finished: dict[str, float] = {}

    def customer_writes() -> None:
        started = time.monotonic()
        answer = requests.post(
            f"{base}/webhook",
            json={"sender": "+525512345678", "message": "hola"},
            headers={"Authorization": f"Bearer {REST_TOKEN}"},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        finished["message"] = time.monotonic() - started

    writer = threading.Thread(target=customer_writes)
    writer.start()
    time.sleep(0.3)  # the message is now waiting on Redis
    started = time.monotonic()
    health = requests.get(f"{base}/", timeout=30)
    health_s = time.monotonic() - started
    writer.join(30)
    assert health.status_code == 200
    # The message really waited on the slow Redis (two round trips of 1.5 s)...
    assert finished["message"] >= REDIS_DELAY_S
    # ...while the server's loop went on answering others at once.
    assert health_s < REDIS_DELAY_S / 2, f"the health check waited {health_s:.2f} s behind Redis"


def test_a_door_without_its_token_refuses_to_start(monkeypatch):
    """Production, and only RASA_TOKEN set (as when one token did everything): the REST channel,
    the console's route and the console each refuse to start, naming what to set."""
    from connectors.console.__main__ import serve
    from connectors.console_bridge import ConsoleBridgeInput

    production = Settings.from_env({"RASA_TOKEN": API_TOKEN})
    monkeypatch.setattr(wiring_module, "_process", Wiring.of(production, CLOCK))
    with pytest.raises(SystemExit, match="REST_CHANNEL_TOKEN must be set"):
        TokenRestInput.from_credentials(None)
    with pytest.raises(SystemExit, match="CONSOLE_RASA_TOKEN must be set"):
        ConsoleBridgeInput.from_credentials(None)
    with pytest.raises(SystemExit, match="CONSOLE_RASA_TOKEN must be set"):
        serve(production, free_port())
