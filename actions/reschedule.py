"""reschedule_form: move a delivery to another window in three steps (order, window, confirmation).

validate_reschedule_form follows rasa_sdk's form idiom: `required_slots` lists the steps left,
`extract_<step>` takes the customer's message as the answer to the step the form asked (the
slots have custom mappings: an answer is read only by the step that asked), `validate_<step>`
reads it and fills what follows. The action_ask_* actions ask each step; action_reschedule_reset
clears the form's slots when it ends, whichever way. Questions in the middle (order status, a
frequent question) are not answers: nothing is extracted, so Rasa lets the rules answer them,
and then the form asks its step again.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_date
from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.forms import REQUESTED_SLOT
from rasa_sdk.types import DomainDict

from actions.feedback import ask_feedback
from actions.form_steps import unread_message
from actions.order_status import NO_ORDER_RESPONSES, order_reference, sender_phone
from bot.adapters.base import BackendUnavailable
from bot.choices import fold, pick_choice
from bot.date_phrases import DateRequest, find_date, interpret_date, read_answer
from bot.identity import ORDER_OWNER, ORDER_OWNER_TTL
from bot.messaging.keywords import CONFIRM_NO, CONFIRM_YES, LEAVE_FORM
from bot.order_status import Outcome, choice_title, look_up_status
from bot.outbox import WriteRejected
from bot.records import Customer, DeliveryWindow, RescheduleOutcome, WindowSlot, normalize_order_id
from bot.scheduling import (
    Blocker,
    CalendarRules,
    Refusal,
    RescheduleContext,
    RescheduleRequest,
    load_context,
    request_reschedule,
    reschedule_blocker,
)
from bot.spanish_time import day_phrase, locale_for, window_phrase
from bot.wiring import wiring

logger = logging.getLogger(__name__)

FORM = "reschedule_form"
ORDER, WINDOW, CONFIRMED = "reschedule_order", "reschedule_window", "reschedule_confirmed"
OFFER, MISSES = "reschedule_offer", "reschedule_misses"
# A message that named the day before the order was known ("pasame la entrega al jueves a la
# tarde" with several orders on the way): read again once the order is chosen.
WHEN = "reschedule_when"
# What the confirmation needs to queue the change if the CRM/ERP is down by then.
CONTEXT = "reschedule_context"
FORM_SLOTS = (ORDER, WINDOW, CONFIRMED, OFFER, MISSES, CONTEXT, WHEN, "order_choices")
# How a step ends the form without a change (left, nothing to move, systems down), the reason
# already said: reschedule_confirmed False empties required_slots, so rasa_sdk sets requested_slot
# to None and Rasa ends the form. True is the change made (or queued).
ENDED: dict[str, Any] = {CONFIRMED: False, MISSES: 0}

# Not answers to the form: the rules answer them and the form asks its question again.
INTERRUPTIONS = {"order_status", "faq", "help", "bot_challenge", "human_handoff", "share_media"}
# "cancelar", "mejor no", "olvidalo" are `deny` (data/nlu/basics.yml): at the window step a deny
# leaves; at the confirmation a plain "no" means another window, so only these words leave there.
# "salir" is read here because as an intent it would be opt_out ("salir de la lista").
# The words are bot/messaging/keywords.py's LEAVE_FORM, CONFIRM_YES and CONFIRM_NO.

BLOCKER_RESPONSES = {
    Blocker.OUT_FOR_DELIVERY: "utter_reschedule_blocked_out_for_delivery",
    Blocker.DELIVERED: "utter_reschedule_blocked_delivered",
    Blocker.CANCELLED: "utter_reschedule_blocked_cancelled",
    Blocker.NO_ZONE: "utter_reschedule_blocked_no_zone",
}
REFUSAL_RESPONSES = {refusal: f"utter_reschedule_refused_{refusal.value}" for refusal in Refusal}


def _rules() -> CalendarRules:
    settings = wiring().settings
    return CalendarRules(settings.reschedule_cutoff_hour, settings.reschedule_max_days_ahead)


def customer_zone(customer: Customer) -> ZoneInfo:
    return ZoneInfo(customer.timezone or wiring().settings.bot_timezone)


def window_title(window: DeliveryWindow, zone: ZoneInfo, locale: str) -> str:
    """`Mar 1 dic, 14-18 h`: a button title (WhatsApp allows 20 characters)."""
    start, end = window.start.astimezone(zone), window.end.astimezone(zone)
    day = format_date(start.date(), "EEE d MMM", locale=locale).replace(".", "")
    hours = f"{start:%H}-{end:%H} h" if start.minute == end.minute == 0 else f"{start:%H:%M}-{end:%H:%M}"
    return f"{day[:1].upper()}{day[1:]}, {hours}"


def offer_of(slots: list[WindowSlot], customer: Customer) -> list[dict[str, Any]]:
    zone, locale = customer_zone(customer), locale_for(customer.country)
    return [
        {
            "id": slot.id,
            "title": window_title(slot.window, zone, locale),
            "start": slot.window.start.isoformat(),
            "end": slot.window.end.isoformat(),
        }
        for slot in slots
    ]


def _window_of(value: dict[str, Any]) -> DeliveryWindow:
    return DeliveryWindow(datetime.fromisoformat(value["start"]), datetime.fromisoformat(value["end"]))


def context_of(loaded: RescheduleContext, sender: str, now: datetime) -> dict[str, Any]:
    """The customer and the order's current window, kept in the tracker with the chosen order,
    with a signed claim that the order is the sender's (a slot alone could be made up)."""
    window = loaded.order.window
    owner = (
        wiring()
        .identity_signer()
        .issue(ORDER_OWNER, sender, loaded.customer.id, owned_order(loaded.order.id), now, ORDER_OWNER_TTL)
    )
    return {
        "customer_id": loaded.customer.id,
        "owner": owner,
        "timezone": loaded.customer_zone.key,
        "country": loaded.customer.country,
        "window": {"start": window.start.isoformat(), "end": window.end.isoformat()} if window else None,
    }


def owned_order(order_id: str) -> str:
    return f"order:{order_id}"


def context_owns(context: dict[str, Any], sender: str, order_id: str | None, now: datetime) -> bool:
    """Whether the form's context holds a valid claim that `order_id` is `sender`'s customer's."""
    claim = wiring().identity_signer().verify(context.get("owner"), ORDER_OWNER, sender, now)
    return (
        claim is not None
        and order_id is not None
        and claim.customer_id == context.get("customer_id")
        and claim.how == owned_order(order_id)
    )


def confirmation_phrase(window: DeliveryWindow, zone: ZoneInfo, locale: str) -> str:
    """`martes 2 de diciembre, de 14:00 a 18:00`."""
    start, end = window.start.astimezone(zone), window.end.astimezone(zone)
    day = format_date(start.date(), "EEEE d 'de' MMMM", locale=locale)
    return f"{day}, de {start:%H:%M} a {end:%H:%M}"


def _leaves(text: str) -> bool:
    return text in LEAVE_FORM or "cancel" in text or text.startswith("salir")


def _intent(tracker: Tracker) -> str | None:
    return (tracker.latest_message.get("intent") or {}).get("name")


# "no, el otro", "la otra compra", "me equivoque de pedido": the order chosen is not the one meant.
OTHER_ORDER = re.compile(r"\b(?:(?:el|la) otr[oa]|otro pedido|otra compra|(?:me )?equivoque de pedido)\b")


def _other_order(tracker: Tracker) -> bool:
    """A correction of the order once it was chosen (at the window step or the confirmation)."""
    text = fold(tracker.latest_message.get("text") or "")
    return bool(tracker.get_slot(ORDER)) and OTHER_ORDER.search(text) is not None


def _leaving(tracker: Tracker) -> bool:
    """A way of leaving, at any step once the form has asked one ("no, el otro" is a correction)."""
    requested = tracker.get_slot(REQUESTED_SLOT)
    text = fold(tracker.latest_message.get("text") or "")
    if _other_order(tracker):
        return False
    return bool(requested) and (_leaves(text) or (_intent(tracker) == "deny" and requested != CONFIRMED))


def _answer(tracker: Tracker, step: str) -> dict[str, Any]:
    """The customer's message as the answer to `step`, when the form asked that step and the
    message is one; the request that opened the form is read by the first step, the order."""
    requested = tracker.get_slot(REQUESTED_SLOT)
    if (requested or ORDER) != step or not unread_message(tracker, FORM):
        return {}  # another step's answer, or back after an interruption: nothing new to read
    if requested and _intent(tracker) in INTERRUPTIONS and not _leaving(tracker):
        return {}  # not an answer: the rules take this turn
    return {step: tracker.latest_message.get("text") or ""}


def _channel(tracker: Tracker) -> str:
    metadata = tracker.latest_message.get("metadata") or {}
    return str(metadata.get("channel") or tracker.get_latest_input_channel() or "chat")


def _load(phone: str | None, order_id: str, now: datetime) -> RescheduleContext | None:
    found, settings = wiring().backends, wiring().settings
    return load_context(found.crm, found.erp, phone, order_id, _rules(), settings.bot_timezone, now)


class ValidateRescheduleForm(FormValidationAction):
    """rasa_sdk's form idiom: `required_slots` says which steps are left, `extract_<step>` takes
    the message that answers the step the form asked, `validate_<step>` reads it and sets what
    follows (the next step is the first one still empty)."""

    def name(self) -> str:
        return "validate_reschedule_form"

    async def required_slots(
        self,
        domain_slots: list[str],
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
    ) -> list[str]:
        if tracker.get_slot(CONFIRMED) is False:
            return []  # ended without a change (left, nothing to move, systems down): already said
        if not tracker.get_slot(OFFER):
            # Which order comes first: its windows are offered once it is known. With only one
            # order the step is filled at once and never asked.
            return [ORDER]
        return [WINDOW, CONFIRMED]

    # --- the answer to the step asked: the customer's message, when it is one ---

    def extract_reschedule_order(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        return _answer(tracker, ORDER)

    def extract_reschedule_window(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        return _answer(tracker, WINDOW)

    def extract_reschedule_confirmed(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        return _answer(tracker, CONFIRMED)

    # --- what the answer means (`value` is the message; its entities are in the tracker) ---

    async def validate_reschedule_order(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        step = self._start if tracker.get_slot(REQUESTED_SLOT) is None else self._pick_order
        return await self._read(ORDER, step, dispatcher, tracker)

    async def validate_reschedule_window(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        step = self._another_order if _other_order(tracker) else self._pick_window  # "no, el otro"
        return await self._read(WINDOW, step, dispatcher, tracker)

    async def validate_reschedule_confirmed(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        step = self._another_order if _other_order(tracker) else self._confirm
        return await self._read(CONFIRMED, step, dispatcher, tracker)

    @staticmethod
    async def _read(
        slot: str,
        step: Callable[[CollectingDispatcher, Tracker], dict[str, Any]],
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
    ) -> dict[str, Any]:
        """What ends the form at any step (leaving, the CRM/ERP down), else the step's reading.

        The slot is emptied unless the step fills it: it held the message, not an answer yet.
        """
        if not unread_message(tracker, FORM):
            # A value kept from before the form was paused (a handoff): checked back then.
            return {}
        if _leaving(tracker):
            dispatcher.utter_message(response="utter_reschedule_cancelled")
            return {slot: None, **ENDED}
        try:
            return {slot: None, **await asyncio.to_thread(step, dispatcher, tracker)}
        except BackendUnavailable:
            logger.exception("reschedule: CRM/ERP unavailable")
            dispatcher.utter_message(response="utter_reschedule_systems_down")
            return {slot: None, **ENDED}

    # --- step 1: which order ---

    def _start(self, dispatcher: CollectingDispatcher, tracker: Tracker) -> dict[str, Any]:
        """The request that opened the form may already name the order (its number, a product,
        "el último") and the day ("...al jueves a la tarde"): the steps it answers are skipped."""
        found = wiring().backends
        said = tracker.latest_message.get("text") or ""
        written = next(tracker.get_latest_entity_values("order_id"), None)
        lookup = look_up_status(found.crm, found.erp, sender_phone(tracker), written, said)
        if lookup.outcome is Outcome.FOUND:
            # The day, if the request names one, is read once, in the customer's zone.
            return self._order_chosen(dispatcher, tracker, lookup.order.id, said)
        if lookup.outcome is Outcome.CHOOSE:
            options = [{"id": order.id, "title": choice_title(order)} for order in lookup.choices]
            when = said if find_date(said, wiring().clock.now()) else None
            return {"order_choices": options, WHEN: when}
        name = lookup.customer.first_name if lookup.customer else ""
        dispatcher.utter_message(response=NO_ORDER_RESPONSES[lookup.outcome], name=name)
        return ENDED

    def _pick_order(self, dispatcher: CollectingDispatcher, tracker: Tracker) -> dict[str, Any]:
        reference = order_reference(tracker) or ""
        offered = [option["id"] for option in tracker.get_slot("order_choices") or []]
        picked = normalize_order_id(reference) or reference.strip().upper()
        said = tracker.latest_message.get("text") or ""
        # A bare number is an option ("2"), not the 2nd of the month.
        may_date = None if said.strip().isdigit() else said
        if picked not in offered:
            if may_date and find_date(may_date, wiring().clock.now()) is not None:
                # "el jueves a la tarde" before saying which order: kept for the next step.
                dispatcher.utter_message(response="utter_reschedule_date_noted")
                return {WHEN: said}
            return self._missed(dispatcher, tracker, "utter_reschedule_explain_order")
        # The day this answer names, else the one noted while it asked which order.
        return self._order_chosen(dispatcher, tracker, picked, may_date, tracker.get_slot(WHEN))

    def _order_chosen(
        self,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        order_id: str,
        when: str | None = None,
        noted: str | None = None,
    ) -> dict[str, Any]:
        """The order is known: its windows are the offer. If the customer already named a day
        (`when`, their message; else `noted`, an earlier one), it is read at once, as the window
        step would read it; each message is read once."""
        found = wiring().backends
        order = found.erp.order(order_id)
        zone = found.erp.delivery_zone_of(order_id)
        blocker = reschedule_blocker(order, zone)
        if blocker is not None:
            dispatcher.utter_message(response=BLOCKER_RESPONSES[blocker], order_id=order.id)
            return {"order_choices": None, **ENDED}
        loaded = _load(sender_phone(tracker), order_id, wiring().clock.now())
        windows = loaded.calendar.next_windows(exclude=loaded.current_slot_ids()) if loaded else []
        if not windows:
            dispatcher.utter_message(response="utter_reschedule_no_windows", order_id=order_id)
            return {"order_choices": None, **ENDED}
        chosen = {
            ORDER: order_id,
            CONTEXT: context_of(loaded, tracker.sender_id, wiring().clock.now()),
            "order_choices": None,
            OFFER: offer_of(windows, loaded.customer),
            MISSES: 0,
            WHEN: None,
        }
        local_now = wiring().clock.now().astimezone(loaded.customer_zone)
        asked = next(
            (day for text in (when, noted) if text and (day := find_date(text, local_now)) is not None), None
        )
        if asked is not None:
            answer = self._window_asked(dispatcher, asked, loaded)
            if answer is not None:
                return {**chosen, **answer} if answer is not ENDED else {"order_choices": None, **ENDED}
        return chosen

    def _another_order(self, dispatcher: CollectingDispatcher, tracker: Tracker) -> dict[str, Any]:
        """The customer meant another order: the only other one open is taken at once (its
        windows offered), several are offered to choose; the day they named is forgotten."""
        found = wiring().backends
        lookup = look_up_status(found.crm, found.erp, sender_phone(tracker))
        current = tracker.get_slot(ORDER)
        others = [order for order in lookup.choices if order.id != current]
        if not others:
            dispatcher.utter_message(response="utter_reschedule_only_order", order_id=current)
            return {WINDOW: None, MISSES: 0}
        cleared = {ORDER: None, WINDOW: None, OFFER: None, CONTEXT: None, WHEN: None, MISSES: 0}
        if len(others) == 1:
            chosen = self._order_chosen(dispatcher, tracker, others[0].id)
            return {**cleared, **chosen}
        options = [{"id": order.id, "title": choice_title(order)} for order in others]
        return {**cleared, "order_choices": options}

    # --- step 2: which window ---

    def _pick_window(self, dispatcher: CollectingDispatcher, tracker: Tracker) -> dict[str, Any]:
        offer: list[dict[str, Any]] = tracker.get_slot(OFFER) or []
        chosen = self._offered_choice(tracker, offer)
        if chosen is not None:
            return {WINDOW: chosen, MISSES: 0}
        loaded = _load(sender_phone(tracker), tracker.get_slot(ORDER), wiring().clock.now())
        if loaded is None:
            dispatcher.utter_message(response="utter_reschedule_systems_down")
            return ENDED
        said = tracker.latest_message.get("text") or ""
        local_now = wiring().clock.now().astimezone(loaded.customer_zone)
        # An answer to this step may be only a time ("a las 4"); in a sentence, its day phrase.
        asked = read_answer(said, local_now)
        answer = self._window_asked(dispatcher, asked, loaded)
        if answer is None:
            return self._missed(dispatcher, tracker, "utter_reschedule_explain_window")
        return answer

    @staticmethod
    def _window_asked(
        dispatcher: CollectingDispatcher, request: DateRequest | None, loaded: RescheduleContext
    ) -> dict[str, Any] | None:
        """What the day the customer asked for does to the window step: the one window that fits
        is chosen, several that day or the alternatives to a refused day become the new offer
        (ENDED if nothing is left); None if they asked for no day."""
        if request is None:
            return None
        now = wiring().clock.now()
        proposal = loaded.calendar.propose(request, exclude=loaded.current_slot_ids())
        if len(proposal.fitting) == 1:
            [slot] = offer_of(list(proposal.fitting), loaded.customer)
            return {WINDOW: slot, MISSES: 0}
        asked = day_phrase(
            request.day, now.astimezone(loaded.customer_zone).date(), locale_for(loaded.customer.country)
        )
        if proposal.fitting:
            dispatcher.utter_message(response="utter_reschedule_several_that_day", day=asked)
            new_offer = offer_of(list(proposal.fitting), loaded.customer)
        else:
            dispatcher.utter_message(
                response=REFUSAL_RESPONSES[proposal.refusal],
                day=asked,
                reason=proposal.detail,
                max_days=str(loaded.calendar.rules.max_days_ahead),
            )
            new_offer = offer_of(list(proposal.alternatives), loaded.customer)
        if not new_offer:
            dispatcher.utter_message(response="utter_reschedule_no_windows", order_id=loaded.order.id)
            return ENDED
        return {WINDOW: None, OFFER: new_offer, MISSES: 0}

    @staticmethod
    def _offered_choice(tracker: Tracker, offer: list[dict[str, Any]]) -> dict[str, Any] | None:
        by_id = {str(option["id"]): option for option in offer}
        pressed = next(tracker.get_latest_entity_values("window_id"), None)
        if pressed is not None:
            return by_id.get(str(pressed))
        picked = pick_choice(tracker.latest_message.get("text") or "", [option["title"] for option in offer])
        return offer[picked] if picked is not None else None

    # --- step 3: confirmation, and the write ---

    def _confirm(self, dispatcher: CollectingDispatcher, tracker: Tracker) -> dict[str, Any]:
        intent, text = _intent(tracker), fold(tracker.latest_message.get("text") or "")
        if intent == "deny" or text in CONFIRM_NO or text == "/deny":
            dispatcher.utter_message(response="utter_reschedule_choose_again")
            return {WINDOW: None, MISSES: 0}
        if not (intent == "affirm" or text in CONFIRM_YES):
            if (
                intent in ("inform", "reschedule_delivery")
                or interpret_date(text, wiring().clock.now()) is not None
            ):
                # "mejor el viernes": a change of mind answered like the window step.
                return self._pick_window(dispatcher, tracker)
            return self._missed(dispatcher, tracker, "utter_reschedule_explain_confirm")

        now = wiring().clock.now()
        phone, order_id = sender_phone(tracker), tracker.get_slot(ORDER)
        context: dict[str, Any] = tracker.get_slot(CONTEXT) or {}
        try:
            loaded = _load(phone, order_id, now)
        except BackendUnavailable:
            # The change can still be queued with what the form learned when the order was chosen,
            # if the claim signed then still says this order is this sender's.
            if not context_owns(context, tracker.sender_id, order_id, now):
                raise
            logger.warning("reschedule: CRM/ERP unavailable at the confirmation; queueing the change")
            loaded = None
        else:
            if loaded is None:
                dispatcher.utter_message(response="utter_reschedule_systems_down")
                return ENDED
        chosen = tracker.get_slot(WINDOW)
        slot = WindowSlot(int(chosen["id"]), "", _window_of(chosen), 0, 0)
        if loaded is not None:
            customer_id, old_window = loaded.customer.id, loaded.order.window
            zone, locale = loaded.customer_zone, locale_for(loaded.customer.country)
        else:
            customer_id, old_window = (
                context["customer_id"],
                _window_of(context["window"]) if context.get("window") else None,
            )
            zone, locale = (
                ZoneInfo(context.get("timezone") or wiring().settings.bot_timezone),
                locale_for(context.get("country")),
            )
        request = RescheduleRequest(
            order_id=order_id,
            customer_id=customer_id,
            old_window=old_window,
            slot_id=slot.id,
            new_window=slot.window,
            phone=phone,
            channel=_channel(tracker),
            conversation_id=tracker.sender_id,
            notice=confirmation_phrase(slot.window, zone, locale),
        )
        try:
            graph = wiring()
            result = request_reschedule(graph.erp, graph.outbox, request, now)
        except WriteRejected:
            logger.exception("reschedule: the ERP refused the change")
            dispatcher.utter_message(response="utter_reschedule_systems_down")
            return ENDED
        if result.queued:
            dispatcher.utter_message(
                response="utter_reschedule_queued",
                order_id=order_id,
                window=confirmation_phrase(slot.window, zone, locale),
                case_id=result.change_id,
            )
            return {CONFIRMED: True, MISSES: 0}
        if result.outcome is RescheduleOutcome.DONE:
            dispatcher.utter_message(
                response="utter_reschedule_done",
                order_id=order_id,
                window=window_phrase(slot.window, zone, now, locale),
                case_id=result.change_id,
            )
            return {CONFIRMED: True, MISSES: 0}
        if result.outcome is RescheduleOutcome.WINDOW_FULL:
            if loaded is None:  # the ERP answered the write, so it answers reads again
                loaded = _load(phone, order_id, now)
            windows = (
                loaded.calendar.next_windows(exclude=[slot.id, *loaded.current_slot_ids()]) if loaded else []
            )
            if windows:
                dispatcher.utter_message(response="utter_reschedule_window_taken")
                return {WINDOW: None, OFFER: offer_of(windows, loaded.customer), MISSES: 0}
            dispatcher.utter_message(response="utter_reschedule_no_windows", order_id=order_id)
            return ENDED
        dispatcher.utter_message(response="utter_reschedule_blocked_out_for_delivery", order_id=order_id)
        return ENDED

    # --- answers that are none of the expected ones ---

    @staticmethod
    def _missed(dispatcher: CollectingDispatcher, tracker: Tracker, explanation: str) -> dict[str, Any]:
        """First miss: ask again; second in a row: explain what fits and offer a person."""
        misses = int(tracker.get_slot(MISSES) or 0) + 1
        if misses >= 2:
            dispatcher.utter_message(response=explanation)
            return {MISSES: 0}
        dispatcher.utter_message(response="utter_reschedule_not_understood")
        return {MISSES: misses}


class ActionAskRescheduleOrder(Action):
    """Step 1 of 3: which of the customer's open orders."""

    def name(self) -> str:
        return "action_ask_reschedule_order"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        options = tracker.get_slot("order_choices") or []
        buttons = [
            {"title": option["title"], "payload": f'/inform{{"order_id":"{option["id"]}"}}'}
            for option in options
        ]
        dispatcher.utter_message(response="utter_ask_reschedule_order", buttons=buttons)
        return []


class ActionAskRescheduleWindow(Action):
    """Step 2 of 3: the next windows as options; a day written in words also works."""

    def name(self) -> str:
        return "action_ask_reschedule_window"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        offer = tracker.get_slot(OFFER) or []
        buttons = [
            {"title": option["title"], "payload": f'/inform{{"window_id":"{option["id"]}"}}'}
            for option in offer
        ]
        dispatcher.utter_message(
            response="utter_ask_reschedule_window", buttons=buttons, order_id=tracker.get_slot(ORDER) or ""
        )
        return []


class ActionAskRescheduleConfirmed(Action):
    """Step 3 of 3: every write is confirmed first."""

    def name(self) -> str:
        return "action_ask_reschedule_confirmed"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        chosen = tracker.get_slot(WINDOW) or {}
        try:
            customer = await asyncio.to_thread(
                wiring().backends.crm.customer_by_phone, sender_phone(tracker) or ""
            )
        except BackendUnavailable:
            customer = None
        zone = customer_zone(customer) if customer else ZoneInfo(wiring().settings.bot_timezone)
        locale = locale_for(customer.country if customer else None)
        dispatcher.utter_message(
            response="utter_ask_reschedule_confirmed",
            window=confirmation_phrase(_window_of(chosen), zone, locale) if chosen else "",
        )
        return []


class ActionRescheduleReset(Action):
    """Clears the form's slots when it ends (done, left or stopped), so the next one starts fresh."""

    def name(self) -> str:
        return "action_reschedule_reset"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        if tracker.get_slot(CONFIRMED) is True:  # moved (or queued): the flow ended well
            ask_feedback(dispatcher, tracker, "reschedule_delivery")
        return [SlotSet(slot, None) for slot in FORM_SLOTS]
