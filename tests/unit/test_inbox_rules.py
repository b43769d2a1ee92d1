"""Which stored customer messages `make inbox` exports, on Rasa's events as the tracker store keeps
them (JSON), without a database: the cases the integration test does not build."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

from bot.inbox import (
    BEFORE_HANDOFF,
    CLARIFIED,
    FALLBACK,
    group_messages,
    keep_labels,
    misunderstood_messages,
    render_inbox,
)
from tests.conftest import NOW

START = NOW.timestamp()


def user(text: str, intent: str, confidence: float = 0.9, at: float = START, **metadata) -> dict:
    parse_data = {"intent": {"name": intent, "confidence": confidence}, "intent_ranking": [], "text": text}
    return {"event": "user", "text": text, "parse_data": parse_data, "timestamp": at, "metadata": metadata}


def action(name: str) -> dict:
    return {"event": "action", "name": name}


def bot(response: str, *payloads: str) -> dict:
    buttons = [{"title": payload, "payload": payload} for payload in payloads]
    return {"event": "bot", "text": "…", "data": {"buttons": buttons}, "metadata": {"utter_action": response}}


def exported(*events: dict) -> dict[str, set[str]]:
    return {message.text: message.reasons for message in misunderstood_messages("+5215512345678", events)}


def test_a_button_pressed_after_the_options_is_the_pick():
    messages = misunderstood_messages(
        "a",
        [
            user("lo de la plata", "nlu_fallback", 0.4),
            action("action_clarify"),
            bot("utter_clarify", "/check_balance", "/make_payment"),
            action("action_listen"),
            user("/make_payment", "make_payment", 1.0),
        ],
    )
    assert [(m.text, m.reasons, m.picked) for m in messages] == [
        ("lo de la plata", {CLARIFIED}, "make_payment")
    ]


def test_a_message_typed_after_the_options_is_no_pick():
    assert exported(
        user("lo de la plata", "nlu_fallback", 0.4),
        action("action_clarify"),
        bot("utter_clarify", "/check_balance", "/make_payment"),
        action("action_listen"),
        user("ninguna de esas", "deny"),
        action("utter_how_can_i_help"),
        user("/make_payment", "make_payment", 1.0),  # later, from the menu: not this pick
    ) == {"lo de la plata": {FALLBACK}}


def test_the_offer_of_a_person_accepted_marks_the_message_before_the_handoff():
    assert exported(
        user("asdkj qwe", "nlu_fallback", 0.3),
        action("action_clarify"),
        bot("utter_clarify", "/order_status", "/help"),
        user("zzz pfff", "nlu_fallback", 0.2),
        action("action_clarify"),
        bot("utter_offer_human", "/human_handoff", "/help"),
        user("sí", "affirm"),
        action("action_pick_option"),
        {"event": "rewind"},
        action("action_listen"),
        user("/human_handoff", "human_handoff", 1.0),
        action("action_handoff"),
        {"event": "pause"},
        user("hola?", "greet"),  # written to the agent
    ) == {"asdkj qwe": {FALLBACK}, "zzz pfff": {FALLBACK, BEFORE_HANDOFF}}


def test_a_handoff_the_assistant_decides_marks_the_message_of_its_turn():
    assert exported(
        user("quiero pagar los 90 mil que debo", "make_payment", 0.97),
        action("action_complete_flow"),
        action("action_handoff"),
    ) == {"quiero pagar los 90 mil que debo": {BEFORE_HANDOFF}}


def test_a_request_for_a_person_in_a_new_session_marks_nothing_before_it():
    assert (
        exported(
            user("gracias", "thank"),
            {"event": "session_started"},
            user("asesor", "human_handoff"),
            action("action_handoff"),
        )
        == {}
    )


def test_a_security_code_after_a_card_comes_out_masked():
    texts = exported(
        user("/card_data", "card_data", 1.0),
        user("123", "nlu_fallback", 0.3),
        action("action_clarify"),
    )
    assert list(texts) == ["[cvv oculto]"]


def test_identical_texts_are_one_entry_and_an_earlier_label_is_kept(tmp_path):
    first = misunderstood_messages(
        "a", [user("Dónde está lo mío?", "nlu_fallback", 0.3, START), action("action_clarify")]
    )
    second = misunderstood_messages(
        "b", [user("donde esta lo mio", "nlu_fallback", 0.3, START + 60), action("action_clarify")]
    )
    entries = group_messages(first + second)
    assert [(entry.text, entry.count, entry.latest.conversation) for entry in entries] == [
        ("Dónde está lo mío?", 2, second[0].conversation)
    ]
    assert keep_labels(entries, {"messages": [{"text": "DONDE ESTA LO MIO", "label": "order_status"}]}) == 1
    written = render_inbox(entries, NOW - timedelta(days=7), NOW, "America/Lima", "inbox/x.yml")
    assert "label: order_status" in written and "count: 2" in written
    latest = (NOW + timedelta(seconds=60)).astimezone(ZoneInfo("America/Lima"))
    assert f"at: '{latest.isoformat(timespec='seconds')}'" in written  # the latest, in local time


def test_phone_numbers_in_a_message_are_masked_as_the_customers_country_writes_them():
    texts = misunderstood_messages(
        "whatsapp:+5491123456789",
        [
            user("mejor llamame al 11 2345-6789 o al +52 55 1234 5678", "nlu_fallback", 0.3),
            action("action_clarify"),
        ],
    )
    assert [message.text for message in texts] == [
        "mejor llamame al [teléfono oculto] o al [teléfono oculto]"
    ]


def test_order_and_document_numbers_are_not_taken_for_phone_numbers():
    texts = exported(user("el pedido 1007 y mi dni 30123456", "nlu_fallback", 0.3), action("action_clarify"))
    assert list(texts) == ["el pedido 1007 y mi dni 30123456"]
