"""The "¿Te sirvió?" question sent by a flow's last action, and its answer (actions/feedback.py),
with rasa_sdk trackers over the demo data."""

from __future__ import annotations

import asyncio

import pytest
from rasa_sdk.executor import CollectingDispatcher

from actions.feedback import ActionRecordFeedback
from actions.order_status import ActionOrderStatus
from actions.reschedule import ActionRescheduleReset
from tests.action_helpers import DOMAIN
from tests.action_helpers import tracker as action_tracker
from tests.conftest import MARIANA_MX, STRANGER


@pytest.fixture(autouse=True)
def use_demo(wire, demo):
    wire(backends=demo)


def tracker(text="donde esta mi pedido", intent="order_status", events=(), sender=MARIANA_MX, **rest):
    """This session's events (a session_started first), then the latest message."""
    session = [{"event": "session_started", "timestamp": 1.0}, *events]
    return action_tracker(sender, text, intent=intent, events=session, **rest)


def run(action, given):
    dispatcher = CollectingDispatcher()
    events = asyncio.run(action.run(dispatcher, given, DOMAIN))
    return dispatcher.messages, events


def question(flow: str, at: float) -> dict:
    return {
        "event": "bot",
        "timestamp": at,
        "metadata": {"utter_action": "utter_ask_feedback", "rated_flow": flow},
    }


def said(intent: str, at: float) -> dict:
    return {"event": "user", "timestamp": at, "parse_data": {"intent": {"name": intent}}}


def test_the_status_answered_is_followed_by_the_question_naming_the_flow():
    messages, _ = run(ActionOrderStatus(), tracker())
    assert [m["response"] for m in messages] == ["utter_order_in_transit", "utter_ask_feedback"]
    assert messages[1]["rated_flow"] == "order_status"


def test_no_question_when_the_flow_did_not_end_well():
    messages, _ = run(ActionOrderStatus(), tracker(sender=STRANGER))
    assert [m["response"] for m in messages] == ["utter_unknown_customer"]


def test_not_twice_in_a_row_when_the_last_question_was_ignored():
    ignored = [said("order_status", 2.0), question("order_status", 3.0), said("greet", 4.0)]
    messages, _ = run(ActionOrderStatus(), tracker(events=ignored))
    assert [m["response"] for m in messages] == ["utter_order_in_transit"]


def test_not_after_a_person_took_part_nor_inside_a_form():
    handed = [{"event": "action", "timestamp": 2.0, "name": "action_handoff"}]
    assert len(run(ActionOrderStatus(), tracker(events=handed))[0]) == 1
    assert len(run(ActionOrderStatus(), tracker(form="reschedule_form"))[0]) == 1


def test_a_moved_delivery_asks_and_a_delivery_left_unmoved_does_not():
    moved, _ = run(ActionRescheduleReset(), tracker(slots={"reschedule_confirmed": True}))
    assert [(m["response"], m["rated_flow"]) for m in moved] == [
        ("utter_ask_feedback", "reschedule_delivery")
    ]
    left, _ = run(ActionRescheduleReset(), tracker(slots={"reschedule_confirmed": False}))
    assert left == []


@pytest.mark.parametrize(
    ("useful", "response"), [("yes", "utter_feedback_thanks"), ("no", "utter_feedback_sorry")]
)
def test_the_answer_is_thanked_or_offers_a_person_and_the_menu(useful, response):
    answer = [{"entity": "feedback_useful", "value": useful}]
    messages, events = run(
        ActionRecordFeedback(), tracker(f"/flow_feedback{useful}", "flow_feedback", entities=answer)
    )
    assert [m["response"] for m in messages] == [response] and events == []
    if useful == "no":
        offered = {button["payload"] for button in DOMAIN["responses"][response][0]["buttons"]}
        assert offered == {"/human_handoff", "/help"}
