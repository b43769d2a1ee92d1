"""Held messages on the real stack: Rasa's Twilio channel delivers what the 24-hour window held
back when the customer writes, before the bot's answer, once. The stack runs with the shipped
templates approved at the fake Twilio (tests/conftest.py's stack_env)."""

from __future__ import annotations

import time
import uuid

import pytest

from bot.adapters.sql import SqlStore
from bot.messaging.inbound import Channel
from bot.messaging.store import MessagingStore
from tests.conftest import CLOCK
from tests.stack_helpers import write

pytestmark = pytest.mark.integration


def test_what_was_held_is_delivered_before_the_bots_answer_and_only_once(stack, fake_twilio):
    fake_twilio.reset()
    phone = "+569" + str(uuid.uuid4().int)[:8]  # a Chilean mobile no other test writes from
    messaging = MessagingStore(SqlStore(stack.database_url), CLOCK)
    # What the outbox worker left a day after her last message (test_held_messages.py makes it so).
    text = "✅ Listo: tu solicitud GES-7F3K2Q9M ya quedó registrada en nuestro sistema."
    held_id = messaging.hold(phone, Channel.WHATSAPP, "outbox", text, [], [])

    first = write(stack, fake_twilio, phone, "hola")
    delivered, answer = fake_twilio.wait_for(phone, 2)
    assert (delivered.body, delivered.content_sid) == (text, None)
    assert answer.body != text  # the bot's greeting, after it
    [row] = messaging.held(phone, status=None)
    assert (row.id, row.status, row.delivered_after) == (held_id, "delivered", first)

    write(stack, fake_twilio, phone, "gracias")
    fake_twilio.wait_for(phone, 3)
    time.sleep(2)  # a second delivery would have arrived by now
    assert [m.body for m in fake_twilio.messages_to(phone)].count(text) == 1
