"""Card data typed to a person: while a handoff is active the Twilio channel routes messages to the
agent before the bot's card screening, so the routing screens them itself. The card number and a
security code that follows it are masked in the handoff messages, and the customer gets the same
advice the bot gives. Runs the channel's handling on SQLite and PostgreSQL with the local outbox.
"""

from __future__ import annotations

import asyncio

import pytest

from bot.handoff.announce import Announcer
from bot.handoff.config import parse_config
from bot.handoff.service import HandoffServices
from bot.handoff.store import HandoffStore, new_handoff_id
from bot.masking import CARD_MASK, CVV_MASK
from bot.messaging.inbound import parse_inbound
from bot.messaging.sender import MessageSender, OutboxTransport
from bot.messaging.store import MessagingStore
from connectors.twilio_channel import TwilioInput
from tests.conftest import CLOCK, MARIANA_MX
from tests.fake_twilio import inbound_form
from tests.harness import is_response

CARD = "4111 1111 1111 1111"


@pytest.fixture
def channel(store, settings):
    handoffs = HandoffStore(store, CLOCK)
    services = HandoffServices(handoffs, parse_config({}), Announcer(None), desk_enabled=False)
    messages = MessagingStore(store, CLOCK)
    sender = MessageSender(settings, messages, OutboxTransport(), clock=CLOCK)
    yield TwilioInput(settings, store=messages, sender=sender, handoff=services, clock=CLOCK)
    handoffs.drop_schema()


def open_handoff(channel: TwilioInput, status: str = "waiting") -> str:
    store = channel.handoff.store
    handoff = store.create(
        handoff_id=new_handoff_id(),
        conversation_id=MARIANA_MX,
        phone=MARIANA_MX,
        channel="whatsapp",
        reason="customer_request",
        customer_name="Mariana López",
        packet={"requested_slot": None},
        resume_form=None,
    )
    if status == "open":
        store.accept(handoff.id, "ana")
    return handoff.id


def customer_writes(channel: TwilioInput, text: str) -> list[str]:
    """Handle one WhatsApp message as the webhook does; returns what reached the bot (nothing)."""
    reached_the_bot: list[str] = []

    async def on_new_message(message) -> None:
        reached_the_bot.append(message.text)

    message = parse_inbound(inbound_form(MARIANA_MX, text), "MX")
    asyncio.run(channel.handle(message, "whatsapp:+14155238886", on_new_message))
    return reached_the_bot


def sent_to_customer(channel: TwilioInput) -> list[str]:
    return [record.body or "" for record in channel.store.outbound(MARIANA_MX)]


@pytest.mark.parametrize("status", ["waiting", "open"])
def test_a_card_number_typed_to_an_agent_is_masked_and_the_customer_is_advised(channel, status):
    handoff_id = open_handoff(channel, status)
    assert customer_writes(channel, f"te paso mi tarjeta {CARD} para que me cobres") == []
    said = channel.handoff.store.messages(handoff_id)
    assert [m.sender for m in said] == ["customer", "bot"]
    assert said[0].text == f"te paso mi tarjeta {CARD_MASK} para que me cobres"
    assert is_response(said[1].text, "utter_card_data_refused")
    assert is_response(sent_to_customer(channel)[-1], "utter_card_data_refused")


def test_a_security_code_sent_right_after_the_card_is_masked_too(channel):
    handoff_id = open_handoff(channel, "open")
    customer_writes(channel, CARD.replace(" ", "-"))
    customer_writes(channel, "123")
    texts = [m.text for m in channel.handoff.store.messages(handoff_id) if m.sender == "customer"]
    assert texts == [CARD_MASK, CVV_MASK]
    stored = " ".join(m.text for m in channel.handoff.store.messages(handoff_id))
    assert "4111" not in stored and "123" not in stored
    assert (
        len([body for body in sent_to_customer(channel) if is_response(body, "utter_card_data_refused")]) == 2
    )


def test_ordinary_messages_to_an_agent_pass_unchanged_and_get_no_advice(channel):
    handoff_id = open_handoff(channel, "open")
    customer_writes(channel, "mi pedido es el PED-1001 y mi cel 5512345678")
    customer_writes(channel, "123")  # no card before it: a number like any other
    said = channel.handoff.store.messages(handoff_id)
    assert [(m.sender, m.text) for m in said] == [
        ("customer", "mi pedido es el PED-1001 y mi cel 5512345678"),
        ("customer", "123"),
    ]
    assert sent_to_customer(channel) == []
