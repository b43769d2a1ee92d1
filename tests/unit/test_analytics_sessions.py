"""Conversation events turned into sessions (bot/analytics/sessions.py): no database, no Rasa."""

from __future__ import annotations

from datetime import datetime, timezone

from bot.analytics.sessions import build_sessions, customer_key, event_key, trim_event
from tests.analytics_helpers import Conversation

START = datetime(2026, 11, 23, 15, 0, tzinfo=timezone.utc)


def test_the_same_event_has_the_same_identity_and_another_conversation_another():
    event = {"event": "user", "timestamp": 1.5, "text": "hola"}
    assert event_key("+525511111111", event) == event_key("+525511111111", dict(reversed(event.items())))
    assert event_key("+525511111111", event) != event_key("+525522222222", event)


def test_a_card_number_and_a_phone_number_are_masked_before_they_are_kept():
    kept = trim_event(
        "+525511111111",
        {"event": "user", "timestamp": 1.0, "text": "tarjeta 4111 1111 1111 1111, llámenme al 55 1234 5678"},
    )
    assert "4111" not in kept["text"] and "5678" not in kept["text"]
    assert trim_event("+525511111111", {"event": "slot", "name": "otp_code", "value": "123456"}) is None
    # A Mexican number written in a Peruvian conversation is no valid Peruvian number: still masked.
    abroad = trim_event(
        "+51987654321", {"event": "user", "timestamp": 1.0, "text": "llámenme al 55 1234 5678"}
    )
    assert abroad["text"] == "llámenme al [dato oculto]"
    assert (
        trim_event("+51987654321", {"event": "user", "timestamp": 1.0, "text": "PED-1001"})["text"]
        == "PED-1001"
    )


def test_sessions_split_at_session_started_and_count_turns_until_a_person_takes_over():
    talk = Conversation("+525511111111")
    talk.session(START).says("hola", "greet").answers("utter_greet", "utter_greet")
    talk.says("¿y mi pedido?", "order_status").answers("action_order_status", "u")
    talk.says("asdfgh", "nlu_fallback", 0.2).answers("action_clarify", "utter_clarify", ["/order_status"])
    talk.says("/human_handoff", "human_handoff", 1.0).answers("action_handoff", "u")
    talk.pause().says("¿hola?", "greet").resume()
    talk.session(datetime(2026, 11, 24, tzinfo=timezone.utc)).says("gracias", "thank")
    first, second = build_sessions(talk.sender_id, reversed(talk.events))
    assert first.intent == "order_status"
    assert (first.customer_turns, first.fallback_turns, first.clarification_turns) == (4, 1, 1)
    assert first.handed_over and not first.last_turn_fell_back
    assert (first.channel, first.country) == ("whatsapp", "MX")
    assert first.ended_at < second.started_at
    assert second.intent is None and second.customer_turns == 1


def test_the_customer_is_counted_by_a_digest_of_the_phone_not_the_number():
    assert customer_key("whatsapp:+5215511111111") == customer_key("+525511111111")
    assert "5511111111" not in customer_key("+525511111111")
