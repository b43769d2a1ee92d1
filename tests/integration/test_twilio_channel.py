"""The Twilio channel end to end: webhooks signed as Twilio signs them, sent over real HTTP to
the running stack; replies observed where Twilio's Messages API would receive them (the fake)."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from bot.adapters.sql import SqlStore
from bot.messaging.store import MessagingStore
from tests.conftest import CLOCK, JULIAN_AR, MARIANA_MX, PUBLIC_URL, ROSA_PE
from tests.fake_twilio import inbound_form
from tests.harness import API_TOKEN, is_response
from tests.stack_helpers import STATUS, WEBHOOK, post, write

pytestmark = pytest.mark.integration


@pytest.fixture
def twilio(stack, fake_twilio):
    fake_twilio.reset()
    return fake_twilio


def outbound(stack, phone: str):
    return MessagingStore(SqlStore(stack.database_url), CLOCK).outbound(phone)


def record_of(stack, phone: str, sid: str, timeout_s: float = 10):
    """The outbound record Twilio's answer updated (the sid is stored once Twilio answers)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for record in outbound(stack, phone):
            if record.sid == sid:
                return record
        time.sleep(0.1)
    raise AssertionError(f"no outbound record with sid {sid}")


def tracker(stack, phone: str) -> dict:
    return requests.get(
        f"{stack.base}/conversations/{phone}/tracker", params={"token": API_TOKEN}, timeout=30
    ).json()


def user_turn(stack, phone: str, sid: str, timeout_s: float = 10) -> dict:
    """The user event of message `sid`, once Rasa has saved its turn (that is after the reply)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for event in tracker(stack, phone)["events"]:
            if event["event"] == "user" and event.get("message_id") == sid:
                return event
        time.sleep(0.1)
    raise AssertionError(f"no user turn for {sid} in {phone}'s tracker")


def quiet(fake, phone: str, seconds: float = 2.0) -> bool:
    """Nothing reached Twilio for `phone` during `seconds` (for what must not be sent)."""
    time.sleep(seconds)
    return fake.messages_to(phone) == []


def test_whatsapp_status_question_is_answered_through_the_messages_api(stack, twilio):
    # How fast Twilio gets its answer is measured by `make bench`, not asserted here.
    sid = write(stack, twilio, "+5215512345678", "¡Hola! ¿Dónde está mi pedido? 📦")
    [message] = twilio.wait_for(MARIANA_MX)
    assert message.to == "whatsapp:+5215512345678"  # the address the customer wrote from
    assert message.from_ == "whatsapp:+14155238886"
    assert "PED-1001" in message.body and "Estafeta" in message.body
    assert message.status_callback == f"{PUBLIC_URL}/webhooks/twilio/status"
    latest = user_turn(stack, MARIANA_MX, sid)
    assert latest["text"] == "¡Hola! ¿Dónde está mi pedido? 📦"  # "¡", accents, emoji intact
    assert latest["metadata"]["channel"] == "whatsapp" and latest["metadata"]["profile_name"] == "Cliente"
    assert latest["metadata"]["message_sid"] == sid


def test_sms_options_are_a_numbered_list_and_a_number_or_word_picks_one(stack, twilio):
    write(stack, twilio, JULIAN_AR, "y mis compras cuando llegan?", channel="sms")
    [question] = twilio.wait_for(JULIAN_AR)
    assert question.to == JULIAN_AR and question.from_ == "+15005550006"
    assert (
        "\n1. PED-1004" in question.body
        and "\n2. PED-1005" in question.body
        and "\n3. PED-1003" in question.body
    )

    write(stack, twilio, JULIAN_AR, "dos", channel="sms")
    answer = twilio.wait_for(JULIAN_AR, 2)[1]
    assert "PED-1005" in answer.body and "OCA" in answer.body

    write(stack, twilio, JULIAN_AR, "donde esta mi pedido", channel="sms")
    twilio.wait_for(JULIAN_AR, 3)
    write(stack, twilio, JULIAN_AR, "el de los auriculares", channel="sms")
    assert "PED-1004" in twilio.wait_for(JULIAN_AR, 4)[3].body


def test_duplicate_message_sids_are_answered_once(stack, twilio):
    form = inbound_form(ROSA_PE, "hola")
    for _ in range(3):
        assert post(stack, twilio, WEBHOOK, form).status_code == 204
    with ThreadPoolExecutor(8) as pool:
        concurrent = inbound_form(ROSA_PE, "gracias")
        codes = list(pool.map(lambda _: post(stack, twilio, WEBHOOK, concurrent).status_code, range(16)))
    assert set(codes) == {204}
    twilio.wait_for(ROSA_PE, 2)
    time.sleep(2)  # a second answer to either message would have arrived by now
    assert len(twilio.messages_to(ROSA_PE)) == 2


@pytest.mark.parametrize("signature", ["forged", "wrong-url"])
def test_forged_webhooks_are_refused_and_not_processed(stack, twilio, signature):
    phone = "+525512340000"
    body = f"mensaje forjado {uuid.uuid4().hex}"
    form = inbound_form(phone, body)
    if signature == "wrong-url":
        signature = twilio.sign("https://attacker.example" + WEBHOOK, form)
    reply = post(stack, twilio, WEBHOOK, form, signature=signature)
    assert reply.status_code == 403
    assert quiet(twilio, phone)
    log = stack.log.read_text()
    assert form["MessageSid"] in log  # the refusal is logged...
    assert body not in log  # ...without the body


@pytest.mark.parametrize("path", [WEBHOOK, STATUS])
def test_a_webhook_without_signature_is_refused_before_its_body_is_read(stack, twilio, path):
    phone = "+525512340001"
    form = inbound_form(phone, f"sin firma {uuid.uuid4().hex}")
    started = time.monotonic()
    reply = post(stack, twilio, path, form, signature=None)
    assert reply.status_code == 403 and time.monotonic() - started < 1
    assert form["MessageSid"] not in stack.log.read_text()  # the form was never parsed
    assert quiet(twilio, phone)
    assert outbound(stack, phone) == []
    assert all(event["event"] != "user" for event in tracker(stack, phone)["events"])


def test_an_oversized_body_is_refused_without_reading_it(stack, twilio):
    # 10 MB: Sanic's default limit (100 MB) would read and parse it all; Twilio's forms are KBs.
    body = b"Body=" + b"1+" * (5 * 1024 * 1024)
    started = time.monotonic()
    reply = requests.post(
        f"{stack.base}{WEBHOOK}",
        data=body,
        headers={"X-Twilio-Signature": "whatever", "Content-Type": "application/x-www-form-urlencoded"},
        timeout=10,
    )
    assert reply.status_code == 413
    assert time.monotonic() - started < 1  # a generous guard: the refusal reads no body
    # A legitimate form of the largest size (a 4,096-character body of emoji) still gets in.
    phone = "+525512340002"
    sid = write(stack, twilio, phone, "😀" * 4096)
    assert user_turn(stack, phone, sid, timeout_s=30)["text"] == "😀" * 4096


def test_a_customer_typing_a_command_does_not_run_it(stack, twilio):
    # handoff_returned is the console's own signal (the agent handed back): typed by a customer
    # it must not reach Rasa's regex parser, which would take it at confidence 1.0.
    phone = "+525512340003"
    sid = write(stack, twilio, phone, "/handoff_returned")
    turn = user_turn(stack, phone, sid, timeout_s=30)
    assert turn["text"] == "handoff_returned"  # read by NLU as words, not by the regex parser
    assert turn["parse_data"]["intent"]["name"] != "handoff_returned"


def test_media_reaches_the_tracker_and_is_acknowledged(stack, twilio):
    phone = "+573105551234"
    sid = write(
        stack,
        twilio,
        phone,
        "",
        NumMedia="1",
        MediaUrl0="https://media.example/comprobante.jpg",
        MediaContentType0="image/jpeg",
    )
    [reply] = twilio.wait_for(phone)
    assert is_response(reply.body, "utter_media_received")
    latest = user_turn(stack, phone, sid)
    assert latest["parse_data"]["intent"]["name"] == "share_media"
    assert latest["metadata"]["media"] == [
        {"url": "https://media.example/comprobante.jpg", "content_type": "image/jpeg"}
    ]


def test_location_is_an_intent_with_entities(stack, twilio):
    phone = "+56987654321"
    sid = write(stack, twilio, phone, "", Latitude="-33.4489", Longitude="-70.6693", Address="Plaza de Armas")
    [reply] = twilio.wait_for(phone)
    assert is_response(reply.body, "utter_location_received")
    latest = user_turn(stack, phone, sid)
    assert latest["parse_data"]["intent"]["name"] == "share_location"
    entities = {e["entity"]: e["value"] for e in latest["parse_data"]["entities"]}
    assert entities == {"latitude": -33.4489, "longitude": -70.6693, "address": "Plaza de Armas"}


def test_opt_out_stops_everything_but_the_confirmation_until_opt_in(stack, twilio):
    phone = "+525511112222"
    write(stack, twilio, phone, "BAJA")
    [confirmation] = twilio.wait_for(phone)
    assert is_response(confirmation.body, "utter_opted_out")
    write(stack, twilio, phone, "hola")
    time.sleep(2)
    assert len(twilio.messages_to(phone)) == 1
    assert any(record.status == "blocked" for record in outbound(stack, phone))  # recorded, not dropped

    write(stack, twilio, phone, "alta")
    assert is_response(twilio.wait_for(phone, 2)[1].body, "utter_opted_in")
    write(stack, twilio, phone, "hola")
    twilio.wait_for(phone, 3)


def test_cancelar_answers_an_open_question_instead_of_opting_out(stack, twilio):
    write(stack, twilio, JULIAN_AR, "mi pedido?")
    twilio.wait_for(JULIAN_AR)
    write(stack, twilio, JULIAN_AR, "cancelar")
    twilio.wait_for(JULIAN_AR, 2)
    contact = MessagingStore(SqlStore(stack.database_url), CLOCK).contact(JULIAN_AR)
    assert not contact.opted_out


def test_replies_to_one_conversation_leave_in_order(stack, twilio):
    phone = ROSA_PE
    for text in ("holaa", "como va mi pedido", "es el 1007", "gracias!!"):
        write(stack, twilio, phone, text)
    bodies = [m.body for m in twilio.wait_for(phone, 4)]
    assert "PED-1007" not in bodies[1] and "PED-1007" in bodies[2]
    if not is_response(bodies[3], "utter_youre_welcome"):
        # The "¿Te sirvió?" question may follow the status, by what this number's session already
        # holds (bot.feedback.should_ask: earlier tests wrote from it); then the thanks' answer.
        assert is_response(bodies[3], "utter_ask_feedback"), bodies
        bodies = [m.body for m in twilio.wait_for(phone, 5)]
        assert is_response(bodies[4], "utter_youre_welcome"), bodies


def test_send_failures_are_retried_until_they_go_through(stack, twilio):
    twilio.fail_next(429)
    twilio.fail_next(503)  # both say no message was created (a 500 may have created it)
    write(stack, twilio, MARIANA_MX, "y mi pedido??")
    [message] = twilio.wait_for(MARIANA_MX, timeout_s=30)
    assert "PED-1001" in message.body
    record = record_of(stack, MARIANA_MX, message.sid)
    assert record.attempts == 3 and record.status == "queued"


def test_a_permanent_refusal_is_recorded_as_failed(stack, twilio):
    phone = "+525533334444"
    twilio.fail_next(400, code=21211)
    write(stack, twilio, phone, "hola")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not any(r.status == "failed" for r in outbound(stack, phone)):
        time.sleep(0.2)
    failed = [r for r in outbound(stack, phone) if r.status == "failed"]
    assert failed and failed[0].error_code == "21211" and failed[0].attempts == 1


def test_delivery_status_callbacks_are_stored(stack, twilio):
    write(stack, twilio, CAMILA := "+56987654321", "gracias")
    [message] = twilio.wait_for(CAMILA)
    record_of(stack, CAMILA, message.sid)
    for status in ("sent", "delivered", "read"):
        form = {"MessageSid": message.sid, "MessageStatus": status, "AccountSid": twilio.account_sid}
        assert post(stack, twilio, STATUS, form).status_code == 204
    assert record_of(stack, CAMILA, message.sid).status == "read"
    failed = {"MessageSid": message.sid, "MessageStatus": "failed", "ErrorCode": "30008"}
    assert post(stack, twilio, STATUS, failed, signature="forged").status_code == 403
    assert record_of(stack, CAMILA, message.sid).status == "read"


def test_health_route(stack):
    assert requests.get(f"{stack.base}/webhooks/twilio/", timeout=5).json() == {"status": "ok"}


def test_readiness_route_says_ready_without_a_credential_and_nothing_else(stack):
    # What load balancers and probes ask (docs/deploy.md); the model's details stay behind /status.
    reply = requests.get(f"{stack.base}/webhooks/twilio/ready", timeout=5)
    assert (reply.status_code, reply.json()) == (200, {"status": "ready"})


def test_a_webhook_without_sender_is_a_bad_request(stack, twilio):
    form = {"MessageSid": "SM" + uuid.uuid4().hex, "Body": "hola"}
    assert post(stack, twilio, WEBHOOK, form).status_code == 400
