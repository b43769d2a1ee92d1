"""action_handoff, action_handback, action_record_satisfaction: a person takes the chat, then the bot.

action_handoff turns the tracker into plain data, asks bot.handoff.service to store the handoff
with its packet, tells the customer the expected wait and pauses the conversation
(ConversationPaused): the Twilio channel then forwards what the customer writes to the agent.
The agent console resumes it (ConversationResumed) and triggers `handoff_returned`, which runs
action_handback: the bot says it is back and asks the 1-5 satisfaction question; the answer is
recorded by action_record_satisfaction, which then re-activates the form the handoff interrupted.

Other flows ask for a handoff with `handoff_events(reason)` (or set the slot handoff_reason and
let the customer accept an offer, as the order lookup does when the CRM/ERP is down).
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import ActiveLoop, ConversationPaused, EventType, FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.order_status import sender_phone
from actions.verification import session_identity
from bot.adapters.base import BackendUnavailable
from bot.case_work import rate_case
from bot.clock import on_clock_timeline
from bot.handoff.rules import Reason, reason_of
from bot.handoff.service import HandoffRequest, open_handoff, opening_phrase, wait_phrase
from bot.handoff.store import Handoff
from bot.wiring import wiring

logger = logging.getLogger(__name__)

_RATING_WORDS = {"uno": 1, "dos": 2, "tres": 3, "cuatro": 4, "cinco": 5}


def handoff_events(reason: Reason, detail: str | None = None) -> list[EventType]:
    """What another action returns to hand the conversation over now, saying why (and, for the
    agent, what exactly: the invoice above the threshold, the disputed charge)."""
    return [
        SlotSet("handoff_reason", reason.value),
        SlotSet("handoff_detail", detail),
        FollowupAction("action_handoff"),
    ]


def requested_reason(tracker: Tracker) -> Reason:
    """Why: the channel's mark on the message (angry or urgent wording), else the slot another
    action set, else the customer asked."""
    marked = (tracker.latest_message.get("metadata") or {}).get("handoff_reason")
    return reason_of(marked or tracker.get_slot("handoff_reason"))


def latest_channel(tracker: Tracker) -> str:
    """whatsapp or sms from the Twilio channel's metadata; otherwise the input channel's name."""
    for event in reversed(tracker.events):
        if event.get("event") == "user":
            channel = (event.get("metadata") or {}).get("channel") or event.get("input_channel")
            return str(channel or "unknown")
    return "unknown"


def parse_rating(tracker: Tracker) -> int | None:
    """1-5 from the button's entity, or a digit or number word in the answer."""
    value = next(tracker.get_latest_entity_values("satisfaction_score"), None)
    text = str(value if value is not None else tracker.latest_message.get("text") or "").lower()
    match = re.search(r"(?<!\d)([1-5])(?!\d)", text)
    if match:
        return int(match.group(1))
    return next((score for word, score in _RATING_WORDS.items() if re.search(rf"\b{word}\b", text)), None)


class ActionHandoff(Action):
    """Store the handoff and its packet, tell the expected wait, pause the bot for this chat."""

    def name(self) -> str:
        return "action_handoff"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        found = wiring().handoff
        now = wiring().clock.now()
        form = (tracker.active_loop or {}).get("name")
        request = HandoffRequest(
            conversation_id=tracker.sender_id,
            phone=sender_phone(tracker),
            channel=latest_channel(tracker),
            reason=requested_reason(tracker),
            events=on_clock_timeline(list(tracker.events), wiring().settings.clock_shift),
            slots=dict(tracker.slots),
            active_form=form,
            now=now,
            reason_detail=tracker.get_slot("handoff_detail"),
            identity=session_identity(tracker),
        )
        try:
            crm = wiring().backends.crm
            opened = await asyncio.to_thread(open_handoff, found, crm, request)
        except BackendUnavailable:
            logger.exception("handoff: the database is unavailable")
            dispatcher.utter_message(response="utter_handoff_failed")
            return [SlotSet("handoff_reason", None), SlotSet("handoff_detail", None)]
        if opened.wait.open_now:
            dispatcher.utter_message(response="utter_handoff_waiting", wait=wait_phrase(opened.wait.minutes))
        else:
            opens = opening_phrase(opened.wait, found.config, now)
            dispatcher.utter_message(response="utter_handoff_after_hours", opens=opens)
        events: list[EventType] = [SlotSet("handoff_reason", None), SlotSet("handoff_detail", None)]
        if form:
            # The form stops here; its filled slots stay, and the hand-back re-activates it.
            events.append(ActiveLoop(None))
        return [*events, ConversationPaused()]


class ActionHandback(Action):
    """The agent gave the chat back: say the bot is back and ask how the attention was (1-5)."""

    def name(self) -> str:
        return "action_handback"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        dispatcher.utter_message(response="utter_bot_back")
        dispatcher.utter_message(response="utter_ask_satisfaction")  # its buttons are in the domain
        return []


class ActionRecordSatisfaction(Action):
    """Record the 1-5 answer on what asked for it last: a case an agent closed (the console asks
    with the same question), else the conversation's last handoff; then resume the interrupted form."""

    def name(self) -> str:
        return "action_record_satisfaction"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        store = wiring().handoff.store
        score = parse_rating(tracker)
        try:
            handoff = await asyncio.to_thread(store.latest_for, tracker.sender_id)
            for_case = score is not None and await asyncio.to_thread(
                rate_closed_case, tracker.sender_id, score, handoff
            )
            if score is not None and not for_case and handoff is not None:
                await asyncio.to_thread(store.record_satisfaction, handoff.id, score)
        except BackendUnavailable:
            logger.exception("handoff: satisfaction answer not stored, the database is unavailable")
            handoff = None
        dispatcher.utter_message(response="utter_satisfaction_thanks")
        if handoff is not None and handoff.status == "handed_back" and handoff.resume_form:
            dispatcher.utter_message(response="utter_resume_flow")
            return [FollowupAction(handoff.resume_form)]
        return []


def rate_closed_case(conversation_id: str, score: int, handoff: Handoff | None) -> bool:
    """Record `score` on the conversation's closed case awaiting a rating, if it was asked after
    the last handoff ended (the question the customer is answering); whether it was."""
    book = wiring().cases
    try:
        waiting = book.awaiting_rating(conversation_id)
    except NotImplementedError:
        return False  # a case book that keeps no ratings (one that only records cases)
    if waiting is None or waiting.rating_requested_at is None:
        return False
    ended = handoff.ended_at if handoff is not None else None
    if ended is not None and ended > waiting.rating_requested_at:
        return False
    return rate_case(book, conversation_id, score, wiring().clock.now()) is not None
