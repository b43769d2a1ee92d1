"""action_open_case: cancel_order, return_request and human_handoff open a case a person follows up.

The case goes through the outbox (bot/outbox.py): when the CRM is down it is queued with its
management ID, the customer is told honestly, and a confirmation follows when it goes through.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher

from actions.order_status import sender_phone
from bot.adapters.base import BackendUnavailable
from bot.backends import backends
from bot.cases import request_case
from bot.outbox import WriteRejected, WriteStatus
from bot.records import CaseKind, normalize_order_id

logger = logging.getLogger(__name__)

# Per kind: the guided explanation (if any), then the message with the management ID.
CASE_RESPONSES: dict[CaseKind, tuple[str | None, str]] = {
    CaseKind.CANCEL_ORDER: ("utter_cancel_order_guide", "utter_cancel_order_case"),
    CaseKind.RETURN_REQUEST: ("utter_return_guide", "utter_return_case"),
    CaseKind.HUMAN_HANDOFF: (None, "utter_handoff_case"),
}


def case_kind(tracker: Tracker) -> CaseKind:
    """The kind named by the latest intent; anything else is a request for a person."""
    intent = (tracker.latest_message.get("intent") or {}).get("name")
    try:
        return CaseKind(intent)
    except ValueError:
        return CaseKind.HUMAN_HANDOFF


def case_details(tracker: Tracker) -> dict[str, str | None]:
    """What the person who follows the case needs: the message and the references in it."""
    details: dict[str, str | None] = {"text": tracker.latest_message.get("text") or ""}
    for entity in tracker.latest_message.get("entities") or []:
        details.setdefault(entity["entity"], str(entity["value"]))
    if details.get("order_id"):
        details["order_id"] = normalize_order_id(details["order_id"]) or details["order_id"]
    return details


class ActionOpenCase(Action):
    """Explain how the request works, open a case and give its management ID."""

    def name(self) -> str:
        return "action_open_case"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        kind = case_kind(tracker)
        guide, opened = CASE_RESPONSES[kind]
        try:
            outcome = await asyncio.to_thread(
                request_case,
                backends(),
                sender_phone(tracker),
                kind,
                case_details(tracker),
                conversation_id=tracker.sender_id,
            )
        except (BackendUnavailable, WriteRejected):
            logger.exception("cases: the case could not be recorded, not even queued")
            dispatcher.utter_message(response="utter_case_failed")
            return []
        if guide:
            dispatcher.utter_message(response=guide)
        if outcome.status is WriteStatus.QUEUED:
            dispatcher.utter_message(response="utter_case_queued", case_id=outcome.management_id)
        else:
            dispatcher.utter_message(response=opened, case_id=outcome.management_id)
        return []
