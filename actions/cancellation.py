"""action_cancel_order and action_confirm_cancellation: the customer cancels an order that has
not shipped yet, after confirming; a shipped or delivered one gets its options instead.

The service is bot/cancellation.py; the write goes through the outbox. When the orders cannot be
read at all, the request becomes a cancellation case as before (actions/cases.py), queued with
its management ID if need be: never lost.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.cases import ActionOpenCase
from actions.clarify import last_offered_buttons
from actions.order_status import offer_orders, order_reference, sender_phone
from bot.adapters.base import BackendUnavailable
from bot.cancellation import CancelLookup, Situation, cancel_order, find_order_to_cancel
from bot.outbox import WriteRejected, WriteStatus
from bot.wiring import wiring

logger = logging.getLogger(__name__)

# What to say for each situation but CONFIRM and CHOOSE (their own steps below).
SITUATION_RESPONSES = {
    Situation.SHIPPED: "utter_cancel_shipped",
    Situation.DELIVERED: "utter_cancel_delivered",
    Situation.CANCELLED: "utter_cancel_already",
    Situation.NOT_FOUND: "utter_order_not_found",
    Situation.NO_OPEN_ORDERS: "utter_cancel_nothing_open",
    Situation.UNKNOWN_CUSTOMER: "utter_unknown_customer",
}


def tell(dispatcher: CollectingDispatcher, lookup: CancelLookup) -> None:
    """The message for a situation in which nothing is cancelled."""
    order, customer = lookup.order, lookup.customer
    dispatcher.utter_message(
        response=SITUATION_RESPONSES[lookup.situation],
        order_id=order.id if order else "",
        items=order.items if order else "",
        name=customer.first_name if customer else "",
    )


def offered_return(tracker: Tracker) -> bool:
    """Whether the assistant's latest message offered a return first (utter_cancel_delivered)."""
    buttons = last_offered_buttons(tracker)
    return bool(buttons) and buttons[0].get("payload") == "/return_request"


async def _find(tracker: Tracker, order_ref: str | None) -> CancelLookup:
    found = wiring().backends
    text = tracker.latest_message.get("text") or ""
    return await asyncio.to_thread(
        find_order_to_cancel, found.crm, found.erp, sender_phone(tracker), order_ref, text
    )


class ActionCancelOrder(Action):
    """Find the order the customer wants to cancel and ask them to confirm, or say what instead."""

    def name(self) -> str:
        return "action_cancel_order"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        try:
            lookup = await _find(tracker, order_reference(tracker))
        except BackendUnavailable:
            logger.exception("cancellation: CRM/ERP unavailable, the request becomes a case")
            return await ActionOpenCase().run(dispatcher, tracker, domain)
        if lookup.situation is Situation.CONFIRM:
            order = lookup.order
            dispatcher.utter_message(
                response="utter_ask_cancel_confirm", order_id=order.id, items=order.items
            )
            return [SlotSet("cancel_order_id", order.id), SlotSet("order_choices", None)]
        if lookup.situation is Situation.CHOOSE:
            options = offer_orders(
                dispatcher, "utter_ask_which_order_to_cancel", lookup.choices, lookup.customer, "cancel_order"
            )
            return [SlotSet("cancel_order_id", None), SlotSet("order_choices", options)]
        tell(dispatcher, lookup)
        return [SlotSet("cancel_order_id", None), SlotSet("order_choices", None)]


class ActionConfirmCancellation(Action):
    """The customer's "sí" or "no" to cancelling: cancel through the outbox, or keep the order."""

    def name(self) -> str:
        return "action_confirm_cancellation"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        order_id = tracker.get_slot("cancel_order_id")
        intent = (tracker.latest_message.get("intent") or {}).get("name")
        if not order_id:
            # "Sí" to the offer of a return (a delivered order): the guided return
            # (actions/returns.py); any other "sí" or "no" to a message that asked nothing to
            # confirm: nothing to do.
            if intent == "affirm" and offered_return(tracker):
                return [FollowupAction("return_form")]
            dispatcher.utter_message(response="utter_how_can_i_help")
            return []
        cleared = [SlotSet("cancel_order_id", None)]
        if intent != "affirm":
            dispatcher.utter_message(response="utter_cancel_kept", order_id=order_id)
            return cleared
        try:
            # Read again: whose order it is, and whether it shipped since the question.
            lookup = await _find(tracker, order_id)
        except BackendUnavailable:
            # Nothing was acknowledged yet: say so honestly rather than cancel unread.
            logger.exception("cancellation: CRM/ERP unavailable at the confirmation")
            dispatcher.utter_message(response="utter_cancel_failed")
            return cleared
        if lookup.situation is not Situation.CONFIRM:
            if lookup.situation is Situation.SHIPPED:
                dispatcher.utter_message(response="utter_cancel_too_late", order_id=order_id)
            else:
                tell(dispatcher, lookup)
            return cleared
        return cleared + await self._cancel(dispatcher, tracker, lookup, order_id)

    @staticmethod
    async def _cancel(
        dispatcher: CollectingDispatcher, tracker: Tracker, lookup: CancelLookup, order_id: str
    ) -> list[EventType]:
        found = wiring().backends
        phone = sender_phone(tracker)
        try:
            result = await asyncio.to_thread(
                cancel_order,
                found.erp,
                found.outbox,
                lookup.order,
                phone,
                tracker.sender_id,
                wiring().clock.now(),
            )
        except (BackendUnavailable, WriteRejected):
            logger.exception("cancellation: could not be recorded, not even queued")
            dispatcher.utter_message(response="utter_cancel_failed")
            return []
        if result.too_late:
            dispatcher.utter_message(response="utter_cancel_too_late", order_id=order_id)
            return []
        outcome = result.outcome
        if outcome.status is WriteStatus.QUEUED:
            dispatcher.utter_message(
                response="utter_cancel_queued", order_id=order_id, management_id=outcome.management_id
            )
            return []
        dispatcher.utter_message(
            response="utter_cancel_done", order_id=order_id, management_id=outcome.management_id
        )
        if lookup.paid:
            dispatcher.utter_message(response="utter_cancel_refund_note")
        return []
