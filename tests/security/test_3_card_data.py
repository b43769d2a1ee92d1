"""Finding 3: card numbers slipped through masking. "4111.1111.1111.1111" and the forms with a
newline, a tab, a no-break space, two spaces or " - " between groups were left unmasked; a
number split over two messages was never caught; a lone CVV after a card was stored in clear
when another process handled it (the card memory was per process); an agent's reply with a card
number was stored unmasked in outbound_messages.

Every form here goes through the real doors: the inbound decision (`decide`, `screen_for_bot`),
the Twilio channel's handling, the tracker store (connectors/stores.py), the sender into
outbound_messages and the handoff store. The forms of one message, the shared Redis memory and
outbound masking were fixed on main by the previous session: those tests pass there and guard
against a regression. The split across two messages was still open on main: those tests fail
there (no `card_tail`, no carried digits, the second half reaches Rasa as text), as does the
handoff store's own masking (on main only its callers masked).
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import uuid
from pathlib import Path

import phonenumbers
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import UserUttered
from rasa.shared.core.trackers import DialogueStateTracker

from bot.handoff.announce import Announcer
from bot.handoff.config import load_config, parse_config
from bot.handoff.service import HandoffServices
from bot.handoff.store import HandoffStore, new_handoff_id
from bot.masking import CARD_MASK, CVV_MASK, luhn_valid
from bot.messaging.inbound import Channel, parse_inbound
from bot.messaging.inbound_rules import ConversationState, HandoffState, Route, decide, screen_for_bot
from bot.messaging.journal import InboundJournal
from bot.messaging.memory import InProcessMemory, RedisMemory
from bot.messaging.sender import MessageSender, OutboundMessage, OutboxTransport
from bot.messaging.store import MessagingStore
from bot.settings import Settings
from connectors.stores import SettingsTrackerStore
from connectors.twilio_channel import TwilioInput
from tests.conftest import CLOCK, REDIS_URL
from tests.fake_twilio import inbound_form

PHONE = "+525512345678"
CONFIG = load_config()
FORMS = {
    "dots": "4111.1111.1111.1111",
    "newline": "4111\n1111\n1111\n1111",
    "tab": "4111\t1111\t1111\t1111",
    "no-break space": "4111\u00a01111\u00a01111\u00a01111",
    "two spaces": "4111  1111  1111  1111",
    "spaced dash": "4111 - 1111 - 1111 - 1111",
    "full-width digits": "４１１１ １１１１ １１１１ １１１１",
}


def no_digits(text: str) -> bool:
    return not any(char.isdecimal() for char in text)


IDLE = ConversationState()


def decide_on(text: str, state: ConversationState = IDLE):
    return decide(parse_inbound(inbound_form(PHONE, text), "MX"), state, CONFIG)


# --- one message: the inbound decision ------------------------------------------------------


@pytest.mark.parametrize("form", FORMS.values(), ids=FORMS.keys())
def test_each_form_reaches_rasa_only_as_the_card_data_intent(form):
    decision = decide_on(f"mi tarjeta es {form} gracias")
    assert (decision.route, decision.text, decision.held_card_data) == (Route.TO_BOT, "/card_data", True)
    assert screen_for_bot(InProcessMemory(), PHONE, f"mi tarjeta es {form}") == "/card_data"


@pytest.mark.parametrize("form", FORMS.values(), ids=FORMS.keys())
def test_each_form_typed_to_an_agent_is_masked(form):
    decision = decide_on(f"mi tarjeta es {form}", ConversationState(handoff=HandoffState("open")))
    assert decision.route is Route.TO_AGENT and decision.text == f"mi tarjeta es {CARD_MASK}"


# --- one message: the tracker store -----------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def tracker_store(request, tmp_path, pg_url):
    url = f"sqlite:///{tmp_path / 'bot.db'}" if request.param == "sqlite" else pg_url
    store = SettingsTrackerStore(domain=Domain.empty(), settings=Settings.from_env({"DATABASE_URL": url}))
    yield store
    with store.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM events"))


def stored_texts(store: SettingsTrackerStore, sender: str) -> list[str]:
    with store.engine.begin() as conn:
        rows = conn.execute(
            sa.text("SELECT data FROM events WHERE sender_id = :sender AND type_name = 'user' ORDER BY id"),
            {"sender": sender},
        )
        return [json.loads(row[0])["text"] for row in rows]


def save(store: SettingsTrackerStore, sender: str, *events) -> None:
    tracker = asyncio.run(store.retrieve(sender)) or DialogueStateTracker(sender, [])
    for event in events:
        tracker.update(event)
    asyncio.run(store.save(tracker))


@pytest.mark.parametrize("form", FORMS.values(), ids=FORMS.keys())
def test_each_form_that_reaches_rasa_another_way_is_stored_masked(tracker_store, form):
    sender = f"+52155{uuid.uuid4().int % 10**8:08d}"
    save(tracker_store, sender, UserUttered(f"cobrame con la {form}"), UserUttered("123"))
    assert stored_texts(tracker_store, sender) == [f"cobrame con la {CARD_MASK}", CVV_MASK]


# --- the Twilio channel's handling (split cards, a CVV on another replica) -------------------


def channel_over(store, settings, memory) -> TwilioInput:
    handoffs = HandoffStore(store, CLOCK)
    services = HandoffServices(handoffs, parse_config({}), Announcer(None), desk_enabled=False)
    messages = MessagingStore(store, CLOCK)
    sender = MessageSender(settings, messages, OutboxTransport(), clock=CLOCK)
    return TwilioInput(
        settings, store=messages, sender=sender, handoff=services, clock=CLOCK, memory=memory,
        journal=InboundJournal(store, CLOCK),
    )  # fmt: skip


def write(channel: TwilioInput, phone: str, text: str) -> UserUttered:
    """Handle one WhatsApp message as the webhook does; returns what Rasa would store for it."""
    reached: list = []

    async def on_new_message(message) -> None:
        reached.append(message)

    asyncio.run(
        channel.handle(parse_inbound(inbound_form(phone, text), "MX"), f"whatsapp:{phone}", on_new_message)
    )
    [message] = reached
    return UserUttered(message.text, metadata=message.metadata)


def test_a_card_split_across_two_messages_is_card_data_and_stored_masked_in_both(store, settings):
    # The store's rewrite of a stored row on PostgreSQL too: tests/integration/test_secret_masking.py.
    tracker_store = sqlite_tracker_store()
    channel = channel_over(store, settings, InProcessMemory())
    phone = f"+52155{uuid.uuid4().int % 10**8:08d}"
    first = write(channel, phone, "mi tarjeta es 4111 1111")
    assert first.text == "mi tarjeta es 4111 1111"  # alone, the start of a card is not one yet
    save(tracker_store, phone, first)
    second = write(channel, phone, "1111 1111")
    assert second.text == "/card_data"  # the same path as a whole card number
    save(tracker_store, phone, second)
    assert stored_texts(tracker_store, phone) == [f"mi tarjeta es {CARD_MASK}", "/card_data"]
    assert write(channel, phone, "123").text == "/card_data"  # its CVV, as after a whole card
    channel.handoff.store.drop_schema()


def test_a_split_card_typed_to_an_agent_has_its_second_half_masked(store, settings):
    channel = channel_over(store, settings, InProcessMemory())
    handoff = channel.handoff.store.create(
        handoff_id=new_handoff_id(), conversation_id=PHONE, phone=PHONE, channel="whatsapp",
        reason="customer_request", customer_name="Mariana", packet={}, resume_form=None,
    )  # fmt: skip
    channel.handoff.store.accept(handoff.id, "ana")
    reached: list = []

    async def on_new_message(message) -> None:
        reached.append(message)

    for text in ("4111 1111", "1111 1111"):
        message = parse_inbound(inbound_form(PHONE, text), "MX")
        asyncio.run(channel.handle(message, f"whatsapp:{PHONE}", on_new_message))
    said = [m.text for m in channel.handoff.store.messages(handoff.id) if m.sender == "customer"]
    # The first half was shown to the agent as it came (nothing said it was a card yet); the
    # second is masked, and the customer is advised as after a whole card.
    assert said == ["4111 1111", CARD_MASK] and reached == []
    channel.handoff.store.drop_schema()


def test_a_cvv_after_a_card_is_caught_by_another_replica_through_redis(store, settings, redis_client):
    one = channel_over(store, settings, RedisMemory(REDIS_URL))
    other = channel_over(store, settings, RedisMemory(REDIS_URL))
    phone = "+525533334444"
    assert write(one, phone, "4111 1111 1111 1111").text == "/card_data"
    assert write(other, phone, "123").text == "/card_data"
    one.handoff.store.drop_schema()


def test_a_split_card_is_caught_across_replicas_through_redis(store, settings, redis_client):
    one = channel_over(store, settings, RedisMemory(REDIS_URL))
    other = channel_over(store, settings, RedisMemory(REDIS_URL))
    phone = "+525533335555"
    assert write(one, phone, "4111 1111").text == "4111 1111"
    assert write(other, phone, "1111 1111").text == "/card_data"
    assert redis_client.ttl(f"inbound:tail:{phone}") == -2  # the tail is gone once used
    one.handoff.store.drop_schema()


# --- what agents write: outbound_messages and handoff_messages --------------------------------


def test_an_agents_reply_with_a_card_number_is_stored_masked(store, settings):
    messages = MessagingStore(store, CLOCK)
    sender = MessageSender(settings, messages, OutboxTransport(), clock=CLOCK)
    phone = "+525555556666"
    for form in FORMS.values():
        asyncio.run(sender.send(OutboundMessage(phone, Channel.SMS, body=f"¿es esta? {form}")))
    bodies = [record.body for record in messages.outbound(phone)]
    assert bodies == [f"¿es esta? {CARD_MASK}"] * len(FORMS)


def test_the_handoff_store_masks_what_it_stores_whoever_calls_it(store):
    # On main the callers masked (the console, the channel) but the store itself did not: a new
    # caller could store a card in handoff_messages. This fails there.
    phone = "+525555557777"
    handoffs = HandoffStore(store, CLOCK)
    handoff = handoffs.create(
        handoff_id=new_handoff_id(), conversation_id=phone, phone=phone, channel="sms",
        reason="customer_request", customer_name=None, packet={}, resume_form=None,
    )  # fmt: skip
    handoffs.add_message(handoff.id, "agent", "la 4111.1111.1111.1111 cvv 123", "ana")
    assert [m.text for m in handoffs.messages(handoff.id)] == [f"la {CARD_MASK} cvv {CVV_MASK}"]
    handoffs.drop_schema()


# --- properties ------------------------------------------------------------------------------

BRANDS = [
    ("4", (13, 16, 19)), ("51", (16,)), ("55", (16,)), ("2221", (16,)), ("34", (15,)), ("37", (15,)),
    ("36", (14,)), ("6011", (16, 19)), ("65", (16,)), ("3528", (16,)), ("62", (16, 19)),
]  # fmt: skip
SEPARATORS = [" ", "  ", "\t", "\n", "\u00a0", ".", "-", " - ", "/", ""]
FULL_WIDTH = str.maketrans("0123456789", "０１２３４５６７８９")


def is_phone(digits: str) -> bool:
    for text, region in (("+" + digits, None), (digits, "MX")):
        try:
            if phonenumbers.is_valid_number(phonenumbers.parse(text, region)):
                return True
        except phonenumbers.NumberParseException:
            pass
    return False


@st.composite
def cards(draw: st.DrawFn) -> str:
    prefix, lengths = draw(st.sampled_from(BRANDS))
    length = draw(st.sampled_from(lengths))
    body = prefix + draw(
        st.text("0123456789", min_size=length - len(prefix) - 1, max_size=length - len(prefix) - 1)
    )
    return next(body + digit for digit in "0123456789" if luhn_valid(body + digit))


@st.composite
def typed(draw: st.DrawFn, digits: str) -> str:
    out = []
    for index, digit in enumerate(digits):
        if index and draw(st.integers(0, 3)) == 0:
            out.append(draw(st.sampled_from(SEPARATORS)))
        out.append(digit)
    text = "".join(out)
    return text.translate(FULL_WIDTH) if draw(st.booleans()) else text


_STORE: list[SettingsTrackerStore] = []


def sqlite_tracker_store() -> SettingsTrackerStore:
    """One SQLite tracker store for every example (hypothesis runs many in one test)."""
    if not _STORE:
        path = Path(tempfile.mkdtemp()) / "bot.db"
        settings_ = Settings.from_env({"DATABASE_URL": f"sqlite:///{path}"})
        _STORE.append(SettingsTrackerStore(domain=Domain.empty(), settings=settings_))
    return _STORE[0]


def through_the_doors(first: str, second: str) -> tuple[list[str], list[str]]:
    """Two consecutive messages through the decision and the card memory, each then saved to
    the tracker store as Rasa does (one save per turn): what Rasa read, and what was stored."""
    memory, sender = InProcessMemory(), f"+52155{uuid.uuid4().int % 10**8:08d}"
    store, read = sqlite_tracker_store(), []
    for text in (first, second):
        card = memory.card_context(sender)
        decision = decide_on(text, ConversationState(after_card=card.after_card, card_tail=card.tail))
        memory.remember_card(sender, bool(decision.held_card_data), decision.card_tail)
        read.append(decision.text)
        save(store, sender, UserUttered(decision.text, metadata=decision.metadata))
    return read, stored_texts(store, sender)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), card=cards())
def test_property_a_card_split_at_any_point_is_card_data_and_nothing_of_it_is_stored(data, card):
    # At most 15 digits are carried (a longer first part ends in no card start to keep), and a
    # part that is a phone number on its own is deliberately not joined (a code after a phone).
    cut = data.draw(st.integers(1, min(len(card) - 1, 15)))
    assume(not is_phone(card[:cut]) and not is_phone(card[cut:]))
    first = "mi tarjeta " + data.draw(typed(card[:cut]))
    second = data.draw(typed(card[cut:])) + data.draw(st.sampled_from(["", " gracias", " cvv 123"]))
    read, stored = through_the_doors(first, second)
    assert read[1] == "/card_data"
    assert all(no_digits(text) for text in stored), stored


def digits(count: int) -> st.SearchStrategy[str]:
    return st.text("0123456789", min_size=count, max_size=count)


MX_MOBILES = st.builds(str.__add__, st.sampled_from(["55", "33", "81"]), digits(8)).filter(is_phone)
ORDER_IDS = st.integers(1000, 9999).map(lambda n: f"PED-{n}")
DATES = st.dates().map(lambda d: d.strftime("%d/%m/%Y"))
SPACED = MX_MOBILES.map(lambda p: f"mi cel es {p[:2]} {p[2:6]} {p[6:]}")
ORDINARY_PAIRS = st.one_of(
    st.tuples(ORDER_IDS, DATES),  # an order number, then a date
    st.tuples(MX_MOBILES, digits(6)),  # a phone, then a one-time code
    st.tuples(SPACED, digits(6)),
    st.tuples(digits(6), MX_MOBILES),  # a code, then a phone
    st.tuples(digits(4), ORDER_IDS),  # document digits, then an order
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pair=ORDINARY_PAIRS)
def test_property_ordinary_consecutive_messages_are_never_card_data(pair):
    read, stored = through_the_doors(*pair)
    assert read == list(pair) and stored == list(pair)
