"""Finding 2 (and 9's send retries): an accepted message could be lost for good. The webhook
claimed the MessageSid in memory or Redis, answered 204 and processed in the background, so a
crash after the 204 lost the message, a database error was acknowledged all the same, a hung
Redis hung every webhook, a restart forgot which messages it had seen, and a send that timed out
after Twilio had taken it was sent again.

These run the channel's webhook route in-process (its Sanic handler, with a request carrying the
form) on SQLite and PostgreSQL, with a stand-in for Rasa's agent that records what reaches it.
`make chaos` and tests/integration/test_chaos.py do the same with real kills of the real stack.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from types import SimpleNamespace
from urllib.parse import urlencode

import pytest
from rasa.shared.core.events import ActionExecuted, BotUttered, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker

from bot.clock import FixedClock
from bot.handoff.announce import Announcer
from bot.handoff.config import parse_config
from bot.handoff.service import HandoffServices
from bot.handoff.store import HandoffStore
from bot.messaging.inbound import Channel
from bot.messaging.journal import LEASE, InboundJournal
from bot.messaging.sender import MessageSender, OutboundMessage, OutboxTransport, TwilioTransport
from bot.messaging.store import MessagingStore
from bot.settings import Settings
from connectors.twilio_channel import TwilioInput
from tests.conftest import CLOCK, MARIANA_MX
from tests.fake_twilio import FakeTwilio, inbound_form

WEBHOOK = "/webhooks/twilio/webhook"


def channel_settings(database_url: str, redis_url: str | None = None) -> Settings:
    env = {"BOT_ENV": "development", "TWILIO_VALIDATE_SIGNATURE": "false", "DATABASE_URL": database_url}
    if redis_url:
        env["REDIS_URL"] = redis_url
    return Settings.from_env(env)


class Rasa:
    """Rasa's agent as the channel sees it: ready, no tracker store, records each message."""

    def __init__(self, tracker: DialogueStateTracker | None = None) -> None:
        self.handled: list[str] = []
        self.tracker_store = None if tracker is None else SimpleNamespace(retrieve=self._retrieve)
        self._tracker = tracker
        self.app = SimpleNamespace(ctx=SimpleNamespace(agent=self))

    def is_ready(self) -> bool:
        return True

    async def _retrieve(self, _conversation_id: str) -> DialogueStateTracker | None:
        return self._tracker

    async def on_new_message(self, message) -> None:
        self.handled.append(message.message_id)
        await message.output_channel.send_text_message(message.sender_id, f"respuesta a {message.text}")


def new_channel(store, database_url: str, redis_url: str | None = None, **parts) -> TwilioInput:
    """One process of the assistant (a replica, or the same one after a restart)."""
    messages = MessagingStore(store, CLOCK)
    services = HandoffServices(
        HandoffStore(store, CLOCK), parse_config({}), Announcer(None), desk_enabled=False
    )
    settings = channel_settings(database_url, redis_url)
    sender = MessageSender(settings, messages, OutboxTransport(), clock=CLOCK)
    return TwilioInput(settings, store=messages, sender=sender, handoff=services, clock=CLOCK, **parts)


def webhook(channel: TwilioInput, rasa: Rasa):
    """The channel's POST /webhook handler, as Rasa's server registers it."""
    blueprint = channel.blueprint(rasa.on_new_message)
    return next(route.handler for route in blueprint._future_routes if route.uri == "/webhook")


def request(form: dict[str, str], app) -> SimpleNamespace:
    body = urlencode(form).encode()

    async def receive_body() -> None:
        pass

    return SimpleNamespace(
        body=body, headers={"Content-Length": str(len(body))}, stream=None, app=app,
        receive_body=receive_body, remote_addr="127.0.0.1", ip="127.0.0.1",
        url=f"http://127.0.0.1{WEBHOOK}", path=WEBHOOK, query_string="",
    )  # fmt: skip


def deliver(handler, form: dict[str, str], rasa: Rasa, timeout_s: float = 10) -> int:
    async def post() -> int:
        return (await asyncio.wait_for(handler(request(form, rasa.app)), timeout_s)).status

    return asyncio.run(post())


def eventually(condition, timeout_s: float = 15) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def stop(*channels: TwilioInput) -> None:
    for channel in channels:
        if channel._worker is not None:
            channel._worker.stop()


@pytest.fixture
def database_url(store) -> str:
    return store.engine.url.render_as_string(hide_password=False)


def test_a_message_accepted_before_a_crash_is_processed_when_the_next_process_starts(store, database_url):
    crashed, rasa = new_channel(store, database_url), Rasa()
    handler = webhook(crashed, rasa)
    crashed.dispatch = lambda phone: None  # kill -9 right after the 204: nothing runs after it
    form = inbound_form(MARIANA_MX, "donde esta mi pedido")
    assert deliver(handler, form, rasa) == 204
    assert rasa.handled == []

    restarted = new_channel(store, database_url)
    webhook(restarted, rasa)
    restarted.start_processing(rasa.app, rasa.on_new_message)  # the server's after_server_start
    try:
        assert eventually(lambda: rasa.handled == [form["MessageSid"]])
        assert eventually(lambda: len(restarted.store.outbound(MARIANA_MX)) == 1)
    finally:
        stop(crashed, restarted)


def test_a_replay_after_rasa_saved_the_turn_sends_only_the_replies_not_sent(store, database_url):
    form = inbound_form(MARIANA_MX, "hola")
    sid = form["MessageSid"]
    tracker = DialogueStateTracker.from_events(
        MARIANA_MX,
        [
            UserUttered("hola", message_id=sid),
            BotUttered("uno"),
            BotUttered("dos"),
            ActionExecuted("action_listen"),
        ],
    )
    rasa = Rasa(tracker)
    crashed = new_channel(store, database_url)
    handler = webhook(crashed, rasa)
    crashed.dispatch = lambda phone: None
    assert deliver(handler, form, rasa) == 204
    # The first process took the message, Rasa saved its turn, "uno" went out, then kill -9.
    assert crashed.journal.take_next(MARIANA_MX, "dead-process") is not None
    first = OutboundMessage(MARIANA_MX, Channel.WHATSAPP, "uno")
    crashed.store.record_inbound(MARIANA_MX, Channel.WHATSAPP)
    asyncio.run(crashed.sender.send(first, key=f"{sid}:0"))

    # The dead process's lease runs out: the restarted one looks a little later.
    later = FixedClock(CLOCK.now() + 2 * LEASE)
    restarted = new_channel(store, database_url, journal=InboundJournal(store, later))
    webhook(restarted, rasa)
    restarted.start_processing(rasa.app, rasa.on_new_message)
    try:
        assert eventually(lambda: restarted.journal.status_of(sid) == "done")
        assert rasa.handled == []  # not run through Rasa again
        assert [r.body for r in restarted.store.outbound(MARIANA_MX)] == ["uno", "dos"]
    finally:
        stop(crashed, restarted)


def test_a_database_error_is_answered_5xx_so_twilio_delivers_again(store):
    unreachable = "postgresql+psycopg2://postgres@127.0.0.1:9/nowhere"  # nothing listens on port 9
    channel, rasa = new_channel(store, unreachable), Rasa()
    try:
        status = deliver(webhook(channel, rasa), inbound_form(MARIANA_MX, "hola"), rasa)
        assert 500 <= status < 600
        assert rasa.handled == []
    finally:
        stop(channel)


@pytest.fixture
def hung_redis():
    """A server that accepts connections and never answers: a Redis that hangs."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(50)
    accepted: list[socket.socket] = []
    stopping = threading.Event()

    def hold() -> None:
        server.settimeout(0.2)
        while not stopping.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    yield f"redis://127.0.0.1:{server.getsockname()[1]}/0"
    stopping.set()
    thread.join()
    for connection in accepted:
        connection.close()
    server.close()


@pytest.mark.parametrize("store", ["sqlite"], indirect=True)
def test_a_hung_redis_does_not_hang_the_webhook(store, database_url, hung_redis):
    channel, rasa = new_channel(store, database_url, redis_url=hung_redis), Rasa()
    try:
        started = time.monotonic()
        assert deliver(webhook(channel, rasa), inbound_form(MARIANA_MX, "hola"), rasa, timeout_s=5) == 204
        assert time.monotonic() - started < 2
    finally:
        stop(channel)


def test_a_message_sid_delivered_again_is_processed_once_across_replicas_and_restarts(store, database_url):
    rasa = Rasa()
    replicas = [new_channel(store, database_url) for _ in range(3)]  # no Redis: nothing shared but SQL
    handlers = [webhook(replica, rasa) for replica in replicas]  # each processes what it accepts
    form = inbound_form(MARIANA_MX, "hola")
    try:
        together = [threading.Thread(target=deliver, args=(handler, form, rasa)) for handler in handlers]
        for thread in together:
            thread.start()
        for thread in together:
            thread.join()
        assert deliver(handlers[0], form, rasa) == 204  # Twilio's retry, later
        assert eventually(lambda: rasa.handled == [form["MessageSid"]])
        time.sleep(1.5)  # a second processing would come now
        assert rasa.handled == [form["MessageSid"]]
        assert len(replicas[0].store.outbound(MARIANA_MX)) == 1
    finally:
        stop(*replicas)


@pytest.mark.parametrize("store", ["sqlite"], indirect=True)
def test_a_send_twilio_may_have_accepted_is_not_sent_again(store):
    fake = FakeTwilio().start()
    try:
        messages = MessagingStore(store, CLOCK)
        settings = Settings.from_env({
            "BOT_ENV": "development", "TWILIO_ACCOUNT_SID": fake.account_sid,
            "TWILIO_AUTH_TOKEN": fake.auth_token, "TWILIO_API_BASE": fake.url,
            "TWILIO_SMS_NUMBER": "+15005550006",
        })  # fmt: skip
        fake.fail_next(201, delay_s=1.0)  # Twilio takes the message and answers too late

        async def scenario():
            transport = TwilioTransport(fake.account_sid, fake.auth_token, fake.url, timeout_s=0.3)
            sender = MessageSender(settings, messages, transport, retry_delays_s=(0.01, 0.02), clock=CLOCK)
            try:
                return await sender.send(OutboundMessage(MARIANA_MX, Channel.SMS, "hola"))
            finally:
                await transport.close()

        asyncio.run(scenario())
        time.sleep(1.5)
        assert len(fake.received) == 1  # the customer got it once
        assert messages.outbound(MARIANA_MX)[0].status == "unknown"
    finally:
        fake.stop()
