"""action_case_status: a customer asks how their case is going ("como va mi caso?", "mis casos",
"GES-7F3K2Q9M"); also "en que va mi reembolso?" when a refund or return case of theirs is open
(actions/cases.py asks `answer_from_cases` first).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection
from typing import Any
from zoneinfo import ZoneInfo

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher

from actions.order_status import sender_phone
from bot.adapters.base import BackendUnavailable
from bot.case_tracking import CaseLookup, Found, choice_title, describe_case, look_up_case
from bot.case_types import case_catalogue
from bot.management_ids import find_management_id
from bot.spanish_time import locale_for
from bot.wiring import wiring

logger = logging.getLogger(__name__)

# The catalogue's types "en que va mi reembolso?" is about: a refund, or the return it follows.
REFUND_TYPES = ("refund", "return", "wrong_or_damaged_item")


def management_id_in(tracker: Tracker) -> str | None:
    """A management ID the customer wrote (the entity, else found in the text), as we write it."""
    for value in tracker.get_latest_entity_values("management_id"):
        found = find_management_id(str(value))
        if found:
            return found
    return find_management_id(tracker.latest_message.get("text") or "")


def _look_up(phone: str | None, management_id: str | None, types: Collection[str]) -> tuple[CaseLookup, Any]:
    """The lookup, and the history and customer of the one case found (blocking: in a thread)."""
    found = wiring().backends
    lookup = look_up_case(found.cases, case_catalogue(), phone, management_id, types)
    if lookup.found is not Found.ONE:
        return lookup, None
    try:
        customer = found.crm.customer_by_phone(phone) if phone else None
    except BackendUnavailable:
        customer = None  # the case is still told, in the business's time zone
    return lookup, (found.cases.history(lookup.case.id), customer)


async def answer_from_cases(
    dispatcher: CollectingDispatcher, tracker: Tracker, types: Collection[str] = ()
) -> bool | None:
    """Tell the customer about their case(s); True when answered, False when they have no open
    case (of `types`), None when the case book cannot be read (the caller decides what to say)."""
    phone, management_id = sender_phone(tracker), management_id_in(tracker)
    try:
        lookup, extra = await asyncio.to_thread(_look_up, phone, management_id, types)
    except BackendUnavailable:
        logger.exception("case status: the case book is unavailable")
        return None
    catalogue = case_catalogue()
    if lookup.found is Found.NOT_FOUND:
        dispatcher.utter_message(response="utter_case_not_found")
        return True
    if lookup.found is Found.NONE:
        return False
    if lookup.found is Found.CHOOSE:
        buttons = [
            {
                "title": choice_title(case, catalogue),
                "payload": f'/case_status{{"management_id":"{case.id}"}}',
            }
            for case in lookup.choices
        ]
        dispatcher.utter_message(response="utter_ask_which_case", buttons=buttons, count=str(len(buttons)))
        return True
    history, customer = extra
    settings = wiring().settings
    zone = ZoneInfo((customer.timezone if customer else None) or settings.bot_timezone)
    locale = locale_for(customer.country if customer else None)
    view = describe_case(lookup.case, catalogue, history, wiring().clock.now(), zone, locale)
    dispatcher.utter_message(response=f"utter_case_status_{view.situation}", **view.values)
    return True


class ActionCaseStatus(Action):
    """Find the case the customer asks about (only theirs) and say how it is going."""

    def name(self) -> str:
        return "action_case_status"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        answered = await answer_from_cases(dispatcher, tracker)
        if answered is None:
            dispatcher.utter_message(response="utter_cases_unavailable")
        elif not answered:
            dispatcher.utter_message(response="utter_no_cases")
        return []
