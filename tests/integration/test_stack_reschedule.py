"""End to end: rescheduling a delivery through the trained model, the action server and the demo ERP.

The conversations go through the REST channel of the shared stack (tests/conftest.py), with the
demo data anchored on the real today, as `make run` serves it.
"""

from __future__ import annotations

import re

import pytest

from bot.kb import KnowledgeBase
from bot.settings import DEFAULT_KB_DIR
from tests.conftest import CLOCK, MARIANA_MX
from tests.harness import is_response

pytestmark = pytest.mark.integration

CASE_ID = re.compile(r"GES-[2-9A-HJKMNP-Z]{8}")
LUCIA_MX = "+523312345678"


def texts(messages: list[dict]) -> str:
    return "\n".join(message.get("text", "") for message in messages)


def buttons(messages: list[dict]) -> list[dict]:
    return [button for message in messages for button in message.get("buttons", [])]


def test_a_demo_customer_reschedules_in_three_messages_and_the_status_shows_the_new_window(stack):
    offer = stack.say(LUCIA_MX, "quiero cambiar la entrega")  # message 1
    assert "Paso 2 de 3" in texts(offer) and "PED-1010" in texts(offer)
    titles = [button["title"] for button in buttons(offer)]
    assert len(titles) == 3 and all(len(title) <= 20 for title in titles)

    question = stack.say(LUCIA_MX, "2")  # message 2
    assert is_response(texts(question), "utter_ask_reschedule_confirmed")
    assert "Paso 3 de 3" in texts(question)

    done = texts(stack.say(LUCIA_MX, "si"))  # message 3
    assert is_response(done, "utter_reschedule_done")
    assert CASE_ID.search(done)
    new_window = re.search(r"llega (.+?)\. ", done).group(1)

    status = texts(stack.say(LUCIA_MX, "y donde esta mi pedido?"))
    assert is_response(status, "utter_order_created")
    assert new_window in status


def test_a_question_in_the_middle_is_answered_and_cancelar_leaves_without_changes(stack):
    before = texts(stack.say(MARIANA_MX, "donde esta mi pedido"))
    offer = texts(stack.say(MARIANA_MX, "no voy a estar, quiero reprogramar la entrega"))
    assert "Paso 2 de 3" in offer

    resumed = texts(stack.say(MARIANA_MX, "a que hora abren el sabado?"))
    hours = KnowledgeBase.load(DEFAULT_KB_DIR).resolve("horarios-de-atencion", country="MX")
    assert hours.render("whatsapp").replace("\n\n", "\n") in resumed  # from the knowledge base
    assert "Paso 2 de 3" in resumed  # the form asks its step again

    left = texts(stack.say(MARIANA_MX, "cancelar"))
    assert is_response(left, "utter_reschedule_cancelled")
    after = texts(stack.say(MARIANA_MX, "donde esta mi pedido"))
    eta = re.compile(r"Llega (.+?)\. ")
    assert eta.search(after).group(1) == eta.search(before).group(1)


def test_an_order_out_for_delivery_is_explained_with_an_offer_of_a_person(stack):
    sender = "+5491123456789"  # Julián: three open orders, the first one out for delivery
    choose = stack.say(sender, "necesito cambiar el dia de entrega")
    assert "Paso 1 de 3" in texts(choose) and len(buttons(choose)) == 3
    reply = texts(stack.say(sender, "1"))
    assert is_response(reply, "utter_reschedule_blocked_out_for_delivery") and "asesor" in reply


def test_on_whatsapp_a_number_picks_a_window_and_cancelar_inside_the_form_is_not_an_opt_out(
    stack, fake_twilio
):
    from bot.adapters.sql import SqlStore
    from bot.messaging.store import MessagingStore
    from tests.stack_helpers import write

    fake_twilio.reset()
    phone = "+573105551234"  # Andrés, CO: in transit, no delivery day yet
    write(stack, fake_twilio, phone, "me pueden traer el pedido otro dia? necesito reprogramar")
    [offer] = fake_twilio.wait_for(phone, 1)
    assert "Paso 2 de 3" in offer.body and "\n1. " in offer.body and "\n3. " in offer.body

    write(stack, fake_twilio, phone, "la segunda")  # the channel turns it into the button's payload
    question = fake_twilio.wait_for(phone, 2)[1]
    assert is_response(question.body, "utter_ask_reschedule_confirmed")
    chosen = offer.body.split("\n2. ")[1].split("\n")[0]
    assert chosen.split(",")[0].lower().split()[1] in question.body  # the same day number

    write(stack, fake_twilio, phone, "cancelar")
    left = fake_twilio.wait_for(phone, 3)[2]
    assert is_response(left.body, "utter_reschedule_cancelled")
    assert not MessagingStore(SqlStore(stack.database_url), CLOCK).contact(phone).opted_out
