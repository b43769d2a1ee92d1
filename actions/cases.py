"""action_open_case: requests and problems that open a case a person follows up (or hand over).

return_request and wrong_or_damaged_item (into the return flow), order_not_arrived,
payment_problem and refund_status (answered from the customer's open refund or return case when
there is one: actions/case_status.py), and cancel_order when the orders cannot be read
(actions/cancellation.py cancels an order itself otherwise). The case goes through the outbox
(bot/outbox.py): when the CRM is down it is queued with its management ID, the customer is told
honestly, and a confirmation follows when it goes through.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher

from actions.case_status import REFUND_TYPES, answer_from_cases
from actions.handoff import handoff_events
from actions.order_status import sender_phone
from bot.adapters.base import BackendUnavailable
from bot.cases import request_case
from bot.handoff.rules import Reason, Signals, handover_reason, parse_amount
from bot.outbox import WriteRejected, WriteStatus
from bot.payments import PersonReason, needs_person_for
from bot.records import CaseKind, normalize_order_id
from bot.wiring import wiring

logger = logging.getLogger(__name__)

# Per kind: the guided explanation (if any), then the message with the management ID.
CASE_RESPONSES: dict[CaseKind, tuple[str | None, str]] = {
    CaseKind.CANCEL_ORDER: ("utter_cancel_order_guide", "utter_cancel_order_case"),
    CaseKind.RETURN_REQUEST: ("utter_return_guide", "utter_return_case"),
    CaseKind.ORDER_NOT_ARRIVED: ("utter_order_not_arrived_guide", "utter_order_not_arrived_case"),
    # The guide is the card data rule: nothing of the card is needed to check a charge.
    CaseKind.PAYMENT_PROBLEM: ("utter_payment_problem_guide", "utter_payment_problem_case"),
    # The refund's state cannot be read from here yet: the guide says so before the case.
    CaseKind.REFUND_STATUS: ("utter_refund_status_guide", "utter_refund_status_case"),
}

# Intents that open a case of another kind, with their own guide: a wrong or damaged item is
# a return (the same case, the same follow-up), with an apology instead of the return rules.
INTENT_KINDS: dict[str, tuple[CaseKind, str]] = {
    "wrong_or_damaged_item": (CaseKind.RETURN_REQUEST, "utter_wrong_item_guide"),
}

# Kinds whose case message already offers a person (a button): when the case is only queued,
# or cannot be recorded at all, the offer follows the message that replaces it.
OFFER_PERSON = {CaseKind.ORDER_NOT_ARRIVED, CaseKind.PAYMENT_PROBLEM, CaseKind.REFUND_STATUS}


def case_kind(tracker: Tracker) -> CaseKind:
    """The kind named by the latest intent; anything else is read as a return (the broader request)."""
    intent = (tracker.latest_message.get("intent") or {}).get("name")
    if intent in INTENT_KINDS:
        return INTENT_KINDS[intent][0]
    try:
        kind = CaseKind(intent)
    except ValueError:
        return CaseKind.RETURN_REQUEST
    return kind if kind in CASE_RESPONSES else CaseKind.RETURN_REQUEST


def case_responses(tracker: Tracker) -> tuple[str | None, str]:
    """The guide and the case message for the latest intent."""
    intent = (tracker.latest_message.get("intent") or {}).get("name")
    guide, opened = CASE_RESPONSES[case_kind(tracker)]
    if intent in INTENT_KINDS:
        guide = INTENT_KINDS[intent][1]
    return guide, opened


def handover_instead(tracker: Tracker, customer_id: str | None) -> Reason | None:
    """A rule of bot/handoff_config.yml that sends this request to a person instead of a case."""
    amounts = [parse_amount(value) for value in tracker.get_latest_entity_values("amount")]
    signals = Signals(
        intent=(tracker.latest_message.get("intent") or {}).get("name"),
        text=tracker.latest_message.get("text") or "",  # "…, pasame con una persona"
        amount=max((a for a in amounts if a is not None), default=None),
        customer_id=customer_id,
    )
    return handover_reason(signals, wiring().handoff.config)


def case_details(tracker: Tracker) -> dict[str, str | None]:
    """What the person who follows the case needs: the message and the references in it."""
    details: dict[str, str | None] = {"text": tracker.latest_message.get("text") or ""}
    for entity in tracker.latest_message.get("entities") or []:
        details.setdefault(entity["entity"], str(entity["value"]))
    if details.get("order_id"):
        details["order_id"] = normalize_order_id(details["order_id"]) or details["order_id"]
    intent = (tracker.latest_message.get("intent") or {}).get("name")
    if intent in INTENT_KINDS:
        # The kind is shared (a wrong item is a return case); the catalogue types it by intent.
        details["intent"] = intent
    return details


class ActionOpenCase(Action):
    """Explain how the request works, open a case and give its management ID."""

    def name(self) -> str:
        return "action_open_case"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        if (tracker.latest_message.get("intent") or {}).get("name") == CaseKind.HUMAN_HANDOFF.value:
            # A rule written before the handoff existed (asking for a person opened a case):
            # a person takes the chat now.
            return handoff_events(Reason.CUSTOMER_REQUEST)
        kind = case_kind(tracker)
        if kind is CaseKind.REFUND_STATUS and await answer_from_cases(dispatcher, tracker, REFUND_TYPES):
            # A refund or return case of theirs is open: its status answers the question. With
            # none (or the case book down) a follow-up case is opened as before.
            return []
        guide, opened = case_responses(tracker)
        phone = sender_phone(tracker)
        try:
            customer = (
                await asyncio.to_thread(wiring().backends.crm.customer_by_phone, phone) if phone else None
            )
        except BackendUnavailable:
            customer = None
        text = tracker.latest_message.get("text") or ""
        if kind is CaseKind.PAYMENT_PROBLEM and needs_person_for(text) is PersonReason.DISPUTE:
            # A charge the customer disputes ("me cobraron dos veces") goes to a person with
            # what was said, as when it comes with "ya pagué" (actions/payments.py).
            if guide:
                dispatcher.utter_message(response=guide)
            dispatcher.utter_message(response="utter_payment_dispute_person")
            return handoff_events(Reason.DISPUTE, text)
        reason = handover_instead(tracker, customer.id if customer else None)
        if reason is not None:
            return handoff_events(reason)
        found = wiring().backends
        try:
            outcome = await asyncio.to_thread(
                request_case,
                found.cases,
                wiring().outbox,
                phone,
                kind,
                case_details(tracker),
                conversation_id=tracker.sender_id,
                now=wiring().clock.now(),
            )
        except (BackendUnavailable, WriteRejected):
            logger.exception("cases: the case could not be recorded, not even queued")
            dispatcher.utter_message(response="utter_case_failed")
            if kind in OFFER_PERSON:
                dispatcher.utter_message(response="utter_case_offer_human")
            return []
        if guide:
            dispatcher.utter_message(response=guide)
        if outcome.status is WriteStatus.QUEUED:
            dispatcher.utter_message(response="utter_case_queued", case_id=outcome.management_id)
            if kind in OFFER_PERSON:
                dispatcher.utter_message(response="utter_case_offer_human")
        else:
            dispatcher.utter_message(response=opened, case_id=outcome.management_id)
        return []
