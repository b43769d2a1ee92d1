"""The context packet: what it holds, what it masks, and that it follows the documented schema."""

import json
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import jsonschema
import pytest

from bot.handoff.packet import CODE_MASK, build_packet, mask_customer_text, transcript
from bot.handoff.rules import Reason, WaitEstimate
from bot.identity import VERIFIED, IdentityClaim
from bot.masking import CARD_MASK, CARRIED_CARD_DIGITS, CVV_MASK
from bot.records import Customer

SCHEMA = json.loads((Path(__file__).parents[2] / "docs" / "handoff-packet.schema.json").read_text())
NOW = datetime(2026, 11, 26, 16, 0, tzinfo=timezone.utc)
MARIANA = Customer("C-001", "Mariana López", "+525512345678", "MX")
CARD = "4111 1111 1111 1111"


def user(text, intent, at, media=(), **extra):
    return {
        "event": "user",
        "text": text,
        "timestamp": at,
        "parse_data": {"intent": {"name": intent}},
        "metadata": {"channel": "whatsapp", "media": list(media), **extra},
    }


def bot(text, at, **metadata):
    return {"event": "bot", "text": text, "timestamp": at, "metadata": metadata}


def action(name, at):
    return {"event": "action", "name": name, "timestamp": at}


def slot(name, value, at):
    return {"event": "slot", "name": name, "value": value, "timestamp": at}


T0 = 1_795_000_000.0


def iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, tz=timezone.utc).isoformat()


EVENTS = [
    action("action_session_start", T0),
    {"event": "session_started", "timestamp": T0},
    action("action_listen", T0),
    user("dnd esta mi pedido", "order_status", T0 + 1),
    action("action_order_status", T0 + 2),
    bot("Tu pedido PED-1001 va en camino.", T0 + 2),
    user(
        "mira la foto",
        "share_media",
        T0 + 3,
        media=[{"url": "https://api.twilio.com/m/1", "content_type": "image/jpeg"}],
    ),
    action("utter_media_received", T0 + 4),
    user("quiero cancelar", "cancel_order", T0 + 5),
    action("action_open_case", T0 + 6),
    bot("Registré tu solicitud con el número GES-7F3K2Q9M 📝.", T0 + 6),
    user("asdkj qwe", "nlu_fallback", T0 + 7),
    action("action_clarify", T0 + 8),
    action("reschedule_form", T0 + 9),
    slot("requested_slot", "otp_code", T0 + 9),
    user("mi tarjeta es " + CARD + " cvv 123", "inform", T0 + 10),
    user("483920", "inform", T0 + 11),
    action("validate_reschedule_form", T0 + 12),
    slot("otp_code", None, T0 + 12),
    user("pasame con una persona <script>alert(1)</script>", "human_handoff", T0 + 13),
]
SLOTS = {
    "order_choices": None,
    "delivery_date": "el viernes",
    "otp_code": "483920",
    "requested_slot": "otp_code",
}


def packet(events=EVENTS, slots=SLOTS, customer=MARIANA, wait=None, **overrides):
    values = dict(
        handoff_id="HO-ABCDEFGH",
        conversation_id="+525512345678",
        reason=Reason.CUSTOMER_REQUEST,
        events=events,
        slots=slots,
        active_loop="reschedule_form",
        customer=customer,
        phone="+525512345678",
        channel="whatsapp",
        created_at=NOW,
        wait=wait or WaitEstimate(True, 8, None, 1),
    )
    values.update(overrides)
    return build_packet(**values)


def test_the_packet_follows_the_documented_schema():
    jsonschema.validate(packet(), SCHEMA, format_checker=jsonschema.FormatChecker())
    closed = WaitEstimate(False, 8, datetime(2026, 11, 30, 9, tzinfo=timezone.utc), 3)
    jsonschema.validate(packet(customer=None, wait=closed), SCHEMA)


def test_it_says_who_the_customer_is_and_how_they_were_identified():
    who = packet()["customer"]
    assert who == {
        "id": "C-001", "name": "Mariana López", "phone": "+525512345678", "country": "MX",
        "known": True, "verified": False, "verification_method": "phone_number_on_file",
    }  # fmt: skip
    # Only a claim the action checked (signature, sender, expiry) reaches the packet.
    issued = NOW.timestamp()
    by_code = IdentityClaim(VERIFIED, "+525512345678", "C-001", issued, issued + 60, "sms_code")
    verified = packet(identity=by_code)
    assert verified["customer"]["verified"] and verified["customer"]["verification_method"] == "sms_code"
    slots_alone = packet(slots={**SLOTS, "verified_customer_id": "C-001", "verified_how": "sms_code"})
    assert not slots_alone["customer"]["verified"]
    assert slots_alone["customer"]["verification_method"] == "phone_number_on_file"
    someone_else = packet(identity=replace(by_code, customer_id="C-002"))["customer"]
    assert not someone_else["verified"]
    claim_text = packet(slots={**SLOTS, "verified_identity": "v1.abc.def"}, identity=by_code)
    assert "verified_identity" not in claim_text["slots"]
    stranger = packet(customer=None)["customer"]
    assert stranger["id"] is None and stranger["phone"] == "+525512345678" and not stranger["known"]


def test_it_says_what_was_wanted_done_and_failed():
    built = packet()
    assert built["intent"]["current"] == "cancel_order"  # the latest goal, not the answers or the request
    assert built["intent"]["session"] == [
        "order_status", "share_media", "cancel_order", "nlu_fallback", "inform", "inform", "human_handoff",
    ]  # fmt: skip
    assert built["steps_completed"] == [
        "action_order_status", "utter_media_received", "action_open_case", "action_clarify",
        "reschedule_form", "validate_reschedule_form",
    ]  # fmt: skip
    assert {"kind": "slot_rejected", "slot": "otp_code", "by": "validate_reschedule_form"} in built[
        "validations_failed"
    ]
    assert {"kind": "not_understood", "text": "asdkj qwe"} in built["validations_failed"]
    assert built["management_ids"] == ["GES-7F3K2Q9M"]
    assert built["active_form"] == "reschedule_form" and built["requested_slot"] == "otp_code"
    assert built["reason"] == {"code": "customer_request", "detail": None}


def test_attachments_keep_their_url_and_type():
    assert packet()["attachments"] == [
        {"url": "https://api.twilio.com/m/1", "content_type": "image/jpeg", "at": iso(T0 + 3)}
    ]


def test_card_numbers_security_codes_and_one_time_codes_never_reach_the_packet():
    text = json.dumps(packet(), ensure_ascii=False)
    assert "4111" not in text and "cvv 123" not in text and "483920" not in text
    customer = [m["text"] for m in packet()["messages"] if m["sender"] == "customer"]
    assert f"mi tarjeta es {CARD_MASK} cvv {CVV_MASK}" in customer
    assert CODE_MASK in customer  # the answer to the prompt for the one-time code
    assert packet()["slots"]["otp_code"] == "[oculto]"


def test_a_six_digit_number_is_kept_when_no_code_was_asked_for():
    assert mask_customer_text("mi pedido es 100234") == "mi pedido es 100234"
    assert mask_customer_text("es 100234", answering_secret=True) == f"es {CODE_MASK}"


def test_the_packet_keeps_the_last_30_messages_and_what_the_channel_rewrote():
    many = [user(f"mensaje {n}", "inform", T0 + n) for n in range(40)]
    rewritten = user("/human_handoff", "human_handoff", T0 + 50, original_text="esto es una estafa")
    built = packet(events=[*many, rewritten])
    assert len(built["messages"]) == 30
    assert (
        built["messages"][0]["text"] == "mensaje 11" and built["messages"][-1]["text"] == "esto es una estafa"
    )


def test_agent_replies_are_told_apart_from_the_bot():
    built = packet(events=[*EVENTS, bot("Hola, soy Ana", T0 + 20, agent="ana")])
    assert built["messages"][-1] == {
        "at": iso(T0 + 20), "sender": "agent", "agent": "ana", "text": "Hola, soy Ana", "attachments": [],
    }  # fmt: skip


@pytest.mark.parametrize("field", ["customer", "messages", "attachments", "wait", "timestamps"])
def test_every_documented_field_is_present(field):
    assert field in packet() and field in SCHEMA["required"]


def test_the_first_half_of_a_split_card_is_masked_in_the_transcript():
    events = [
        {"event": "user", "text": "mi tarjeta es 4111 1111", "timestamp": 1.0, "parse_data": {}},
        {"event": "bot", "text": "¿Me repites?", "timestamp": 2.0},
        {
            "event": "user",
            "text": "/card_data",
            "timestamp": 3.0,
            "metadata": {CARRIED_CARD_DIGITS: 8},
            "parse_data": {},
        },
    ]
    texts = [message["text"] for message in transcript(events)]
    assert texts[0] == f"mi tarjeta es {CARD_MASK}" and "4111" not in "".join(texts)
