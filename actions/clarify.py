"""When the assistant does not understand: offer the likeliest intents, then a person; read the pick.

action_clarify runs on nlu_fallback. A question the knowledge base answers with confidence is
answered from it (a topic NLU was not trained on: "el cupon no me funciona", "como creo una
cuenta?"), unless the article is about one of the flows the options would offer.
Otherwise it offers the two most likely intents as numbered options with buttons (payload
/intent); an intent is offered only if it has a label, the response utter_option_<intent> in
domain.yml. If the previous message was not understood either, it
offers a person instead. action_pick_option reads "2", "la segunda" or "sí" after those options
or after the menu, and continues as if the customer had pressed that button.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import (
    ActionExecuted,
    EventType,
    FollowupAction,
    SlotSet,
    UserUtteranceReverted,
    UserUttered,
)
from rasa_sdk.executor import CollectingDispatcher

from actions.knowledge import ANSWER, ActionKbAnswer, conversation_channel, customer_country
from bot.choices import pick_choice
from bot.kb import knowledge_base
from bot.wiring import wiring

logger = logging.getLogger(__name__)

FALLBACK_INTENT = "nlu_fallback"
# A message NLU did not understand is answered from the knowledge base only above this search
# score, stricter than the search's own "answer": "cuando me lo traen" scores 0.76 for the
# restocking article, and the clarification's options serve that customer better.
FALLBACK_ANSWER_SCORE = 0.85
_PAYLOAD = re.compile(r"^/(?P<intent>[\w-]+)(?P<entities>\{.*\})?$", re.DOTALL)


def option_label(domain: dict[str, Any], intent: str) -> str | None:
    """One variation of utter_option_<intent>, or None if the intent has no label."""
    variations = (domain.get("responses") or {}).get(f"utter_option_{intent}") or []
    texts = [variation["text"] for variation in variations if variation.get("text")]
    return random.choice(texts) if texts else None


def likeliest_options(
    latest_message: dict[str, Any], domain: dict[str, Any], count: int = 2
) -> list[tuple[str, str]]:
    """[(intent, label)] for the most likely labelled intents of the message, best first."""
    options: list[tuple[str, str]] = []
    for candidate in latest_message.get("intent_ranking") or []:
        name = candidate.get("name")
        if not name or name == FALLBACK_INTENT or name in (known for known, _ in options):
            continue
        label = option_label(domain, name)
        if label:
            options.append((name, label))
        if len(options) == count:
            break
    return options


def _intent_of(user_event: dict[str, Any]) -> str | None:
    return ((user_event.get("parse_data") or {}).get("intent") or {}).get("name")


def user_messages_newest_first(tracker: Tracker) -> list[dict[str, Any]]:
    """The customer's messages of this session, newest first, without those taken back."""
    messages, to_skip = [], 0
    for event in reversed(tracker.events):
        kind = event.get("event")
        if kind in ("session_started", "restart"):
            break
        if kind == "rewind":  # UserUtteranceReverted: the previous user message does not count
            to_skip += 1
        elif kind == "user":
            if to_skip:
                to_skip -= 1
            else:
                messages.append(event)
    return messages


def not_understood_before(tracker: Tracker) -> bool:
    """Whether the message before the latest one was not understood either."""
    messages = user_messages_newest_first(tracker)
    return len(messages) >= 2 and _intent_of(messages[1]) == FALLBACK_INTENT


def last_offered_buttons(tracker: Tracker) -> list[dict[str, Any]]:
    """The buttons of the assistant's latest message (menu, clarification or offer of a person)."""
    for event in reversed(tracker.events):
        if event.get("event") == "bot":
            return list((event.get("data") or {}).get("buttons") or [])
    return []


def message_from_payload(payload: str) -> dict[str, Any] | None:
    """Rasa's parse data for a button payload such as /order_status or /inform{"order_id":"PED-1"}."""
    match = _PAYLOAD.match(payload.strip())
    if not match:
        return None
    try:
        values = json.loads(match["entities"]) if match["entities"] else {}
    except json.JSONDecodeError:
        return None
    intent = {"name": match["intent"], "confidence": 1.0}
    return {
        "text": payload,
        "intent": intent,
        "intent_ranking": [intent],
        "entities": [{"entity": name, "value": value} for name, value in values.items()],
    }


async def knowledge_answer(
    dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
) -> list[EventType] | None:
    """The knowledge base's article for a message NLU did not understand, when the search is
    confident (its verdict "answer"); None otherwise, or when the knowledge base cannot be used.
    Its flow is not offered here: a clarification's "sí" and "no" mean the options'."""
    text = str(tracker.latest_message.get("text") or "")
    if not text.strip():
        return None
    try:
        country, channel = await customer_country(tracker), conversation_channel(tracker)
        kb = await asyncio.to_thread(knowledge_base, wiring().settings.kb_dir)
        result = await kb.search_async(text, country=country, channel=channel, limit=1)
    except Exception:  # noqa: BLE001 (the knowledge base failing must not silence the clarification)
        logger.exception("knowledge base unavailable for a message not understood")
        return None
    if result.verdict != ANSWER or not result.hits or result.hits[0].score < FALLBACK_ANSWER_SCORE:
        return None
    article = result.hits[0].article
    # "cuando me lo traen": the tracking article, but the customer's own order is the flow that
    # NLU already half-read; offering that flow serves them better than a general article.
    likeliest = {intent for intent, _ in likeliest_options(tracker.latest_message, domain)}
    if likeliest & {article.flow, article.intent}:
        return None
    return ActionKbAnswer.answer(dispatcher, domain, article, channel, offer_flow=False)


class ActionClarify(Action):
    """Offer the two likeliest intents; after a second message not understood, offer a person."""

    def name(self) -> str:
        return "action_clarify"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        if not (tracker.active_loop or {}).get("name"):
            answered = await knowledge_answer(dispatcher, tracker, domain)
            if answered is not None:
                return answered
        if not_understood_before(tracker):
            # "Sí" to the offer is /human_handoff: action_handoff reads why from the slot.
            dispatcher.utter_message(response="utter_offer_human")
            return [SlotSet("handoff_reason", "not_understood")]
        options = likeliest_options(tracker.latest_message, domain)
        if len(options) < 2:
            dispatcher.utter_message(response="utter_default")
            return []
        buttons = [
            {"title": label[:1].upper() + label[1:], "payload": f"/{intent}"} for intent, label in options
        ]
        dispatcher.utter_message(
            response="utter_clarify", buttons=buttons, first=options[0][1], second=options[1][1]
        )
        return []


class ActionPickOption(Action):
    """Read which offered option the customer meant and continue as if they had pressed it."""

    def name(self) -> str:
        return "action_pick_option"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        buttons = last_offered_buttons(tracker)
        intent = (tracker.latest_message.get("intent") or {}).get("name")
        if intent == "affirm":
            picked = 0 if buttons else None  # "¿Quisiste decir…?" "sí": the first option
        else:
            text = tracker.latest_message.get("text") or ""
            picked = pick_choice(text, [str(button.get("title", "")) for button in buttons])
        message = (
            message_from_payload(str(buttons[picked].get("payload", ""))) if picked is not None else None
        )
        if message is None:
            # Not one of the options: what the assistant does with this intent anywhere else.
            return [FollowupAction("utter_how_can_i_help" if intent == "affirm" else "action_order_status")]
        return [
            UserUtteranceReverted(),
            ActionExecuted("action_listen"),
            UserUttered(message["text"], parse_data=message),
        ]
