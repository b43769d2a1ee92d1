"""The "¿Te sirvió?" question at the end of a flow that ended well, and the action that answers it.

A flow's last action calls `ask_feedback` once it has told the customer the good news (order
status answered, delivery moved, balance or link sent, contact data changed, an article
answered); bot/feedback.py decides whether to ask. The question's bot event carries the flow it
rates (`rated_flow`), so analytics pairs it with the answer that follows (docs/kpis.md).
"""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher

from bot.feedback import (
    FEEDBACK_ENTITY,
    NO,
    QUESTION_RESPONSE,
    RATED_FLOW_KEY,
    YES,
    session_so_far,
    should_ask,
)


def ask_feedback(dispatcher: CollectingDispatcher, tracker: Tracker, flow: str) -> None:
    """Ask "¿Te sirvió?" about `flow` unless bot.feedback.should_ask says not to."""
    so_far = session_so_far(tracker.events)
    in_form = bool((tracker.active_loop or {}).get("name"))
    if should_ask(flow, so_far.earlier, handed_over=so_far.handed_over, in_form=in_form):
        dispatcher.utter_message(response=QUESTION_RESPONSE, **{RATED_FLOW_KEY: flow})


class ActionRecordFeedback(Action):
    """The answer: thanks for a "Sí"; a "No" offers a person of the team or the menu. The answer
    itself is the customer's event (/flow_feedback{"feedback_useful": ...}): the event broker
    carries it to analytics, nothing else is stored here."""

    def name(self) -> str:
        return "action_record_feedback"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        useful = next(tracker.get_latest_entity_values(FEEDBACK_ENTITY), None)
        if useful == YES:
            dispatcher.utter_message(response="utter_feedback_thanks")
        elif useful == NO:
            dispatcher.utter_message(response="utter_feedback_sorry")
        return []
