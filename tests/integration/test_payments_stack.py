"""Payments end to end through the trained model and the real stack: a customer checks the
balance, verifies with the code that arrives by SMS and gets a payment link; another reports a
payment and sends the receipt; card numbers typed in chat are nowhere in the tracker store."""

from __future__ import annotations

import re
import time

import pytest
import redis
import requests

from bot.adapters.sql import SqlCaseBook, SqlStore
from bot.payments import verify_payment_link
from bot.records import CaseKind
from tests.conftest import (
    ANDRES_CO,
    CAMILA_CL,
    CLOCK,
    JULIAN_AR,
    MARIANA_MX,
    PUBLIC_URL,
    ROSA_PE,
    STACK_PAYMENT_LINK_SECRET,
    STACK_REDIS_URL,
)
from tests.handoff_helpers import paused, release, wait_for_handoff
from tests.harness import is_response
from tests.stack_helpers import events_table, texts, write

pytestmark = pytest.mark.integration

CASE_ID = re.compile(r"GES-[2-9A-HJKMNP-Z]{8}")
CARDS = ["4111 1111 1111 1111", "5500-0000-0000-0004", "378282246310005"]


@pytest.fixture(autouse=True)
def fresh_conversations(stack):
    """Each test starts and ends its customers' conversations afresh, so a form one test leaves
    open never answers another test's message."""
    senders = (MARIANA_MX, ROSA_PE, ANDRES_CO, CAMILA_CL, JULIAN_AR)
    # Code limits and locks live in the stack's Redis, which outlives a test session.
    shared = redis.Redis.from_url(STACK_REDIS_URL)
    stale = list(shared.scan_iter("autoservicio:otp:*"))
    if stale:
        shared.delete(*stale)
    shared.close()
    for sender in senders:
        release(stack, sender)  # a handoff left open would keep the conversation paused
        stack.say(sender, "/restart", command=True)
    yield
    for sender in senders:
        release(stack, sender)
        stack.say(sender, "/restart", command=True)


def holds_number(text: str, number: str) -> bool:
    """Whether `number` appears in `text` as a number of its own: a code "664020" is not in the
    confidence 0.0035066402051597834 of an NLU ranking stored beside it."""
    return re.search(rf"(?<!\d){re.escape(number)}(?!\d)", text) is not None


def code_sent_to(fake_twilio, phone: str, after: int) -> str:
    messages = fake_twilio.wait_for(phone, after + 1)
    sms = messages[after]
    assert sms.from_ == "+15005550006"  # an SMS to the number on file
    return re.search(r"\b(\d{6})\b", sms.body).group(1)


def test_balance_then_code_then_payment_link_without_a_second_code(stack, fake_twilio):
    before = len(fake_twilio.messages_to(MARIANA_MX))
    asked = texts(stack.say(MARIANA_MX, "hola cuanto debo?"))
    assert is_response(asked, "utter_otp_sent"), asked
    code = code_sent_to(fake_twilio, MARIANA_MX, before)
    assert code not in asked

    balance = texts(stack.say(MARIANA_MX, code))
    assert is_response(balance, "utter_otp_verified")
    assert is_response(balance, "utter_balance_overdue"), balance
    assert "F-2002: $899.00" in balance and "vencida" in balance and "$2,133.50" in balance

    links = texts(stack.say(MARIANA_MX, "ok pasame el link para pagar"))
    assert is_response(links, "utter_payment_link"), links
    urls = re.findall(r"https://pagos\.example\.com/pagar/\S+", links)
    assert [verify_payment_link(url, STACK_PAYMENT_LINK_SECRET, CLOCK.now()).invoice_id for url in urls] == [
        "F-2002",
        "F-2001",
    ]
    assert len(fake_twilio.messages_to(MARIANA_MX)) == before + 1  # no second code

    assert not holds_number(events_table(stack), code)  # the answer was stored masked


def test_a_wrong_code_is_refused_and_the_customer_can_leave(stack, fake_twilio):
    before = len(fake_twilio.messages_to(ROSA_PE))
    assert is_response(texts(stack.say(ROSA_PE, "me mandas mis facturas?")), "utter_otp_sent")
    code = code_sent_to(fake_twilio, ROSA_PE, before)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    assert is_response(texts(stack.say(ROSA_PE, wrong)), "utter_otp_wrong")
    assert is_response(texts(stack.say(ROSA_PE, "cancelar")), "utter_flow_left")
    assert is_response(texts(stack.say(ROSA_PE, "donde esta mi pedido")), "utter_no_open_orders")
    assert not holds_number(events_table(stack), wrong)


def test_an_invoice_above_the_threshold_hands_the_verified_customer_to_a_person(stack, fake_twilio):
    before = len(fake_twilio.messages_to(JULIAN_AR))
    assert is_response(texts(stack.say(JULIAN_AR, "mandame el link de pago porfa")), "utter_otp_sent")
    code = code_sent_to(fake_twilio, JULIAN_AR, before)

    reply = texts(stack.say(JULIAN_AR, code))
    assert is_response(reply, "utter_payment_link") and "F-2003" in reply  # the small one: a link
    assert is_response(reply, "utter_payment_with_person") and "F-2004" in reply
    assert is_response(reply, "utter_handoff_waiting") or is_response(reply, "utter_handoff_after_hours")
    assert not CASE_ID.search(reply)  # a person in this chat, not a case

    handoff = wait_for_handoff(stack, JULIAN_AR)
    assert handoff.reason == "amount_over_threshold"
    assert handoff.packet["reason"]["detail"].startswith("F-2004: ")
    customer = handoff.packet["customer"]
    assert (customer["id"], customer["verified"], customer["verification_method"]) == (
        "C-002",
        True,
        "sms_code",
    )
    assert handoff.packet["intent"]["current"] == "make_payment"
    assert paused(stack, JULIAN_AR)
    assert not holds_number(str(handoff.packet), code)


def test_a_disputed_charge_goes_to_a_person_with_what_was_said(stack):
    reply = texts(stack.say(MARIANA_MX, "ya pague y me cobraron dos veces"))
    assert is_response(reply, "utter_payment_dispute_person"), reply
    handoff = wait_for_handoff(stack, MARIANA_MX)
    assert (handoff.reason, handoff.packet["reason"]["detail"]) == (
        "dispute",
        "ya pague y me cobraron dos veces",
    )


def test_ya_pague_not_found_then_the_receipt_opens_a_case(stack, fake_twilio):
    fake_twilio.reset()
    write(stack, fake_twilio, ANDRES_CO, "pague ayer y me sigue apareciendo")
    reply = fake_twilio.wait_for(ANDRES_CO, 1)[0].body
    assert is_response(reply, "utter_payment_not_found"), reply
    media = "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1"
    write(
        stack, fake_twilio, ANDRES_CO, "", NumMedia="1", MediaUrl0=media, MediaContentType0="application/pdf"
    )
    reply = fake_twilio.wait_for(ANDRES_CO, 2)[1].body
    assert is_response(reply, "utter_receipt_received"), reply
    case = SqlCaseBook(SqlStore(stack.database_url)).case(CASE_ID.search(reply).group())
    assert case.kind is CaseKind.PAYMENT_RECEIPT
    assert (case.details["media_url"], case.details["content_type"]) == (media, "application/pdf")


def test_card_numbers_typed_in_chat_are_refused_and_never_stored(stack, fake_twilio):
    fake_twilio.reset()
    reply = texts(stack.say(ROSA_PE, f"mi tarjeta es {CARDS[0]} vence 12/27"))
    assert is_response(reply, "utter_card_data_refused")
    assert is_response(texts(stack.say(ROSA_PE, "cvv 987")), "utter_card_data_refused")
    write(stack, fake_twilio, CAMILA_CL, f"te paso la tarjeta {CARDS[1]} cvv 321 cobrame")
    assert is_response(fake_twilio.wait_for(CAMILA_CL, 1)[0].body, "utter_card_data_refused")
    write(stack, fake_twilio, CAMILA_CL, f"o esta otra {CARDS[2]}", channel="sms")
    assert is_response(fake_twilio.wait_for(CAMILA_CL, 2)[1].body, "utter_card_data_refused")
    time.sleep(1)  # Rasa saves the turn right after the reply

    stored = events_table(stack)
    log = stack.log.read_text()
    for card in CARDS:
        for form in (card, card.replace(" ", "").replace("-", "")):
            assert form not in stored and form not in log
    assert "cvv 987" not in stored and "cvv 321" not in stored


def test_cancelar_on_whatsapp_inside_the_code_question_leaves_it_without_opting_out(stack, fake_twilio):
    from bot.messaging.store import MessagingStore

    fake_twilio.reset()
    write(stack, fake_twilio, ROSA_PE, "me mandas mis facturas?")
    first = fake_twilio.wait_for(ROSA_PE, 2)  # the code by SMS and the question on WhatsApp
    assert {message.from_ for message in first} == {"+15005550006", "whatsapp:+14155238886"}
    write(stack, fake_twilio, ROSA_PE, "cancelar")
    reply = fake_twilio.wait_for(ROSA_PE, 3)[2].body
    assert is_response(reply, "utter_flow_left"), reply
    contact = MessagingStore(SqlStore(stack.database_url), CLOCK).contact(ROSA_PE)
    assert not contact.opted_out


def test_an_invoice_asked_by_month_on_whatsapp_arrives_as_a_pdf_the_rasa_server_serves(stack, fake_twilio):
    before = len(fake_twilio.messages_to(MARIANA_MX))
    write(stack, fake_twilio, MARIANA_MX, "mandame la factura de noviembre porfa")
    fake_twilio.wait_for(MARIANA_MX, before + 2)  # the code by SMS and the reply saying so
    [sms] = [m for m in fake_twilio.messages_to(MARIANA_MX)[before:] if m.from_ == "+15005550006"]
    code = re.search(r"\b(\d{6})\b", sms.body).group(1)
    write(stack, fake_twilio, MARIANA_MX, code)
    deadline = time.monotonic() + 60
    documents: list = []
    while time.monotonic() < deadline and len(documents) < 2:
        documents = [m for m in fake_twilio.messages_to(MARIANA_MX)[before:] if m.media_urls]
        time.sleep(0.2)
    assert len(documents) == 2, [m.body for m in fake_twilio.messages_to(MARIANA_MX)[before:]]
    assert all(m.to == "whatsapp:+525512345678" for m in documents)
    url = documents[0].media_urls[0]
    assert url.startswith(f"{PUBLIC_URL}/webhooks/twilio/media/") and url.endswith("/factura-F-2001.pdf")
    # Twilio reaches PUBLIC_URL; here that is the stack's Rasa server itself.
    fetched = requests.get(stack.base + url[len(PUBLIC_URL) :], timeout=10)
    assert fetched.status_code == 200 and fetched.headers["Content-Type"] == "application/pdf"
    assert fetched.content.startswith(b"%PDF-") and b"/Title (Factura F-2001)" in fetched.content
    # The same path with one character of its signature changed is refused.
    forged = url[: -len("/factura-F-2001.pdf")]
    forged = forged[:-1] + ("A" if forged[-1] != "A" else "B")
    assert requests.get(stack.base + forged[len(PUBLIC_URL) :], timeout=10).status_code == 403
