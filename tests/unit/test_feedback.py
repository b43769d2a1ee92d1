"""The "¿Te sirvió?" question: when it is asked, how typed answers are read at the channel, and how
analytics pairs each answer with the flow it rates (bot/feedback.py, bot/analytics/feedback.py)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from bot.analytics.feedback import feedback_and_exposures
from bot.analytics.sessions import build_sessions, trim_event
from bot.feedback import (
    NO,
    YES,
    EarlierQuestion,
    answer_payload,
    session_so_far,
    should_ask,
    typed_answer,
)
from bot.handoff.config import load_config
from bot.messaging.inbound import parse_inbound
from bot.messaging.inbound_rules import ConversationState, Route, decide
from tests.analytics_helpers import Conversation
from tests.fake_twilio import inbound_form

PHONE = "+525512345678"
START = datetime(2026, 11, 23, 15, 0, tzinfo=timezone.utc)
QUESTION = ConversationState(
    pending_buttons=(
        {"title": "Sí", "payload": answer_payload(YES)},
        {"title": "No", "payload": answer_payload(NO)},
    )
)
OTHER_OPTIONS = ConversationState(
    pending_buttons=(
        {"title": "Sí, ahora", "payload": "/make_payment"},
        {"title": "No, gracias", "payload": "/deny"},
    )
)


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("si", YES), ("Sí, gracias!", YES), ("sii muchas gracias", YES), ("me sirvió", YES),
        ("no", NO), ("No me sirvio", NO), ("nop", NO), ("la verdad no", NO), ("no, gracias", NO),
        ("no, quiero cambiar la fecha", None), ("gracias", None), ("donde esta mi pedido", None),
    ],
)  # fmt: skip
def test_typed_answers_are_read_only_when_the_whole_message_says_yes_or_no(text, answer):
    assert typed_answer(text) == answer


@pytest.mark.parametrize(
    ("text", "reads"),
    [
        ("1", answer_payload(YES)),
        ("2", answer_payload(NO)),
        ("sí gracias", answer_payload(YES)),
        ("no me sirvio", answer_payload(NO)),
        ("No", answer_payload(NO)),
        ("quiero cambiar la entrega", "quiero cambiar la entrega"),  # ignored: NLU reads it
    ],
)
def test_the_channel_turns_an_answer_to_the_question_on_screen_into_its_payload(text, reads):
    decision = decide(parse_inbound(inbound_form(PHONE, text), "MX"), QUESTION, load_config())
    assert decision.route is Route.TO_BOT and decision.text == reads
    assert decision.answered_buttons  # the question leaves the screen either way


def test_a_typed_command_is_no_answer_even_with_the_question_on_screen():
    typed = '/flow_feedback{"feedback_useful":"no"}'
    decision = decide(parse_inbound(inbound_form(PHONE, typed), "MX"), QUESTION, load_config())
    assert not decision.text.startswith("/")


def test_yes_and_no_words_mean_nothing_special_without_the_question():
    config = load_config()
    assert decide(
        parse_inbound(inbound_form(PHONE, "no me sirvio"), "MX"), ConversationState(), config
    ).text == ("no me sirvio")
    other = decide(parse_inbound(inbound_form(PHONE, "no me sirvio"), "MX"), OTHER_OPTIONS, config)
    assert other.text == "no me sirvio"


def test_asked_after_a_flow_unless_a_person_a_form_an_ignored_question_or_a_rating_already():
    assert should_ask("order_status", (), handed_over=False, in_form=False)
    assert not should_ask("order_status", (), handed_over=True, in_form=False)
    assert not should_ask("order_status", (), handed_over=False, in_form=True)
    ignored = (EarlierQuestion("order_status", answered=False),)
    assert not should_ask("check_balance", ignored, handed_over=False, in_form=False)
    rated = (EarlierQuestion("order_status", answered=True),)
    assert not should_ask("order_status", rated, handed_over=False, in_form=False)
    assert should_ask("check_balance", rated, handed_over=False, in_form=False)


def _bot(flow: str | None, at: float) -> dict:
    metadata = {"utter_action": "utter_ask_feedback", "rated_flow": flow} if flow else {"utter_action": "u"}
    return {"event": "bot", "timestamp": at, "metadata": metadata}


def _user(intent: str, at: float) -> dict:
    return {"event": "user", "timestamp": at, "parse_data": {"intent": {"name": intent}}}


def test_the_session_so_far_counts_only_this_sessions_questions_and_answers():
    events = [
        _bot("order_status", 1),  # an earlier session's question
        {"event": "session_started", "timestamp": 2},
        _user("order_status", 3),
        _bot("order_status", 4),
        _user("flow_feedback", 5),  # answered
        _user("check_balance", 6),
        _bot("check_balance", 7),
        _user("reschedule_delivery", 8),  # moved on: unanswered
    ]
    so_far = session_so_far(events)
    assert so_far.earlier == (EarlierQuestion("order_status", True), EarlierQuestion("check_balance", False))
    assert not so_far.handed_over
    assert session_so_far([*events, {"event": "action", "name": "action_handoff"}]).handed_over


def test_analytics_pairs_each_answer_with_the_question_right_before_it():
    talk = Conversation(PHONE)
    talk.session(START).says("mi pedido?", "order_status").answers("action_order_status", "u")
    talk.asks_feedback("order_status", "te_sirvio").answers_feedback("yes")
    talk.says("y cuanto debo", "check_balance").answers("action_complete_flow", "u")
    talk.asks_feedback("check_balance", "te_sirvio")
    talk.says("hola?", "greet").answers("utter_greet", "u")  # ignored
    talk.answers_feedback("no")  # too late: no question open any more
    kept = [trim_event(PHONE, event) for event in talk.events]
    answers, exposures = feedback_and_exposures(PHONE, [event for event in reversed(kept) if event])
    assert [(a.flow, a.useful, a.variant) for a in answers] == [("order_status", True, "te_sirvio")]
    assert [(e.experiment, e.variant) for e in exposures] == [("pregunta_feedback", "te_sirvio")] * 2
    (session,) = build_sessions(PHONE, [event for event in kept if event])
    assert session.intent == "order_status"  # flow_feedback names no task
    assert session.customer_turns == 5


def test_only_the_answers_entity_and_the_questions_metadata_are_kept():
    user = trim_event(
        PHONE,
        {
            "event": "user",
            "timestamp": 1.0,
            "text": "/flow_feedback{...}",
            "parse_data": {
                "intent": {"name": "flow_feedback"},
                "entities": [{"entity": "feedback_useful", "value": "no", "start": 0}],
            },
        },
    )
    assert user["parse_data"]["entities"] == [{"entity": "feedback_useful", "value": "no"}]
    order = trim_event(
        PHONE,
        {
            "event": "user",
            "timestamp": 1.0,
            "text": "PED-1001",
            "parse_data": {
                "intent": {"name": "inform"},
                "entities": [{"entity": "order_id", "value": "PED-1001"}],
            },
        },
    )
    assert order["parse_data"]["entities"] == []
    bot = trim_event(
        PHONE,
        {
            "event": "bot",
            "timestamp": 1.0,
            "text": "¿Te sirvió?",
            "metadata": {"utter_action": "utter_ask_feedback", "rated_flow": "order_status", "variant": "a"},
        },
    )
    assert bot["metadata"] == {
        "utter_action": "utter_ask_feedback",
        "rated_flow": "order_status",
        "variant": "a",
    }
