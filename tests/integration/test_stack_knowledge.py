"""Questions answered from the knowledge base end to end: the trained model reads the customer's
text, action_kb_answer searches the real articles, the channels show the answer (REST: WhatsApp's
rendering; Twilio: WhatsApp or SMS through the fake Twilio). Each test writes from a number of its
own, so the country comes from the phone and no other test's conversation is in the way.
"""

from __future__ import annotations

import itertools
import re

import pytest

from bot.kb import KnowledgeBase
from bot.settings import DEFAULT_KB_DIR
from tests.harness import is_response
from tests.stack_helpers import texts, write

pytestmark = pytest.mark.integration

KB = KnowledgeBase.load(DEFAULT_KB_DIR)
CASE_ID = re.compile(r"GES-[2-9A-HJKMNP-Z]{8}")
_numbers = itertools.count(1)


def on_rest(article_id: str, country: str) -> str:
    """The article as the REST channel returns it: Rasa splits a text at blank lines into
    messages, which `texts` joins with one newline (Twilio sends it whole)."""
    return KB.resolve(article_id, country=country).render("whatsapp").replace("\n\n", "\n")


def mexican() -> str:
    return f"+52553{next(_numbers):07d}"


def peruvian() -> str:
    return f"+51955{next(_numbers):06d}"


@pytest.fixture
def twilio(stack, fake_twilio):
    fake_twilio.reset()
    return fake_twilio


def test_a_known_question_on_whatsapp_gets_the_steps_and_on_sms_the_short_answer_and_link(stack, twilio):
    question = "¿Qué medios de pago aceptan?"
    on_whatsapp, on_sms = mexican(), mexican()
    write(stack, twilio, on_whatsapp, question, channel="whatsapp")
    write(stack, twilio, on_sms, question, channel="sms")
    [whatsapp] = twilio.wait_for(on_whatsapp)
    [sms] = twilio.wait_for(on_sms)
    assert KB.resolve("medios-de-pago", country="MX", channel="whatsapp").render("whatsapp") in whatsapp.body
    article = KB.resolve("medios-de-pago", country="MX", channel="sms")
    assert article.render("sms") in sms.body and "\n1. " not in sms.body
    assert sms.to == on_sms and whatsapp.to == f"whatsapp:{on_whatsapp}"


def test_payment_methods_asked_from_a_peruvian_and_a_mexican_number(stack):
    question = "que formas de pago tienen?"
    peru = texts(stack.say(peruvian(), question))
    mexico = texts(stack.say(mexican(), question))
    assert on_rest("medios-de-pago", "PE") in peru
    assert on_rest("medios-de-pago", "MX") in mexico
    assert "Yape" in peru and "Yape" not in mexico
    assert "OXXO" in mexico and "OXXO" not in peru


def test_an_article_tied_to_a_flow_offers_it_and_yes_starts_it(stack):
    customer = mexican()
    offer = stack.say(customer, "cuantos dias tengo para devolver algo?")
    assert on_rest("cambios-y-devoluciones", "MX") in texts(offer)
    assert is_response(texts(offer), "utter_kb_offer_flow")
    assert [button["payload"] for message in offer for button in message.get("buttons", [])] == [
        "/return_request",
        "/deny",
    ]
    started = texts(stack.say(customer, "si"))
    assert is_response(started, "utter_return_case") and CASE_ID.search(started)


def test_an_article_tied_to_a_flow_offers_it_and_no_ends_politely(stack):
    customer = mexican()
    offer = texts(stack.say(customer, "cuantos dias tengo para devolver algo?"))
    assert is_response(offer, "utter_kb_offer_flow")
    declined = texts(stack.say(customer, "no"))
    assert is_response(declined, "utter_kb_flow_declined")
    assert not CASE_ID.search(declined)


def test_on_sms_not_sure_numbers_three_titles_and_the_number_answers_that_one(stack, twilio):
    customer = mexican()
    question = "consulta sobre envios"  # a frequent question, not sure which article
    result = KB.search(question, country="MX", channel="sms")
    assert result.verdict == "options"
    hits = result.hits
    write(stack, twilio, customer, question, channel="sms")
    [options] = twilio.wait_for(customer)
    for number, hit in enumerate(hits[:3], start=1):
        assert f"\n{number}. {hit.article.title}" in options.body
    write(stack, twilio, customer, "2", channel="sms")
    answer = twilio.wait_for(customer, 2)[1]
    assert KB.resolve(hits[1].article.id, country="MX", channel="sms").render("sms") in answer.body


def test_on_rest_not_sure_offers_titles_and_a_number_answers_that_one(stack):
    customer = mexican()
    question = "consulta sobre envios"  # a frequent question, not sure which article
    result = KB.search(question, country="MX", channel="whatsapp")
    assert result.verdict == "options"
    hits = result.hits
    options = stack.say(customer, question)
    assert is_response(texts(options), "utter_kb_options")
    titles = [button["title"] for message in options for button in message.get("buttons", [])]
    assert titles == [hit.article.title for hit in hits[:3]]
    answer = texts(stack.say(customer, "la 3"))
    assert on_rest(hits[2].article.id, "MX") in answer


def test_nothing_fits_offers_a_person_and_yes_hands_over(stack):
    customer, question = mexican(), "¿venden repuestos para bicicletas?"
    assert KB.search(question, country="MX", channel="whatsapp").verdict == "none"
    offer = texts(stack.say(customer, question))
    assert is_response(offer, "utter_kb_none")
    handed = texts(stack.say(customer, "si"))
    assert is_response(handed, "utter_handoff_waiting") or is_response(handed, "utter_handoff_after_hours")


def test_a_question_beyond_the_old_faq_topics_gets_its_article(stack):
    reply = texts(stack.say("+5491155550001", "el envio a tierra del fuego cuesta lo mismo?"))
    assert on_rest("envio-a-zonas-alejadas", "AR") in reply


def test_out_of_scope_gets_an_article_only_when_it_is_sure(stack):
    # NLU reads both as out_of_scope; the knowledge base is sure of the first only.
    assert KB.search("cuando es el hot sale?", country="MX").verdict == "answer"
    assert KB.search("me recomiendas una peli para ver hoy?", country="MX").verdict != "answer"
    sure = texts(stack.say(mexican(), "cuando es el hot sale?"))
    assert on_rest("promociones-vigentes", "MX") in sure
    unsure = texts(stack.say(mexican(), "me recomiendas una peli para ver hoy?"))
    assert is_response(unsure, "utter_out_of_scope") and is_response(unsure, "utter_menu")
