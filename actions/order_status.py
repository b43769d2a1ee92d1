"""action_order_status: tells customers where their order is."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.feedback import ask_feedback
from bot.adapters.base import BackendUnavailable
from bot.choices import pick_choice
from bot.order_status import Outcome, choice_title, describe, look_up_status
from bot.phone import InvalidPhoneNumber, normalize_phone
from bot.records import Customer, Order
from bot.wiring import wiring

logger = logging.getLogger(__name__)

# What to say when there is no single order to describe.
NO_ORDER_RESPONSES = {
    Outcome.NO_OPEN_ORDERS: "utter_no_open_orders",
    Outcome.NOT_FOUND: "utter_order_not_found",
    Outcome.UNKNOWN_CUSTOMER: "utter_unknown_customer",
}


def sender_phone(tracker: Tracker) -> str | None:
    """The customer's phone, as the channel identified the sender; None if it is not a phone."""
    try:
        return normalize_phone(tracker.sender_id, wiring().settings.default_country)
    except InvalidPhoneNumber:
        return None


def order_reference(tracker: Tracker) -> str | None:
    """An order number written in the latest message, or the one picked from offered choices."""
    written = next(tracker.get_latest_entity_values("order_id"), None)
    if written:
        return written
    offered: list[dict[str, str]] = tracker.get_slot("order_choices") or []
    text = tracker.latest_message.get("text") or ""
    picked = pick_choice(text, [option["title"] for option in offered])
    return offered[picked]["id"] if picked is not None else None


def offer_orders(
    dispatcher: CollectingDispatcher,
    response: str,
    orders: Iterable[Order],
    customer: Customer,
    intent: str = "inform",
) -> list[dict[str, str]]:
    """Send `response` with one button per order (payload /<intent>{"order_id": …}); the options
    as the `order_choices` slot keeps them, so "2" or "la segunda" can be read."""
    options = [{"id": order.id, "title": choice_title(order)} for order in orders]
    buttons = [
        {"title": option["title"], "payload": f'/{intent}{{"order_id":"{option["id"]}"}}'}
        for option in options
    ]
    dispatcher.utter_message(
        response=response, buttons=buttons, count=str(len(options)), name=customer.first_name
    )
    return options


class ActionOrderStatus(Action):
    """Identify the sender, find the order they mean and say where it is."""

    def name(self) -> str:
        return "action_order_status"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        settings = wiring().settings
        found = wiring().backends
        phone, reference = sender_phone(tracker), order_reference(tracker)
        try:
            said = tracker.latest_message.get("text") or ""  # "¿y las zapatillas?" names the order
            lookup = await asyncio.to_thread(look_up_status, found.crm, found.erp, phone, reference, said)
        except BackendUnavailable:
            logger.exception("order status: CRM/ERP unavailable")
            dispatcher.utter_message(response="utter_systems_down")
            # The message offers a person ("asesor"): if accepted, the handoff says why.
            return [SlotSet("handoff_reason", "backend_unavailable")]

        if lookup.outcome is Outcome.FOUND:
            now = wiring().clock.now()
            view = describe(lookup.order, lookup.customer, now, settings.bot_timezone)
            dispatcher.utter_message(response=f"utter_order_{view.situation}", **view.values)
            ask_feedback(dispatcher, tracker, "order_status")
            return [SlotSet("order_choices", None)]

        if lookup.outcome is Outcome.CHOOSE:
            options = offer_orders(dispatcher, "utter_ask_which_order", lookup.choices, lookup.customer)
            return [SlotSet("order_choices", options)]

        name = lookup.customer.first_name if lookup.customer else ""
        dispatcher.utter_message(response=NO_ORDER_RESPONSES[lookup.outcome], name=name)
        return [SlotSet("order_choices", None)]
