"""Finding 4: unsigned requests cost the server. The form body (Sanic's default limit is 100 MB)
was parsed on the event loop before the signature was checked (10 MB took 3 s), and the masking
regex was cubic in the number of digit groups: 1,600 characters of "1 1 1 …" cost 3 s of CPU,
paid again on every later save of the session because the tracker store re-masks each message.

Both were fixed on main by the previous session (a linear detector; streamed webhook routes
refused from their headers): these tests pass there and guard against a regression. The bounds
are generous on purpose (50 ms where a linear pass takes about 1-10 ms on a shared CI core): the
cubic regex took seconds, so a regression fails by orders of magnitude, not by noise.
"""

from __future__ import annotations

import socket
import time
import uuid

import pytest
from rasa.shared.core.events import UserUttered
from sanic import Sanic

from bot.adapters.sql import SqlStore
from bot.handoff.announce import Announcer
from bot.handoff.config import load_config, parse_config
from bot.handoff.service import HandoffServices
from bot.handoff.store import HandoffStore
from bot.masking import mask_card_data
from bot.messaging.inbound import parse_inbound
from bot.messaging.inbound_rules import ConversationState, decide
from bot.messaging.journal import InboundJournal
from bot.messaging.memory import InProcessMemory
from bot.messaging.sender import MessageSender, OutboxTransport
from bot.messaging.store import MessagingStore
from bot.migrations import target_metadata
from bot.settings import Settings
from connectors.stores import masked_events
from connectors.twilio_channel import MAX_FORM_BYTES, TwilioInput
from tests.conftest import CLOCK
from tests.fake_twilio import inbound_form
from tests.security.conftest import serve

# Linear masking of 10 kB takes milliseconds (52 ms seen on a loaded machine); a super-linear
# detector takes minutes on it. A bound far from both guards the complexity, not the speed.
BOUND_S = 1.0
HOSTILE = {
    "1,600 characters of '1 1 1'": "1 " * 800,
    "10 kB of '1 1 1'": "1 " * 5000,
    "10 kB of card-like groups": "4111 " * 2000,
    "10 kB of no-break spaces": "4\u00a0" * 5000,
    "10 kB of full-width digits": "４ " * 5000,
    "10 kB of ' - ' gaps": "1 - " * 2500,
    "10 kB of digits and dots": "1.2" * 3400,
}


def fastest(work, runs: int = 3) -> float:
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - started)
    return best


@pytest.mark.parametrize("text", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_input_masks_in_milliseconds(text):
    assert fastest(lambda: mask_card_data(text)) < BOUND_S


@pytest.mark.parametrize("text", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_input_through_the_inbound_decision_costs_milliseconds(text):
    message = parse_inbound(inbound_form("+525512345678", text), "MX")
    assert fastest(lambda: decide(message, ConversationState(), load_config())) < BOUND_S


@pytest.mark.parametrize("text", HOSTILE.values(), ids=HOSTILE.keys())
def test_looking_for_the_second_half_of_a_split_card_stays_linear(text):
    # New with the split-card detection (not on main): the previous message's digits are joined
    # to this one's first 19 only, so hostile input costs what it costs alone.
    assert fastest(lambda: mask_card_data(text, carried="4111 1111 1111")) < BOUND_S
    message = parse_inbound(inbound_form("+525512345678", text), "MX")
    state = ConversationState(card_tail="4111 1111")
    assert fastest(lambda: decide(message, state, load_config())) < BOUND_S


def test_the_tracker_stores_masking_of_a_long_session_stays_linear():
    # 70 turns of 1,600 hostile characters each: the whole session is re-read on each save.
    events = [UserUttered("1 " * 800) for _ in range(70)]
    assert fastest(lambda: masked_events(events, len(events) - 1), runs=1) < 70 * BOUND_S


# --- the webhook refuses from its headers alone ---------------------------------------------


@pytest.fixture
def webhook(tmp_path):
    """The Twilio channel's routes on a real loopback server, signatures required."""
    store = SqlStore(f"sqlite:///{tmp_path / 'bot.db'}")
    with store.connect() as conn:
        for tables in target_metadata():
            tables.create_all(conn)
    settings = Settings.from_env({"BOT_ENV": "development", "TWILIO_AUTH_TOKEN": "a" * 32})
    assert settings.twilio_validate_signature
    messages = MessagingStore(store, CLOCK)
    services = HandoffServices(
        HandoffStore(store, CLOCK), parse_config({}), Announcer(None), desk_enabled=False
    )
    channel = TwilioInput(
        settings, store=messages, handoff=services, clock=CLOCK, journal=InboundJournal(store, CLOCK),
        memory=InProcessMemory(), sender=MessageSender(settings, messages, OutboxTransport(), clock=CLOCK),
    )  # fmt: skip
    reached: list = []

    async def on_new_message(message) -> None:
        reached.append(message)

    app = Sanic(f"twilio{uuid.uuid4().hex}")
    app.blueprint(channel.blueprint(on_new_message), url_prefix="/webhooks/twilio")
    with serve(app) as port:
        yield port, reached
    store.dispose()


def status_without_sending_the_body(port: int, path: str, headers: dict[str, str]) -> tuple[int, float]:
    """Send only the request's headers (declaring 10 MB) and read the status line: an answer
    that comes at all was decided without the body, which was never sent."""
    head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    request = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {10 * 1024 * 1024}\r\n"
        f"{head}\r\n"
    )
    started = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
        connection.sendall(request.encode())
        answer = connection.recv(200).decode("latin-1")
    return int(answer.split(" ")[1]), time.perf_counter() - started


@pytest.mark.parametrize("path", ["/webhooks/twilio/webhook", "/webhooks/twilio/status"])
def test_no_signature_header_is_refused_with_403_before_the_body(webhook, path):
    port, reached = webhook
    status, took = status_without_sending_the_body(port, path, {})
    assert status == 403 and took < 1
    assert reached == []


def test_a_body_over_64_kib_is_refused_with_413_before_it_is_read(webhook):
    port, reached = webhook
    status, took = status_without_sending_the_body(
        port, "/webhooks/twilio/webhook", {"X-Twilio-Signature": "whatever"}
    )
    assert status == 413 and took < 1 and MAX_FORM_BYTES == 64 * 1024
    assert reached == []
