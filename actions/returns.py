"""return_form: a guided return or exchange (order, product, reason, photos, refund or exchange,
confirmation), opened as a case through the outbox with its management ID and the pickup or
drop-off instructions; an order that cannot come back gets why and its options.

validate_return_form follows the form idiom of actions/reschedule.py: `extract_<step>` takes the
customer's message as the answer to the step the form asked (custom mappings), `validate_<step>`
reads it and fills what follows; the request that opened the form may answer several steps at
once ("quiero devolver la licuadora, vino rota": the order and the reason). The rules are
bot/returns.py (eligibility from the ERP, bot/return_rules.yml, bot/case_types.yml).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_date
from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.forms import REQUESTED_SLOT
from rasa_sdk.types import DomainDict

from actions.cases import ActionOpenCase, handover_instead
from actions.form_steps import unread_message
from actions.handoff import handoff_events
from actions.order_status import order_reference, sender_phone
from actions.payments import media_of
from bot.adapters.base import BackendUnavailable
from bot.case_types import case_catalogue
from bot.choices import fold, pick_choice
from bot.clock import local_day
from bot.messaging.keywords import CONFIRM_YES, LEAVE_FORM
from bot.order_status import choice_title
from bot.outbox import WriteRejected, WriteStatus
from bot.records import Customer, Order, normalize_order_id
from bot.returns import (
    Eligibility,
    Found,
    Ineligible,
    Reason,
    Resolution,
    ReturnRequest,
    check_return,
    find_order_to_return,
    line_named,
    open_return,
    read_reason,
    read_resolution,
    return_rules,
    says_no_photos,
)
from bot.spanish_time import locale_for
from bot.wiring import wiring

logger = logging.getLogger(__name__)

FORM = "return_form"
ORDER, ITEM, REASON = "return_order", "return_item", "return_reason"
PHOTOS, RESOLUTION, EXCHANGE_FOR, CONFIRMED = (
    "return_photos",
    "return_resolution",
    "return_exchange_for",
    "return_confirmed",
)
ITEMS = "return_items"  # the order's products offered as options [name, ...]
SAID = "return_said"  # the request as the customer wrote it, for the person who works the case
FORM_SLOTS = (ORDER, ITEM, REASON, PHOTOS, RESOLUTION, EXCHANGE_FOR, CONFIRMED, ITEMS, SAID, "order_choices")
# The form ends without a case (left, cannot come back, systems down), the reason already said:
# return_confirmed False empties required_slots and Rasa ends the form.
ENDED: dict[str, Any] = {CONFIRMED: False}

# Not answers to the form: the rules answer them and the form asks its question again.
INTERRUPTIONS = {"order_status", "faq", "help", "bot_challenge", "human_handoff"}

NOT_ELIGIBLE_RESPONSES = {refusal: f"utter_return_not_eligible_{refusal.value}" for refusal in Ineligible}
NO_ORDER_RESPONSES = {
    Found.NOT_FOUND: "utter_order_not_found",
    Found.NO_ORDERS: "utter_return_no_orders",
    Found.UNKNOWN_CUSTOMER: "utter_unknown_customer",
}
# The Spanish of each choice, as the confirmation and the case read it.
REASON_LABELS = {
    Reason.DAMAGED: "llegó dañado o con fallas",
    Reason.WRONG_ITEM: "no es el producto que pediste",
    Reason.CHANGED_MIND: "ya no lo quieres",
}
RESOLUTION_LABELS = {
    Resolution.REFUND: "el reembolso de tu dinero",
    Resolution.VOUCHER: "un vale de compra",
    Resolution.EXCHANGE: "el cambio por otro producto",
}


def _choice(tracker: Tracker, entity: str, kind: type, options: list, text: str, reader: Callable):
    """A tapped button's value (its entity), a number or title of the options, or the words."""
    tapped = next(tracker.get_latest_entity_values(entity), None)
    if tapped:
        try:
            return kind(tapped)
        except ValueError:
            return None
    picked = pick_choice(text, [str(option) for option in options]) if text.strip().isdigit() else None
    if picked is not None:
        return list(kind)[picked]
    return reader(text)


def _intent(tracker: Tracker) -> str | None:
    return (tracker.latest_message.get("intent") or {}).get("name")


def _leaving(tracker: Tracker) -> bool:
    """A way of leaving once the form asked a step; at the photos step a "no" means no photos,
    and at the confirmation a "no" is the answer (it leaves too, without a case)."""
    requested = tracker.get_slot(REQUESTED_SLOT)
    text = fold(tracker.latest_message.get("text") or "")
    if not requested:
        return False
    said = tracker.latest_message.get("text") or ""
    if (requested == REASON and read_reason(said)) or (requested == RESOLUTION and read_resolution(said)):
        return False  # "ya no lo quiero" (read as a deny) answers why; "no, mejor un vale" what instead
    leaves = text in LEAVE_FORM or text.startswith("salir") or text.startswith("cancel")
    return leaves or (_intent(tracker) == "deny" and requested not in (PHOTOS, CONFIRMED))


def _answer(tracker: Tracker, step: str) -> dict[str, Any]:
    """The customer's message as the answer to `step`, when the form asked it; the request that
    opened the form is read by the first step, the order."""
    requested = tracker.get_slot(REQUESTED_SLOT)
    if (requested or ORDER) != step or not unread_message(tracker, FORM):
        return {}
    if requested and _intent(tracker) in INTERRUPTIONS and not _leaving(tracker):
        return {}
    if requested and _intent(tracker) == "share_media" and step != PHOTOS:
        return {}  # a photo at another step: acknowledged by a rule, the step asked again
    return {step: tracker.latest_message.get("text") or ""}


def _zone(customer: Customer) -> ZoneInfo:
    return ZoneInfo(customer.timezone or wiring().settings.bot_timezone)


def _day(day, customer: Customer) -> str:
    return format_date(day, "d 'de' MMMM", locale=locale_for(customer.country)) if day else ""


def _checks(resolution: Resolution | None) -> tuple[str, ...]:
    return case_catalogue().types[(resolution or Resolution.REFUND).case_type].eligibility


def _eligibility(order: Order, line_name: str, customer: Customer, reason: Reason | None, resolution=None):
    line = line_named(order, line_name) or order.products[0]
    today = local_day(wiring().clock.now(), _zone(customer).key)
    return check_return(order, line, return_rules(), _checks(resolution), today, _zone(customer), reason)


def tell_not_eligible(
    dispatcher: CollectingDispatcher, order: Order, item: str, customer: Customer, result: Eligibility
) -> None:
    """Why it cannot come back, in plain Spanish, and the options (a person among them)."""
    dispatcher.utter_message(
        response=NOT_ELIGIBLE_RESPONSES[result.refused],
        order_id=order.id,
        item=item,
        category=result.category.label,
        days=str(result.category.return_window_days),
        delivered_on=_day(result.delivered_on, customer),
        last_day=_day(result.last_day, customer),
    )


class _CaseInstead(Exception):
    """The guided flow cannot start (the number is not on file, or the CRM/ERP cannot be read):
    the request becomes a return case a person follows up, as before the flow existed."""


class ValidateReturnForm(FormValidationAction):
    """The steps left, in order: which order, which product, why, photos (damaged or wrong),
    refund, voucher or exchange (and for what), the confirmation."""

    def name(self) -> str:
        return "validate_return_form"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        """The request that opens the form goes to a person instead when a rule of
        bot/handoff_config.yml says so (a VIP customer, an amount over the threshold, angry or
        urgent words, "pasame con una persona" inside the request), as a case request would."""
        if tracker.get_slot(REQUESTED_SLOT) is None and unread_message(tracker, FORM):
            phone = sender_phone(tracker)
            try:
                crm = wiring().backends.crm
                customer = await asyncio.to_thread(crm.customer_by_phone, phone) if phone else None
            except BackendUnavailable:
                customer = None
            reason = handover_instead(tracker, customer.id if customer else None)
            if reason is not None:
                return [SlotSet(CONFIRMED, False), SlotSet(REQUESTED_SLOT, None), *handoff_events(reason)]
        try:
            return await super().run(dispatcher, tracker, domain)
        except _CaseInstead:
            # Never lost: the case through the outbox (queued if the case book is down too).
            events = await ActionOpenCase().run(dispatcher, tracker, domain)
            return [SlotSet(CONFIRMED, False), SlotSet(REQUESTED_SLOT, None), *events]

    async def required_slots(
        self,
        domain_slots: list[str],
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
    ) -> list[str]:
        if tracker.get_slot(CONFIRMED) is False:
            return []  # ended without a case: already said why
        steps = [ORDER, ITEM, REASON]
        reason = tracker.get_slot(REASON)
        if reason in (Reason.DAMAGED.value, Reason.WRONG_ITEM.value):
            steps.append(PHOTOS)
        steps.append(RESOLUTION)
        if tracker.get_slot(RESOLUTION) == Resolution.EXCHANGE.value:
            steps.append(EXCHANGE_FOR)
        return [*steps, CONFIRMED]

    # --- the answer to the step asked ---

    def extract_return_order(self, dispatcher, tracker: Tracker, domain: DomainDict) -> dict[str, Any]:
        return _answer(tracker, ORDER)

    def extract_return_item(self, dispatcher, tracker: Tracker, domain: DomainDict) -> dict[str, Any]:
        return _answer(tracker, ITEM)

    def extract_return_reason(self, dispatcher, tracker: Tracker, domain: DomainDict) -> dict[str, Any]:
        return _answer(tracker, REASON)

    def extract_return_photos(self, dispatcher, tracker: Tracker, domain: DomainDict) -> dict[str, Any]:
        return _answer(tracker, PHOTOS)

    def extract_return_resolution(self, dispatcher, tracker: Tracker, domain: DomainDict) -> dict[str, Any]:
        return _answer(tracker, RESOLUTION)

    def extract_return_exchange_for(self, dispatcher, tracker: Tracker, domain: DomainDict) -> dict[str, Any]:
        return _answer(tracker, EXCHANGE_FOR)

    def extract_return_confirmed(self, dispatcher, tracker: Tracker, domain: DomainDict) -> dict[str, Any]:
        return _answer(tracker, CONFIRMED)

    # --- what each answer means ---

    async def validate_return_order(self, value, dispatcher, tracker: Tracker, domain) -> dict[str, Any]:
        step = self._start if tracker.get_slot(REQUESTED_SLOT) is None else self._pick_order
        return await self._read(ORDER, step, dispatcher, tracker)

    async def validate_return_item(self, value, dispatcher, tracker: Tracker, domain) -> dict[str, Any]:
        return await self._read(ITEM, self._pick_item, dispatcher, tracker)

    async def validate_return_reason(self, value, dispatcher, tracker: Tracker, domain) -> dict[str, Any]:
        return await self._read(REASON, self._pick_reason, dispatcher, tracker)

    async def validate_return_photos(self, value, dispatcher, tracker: Tracker, domain) -> dict[str, Any]:
        return await self._read(PHOTOS, self._photos, dispatcher, tracker)

    async def validate_return_resolution(self, value, dispatcher, tracker: Tracker, domain) -> dict[str, Any]:
        return await self._read(RESOLUTION, self._pick_resolution, dispatcher, tracker)

    async def validate_return_exchange_for(
        self, value, dispatcher, tracker: Tracker, domain
    ) -> dict[str, Any]:
        return await self._read(EXCHANGE_FOR, self._exchange_for, dispatcher, tracker)

    async def validate_return_confirmed(self, value, dispatcher, tracker: Tracker, domain) -> dict[str, Any]:
        return await self._read(CONFIRMED, self._confirm, dispatcher, tracker)

    @staticmethod
    async def _read(
        slot: str,
        step: Callable[[CollectingDispatcher, Tracker], dict[str, Any]],
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
    ) -> dict[str, Any]:
        """What ends the form at any step (leaving, the CRM/ERP down), else the step's reading.
        The slot is emptied unless the step fills it: it held the message, not an answer yet."""
        if not unread_message(tracker, FORM):
            return {}
        if _leaving(tracker):
            dispatcher.utter_message(response="utter_return_cancelled")
            return {slot: None, **ENDED}
        try:
            return {slot: None, **await asyncio.to_thread(step, dispatcher, tracker)}
        except BackendUnavailable as error:
            if slot == ORDER and tracker.get_slot(REQUESTED_SLOT) is None:
                logger.exception("returns: CRM/ERP unavailable at the start, the request becomes a case")
                raise _CaseInstead from error
            logger.exception("returns: CRM/ERP unavailable")
            dispatcher.utter_message(response="utter_return_systems_down")
            return {slot: None, **ENDED}

    # --- step 1: which order ---

    def _start(self, dispatcher: CollectingDispatcher, tracker: Tracker) -> dict[str, Any]:
        """The request may already name the order (number, product, "el último"), the reason
        ("vino rota") and what the customer wants ("quiero que me devuelvan la plata")."""
        said = tracker.latest_message.get("text") or ""
        said = "" if said.startswith("/") else said
        reason = read_reason(said)
        if reason is None and _intent(tracker) == "wrong_or_damaged_item":
            reason = Reason.DAMAGED  # "me llegó mal": a defect either way (photos asked)
        told = {REASON: reason.value if reason else None, SAID: said[:500] or None}
        resolution = read_resolution(said)
        if resolution is not None:
            told[RESOLUTION] = resolution.value
        found = wiring().backends
        lookup = find_order_to_return(
            found.crm, found.erp, sender_phone(tracker), order_reference(tracker), said
        )
        if lookup.found is Found.ORDER:
            return {**told, **self._order_chosen(dispatcher, lookup.order, lookup.customer, reason)}
        if lookup.found is Found.CHOOSE:
            options = [{"id": order.id, "title": choice_title(order)} for order in lookup.choices]
            return {**told, "order_choices": options}
        if lookup.found is Found.UNKNOWN_CUSTOMER:
            raise _CaseInstead  # bought with another number, perhaps: a person sorts it out
        name = lookup.customer.first_name if lookup.customer else ""
        dispatcher.utter_message(response=NO_ORDER_RESPONSES[lookup.found], name=name)
        return ENDED

    def _pick_order(self, dispatcher: CollectingDispatcher, tracker: Tracker) -> dict[str, Any]:
        reference = order_reference(tracker) or ""
        reference = normalize_order_id(reference) or reference.strip().upper()
        offered = {option["id"] for option in tracker.get_slot("order_choices") or []}
        if reference not in offered:
            dispatcher.utter_message(response="utter_return_explain_order")
            return {}
        found = wiring().backends
        lookup = find_order_to_return(found.crm, found.erp, sender_phone(tracker), reference)
        if lookup.found is not Found.ORDER:
            dispatcher.utter_message(response="utter_order_not_found")
            return ENDED
        reason = Reason(tracker.get_slot(REASON)) if tracker.get_slot(REASON) else None
        return self._order_chosen(dispatcher, lookup.order, lookup.customer, reason)

    def _order_chosen(
        self, dispatcher: CollectingDispatcher, order: Order, customer: Customer, reason: Reason | None
    ) -> dict[str, Any]:
        """The order is known: one that was not delivered (or whose only product cannot come
        back) ends here with why and the options; several products are offered to choose."""
        products = order.products
        result = _eligibility(order, products[0].name, customer, reason if len(products) == 1 else None)
        if result.refused in (Ineligible.NOT_SHIPPED, Ineligible.ON_ITS_WAY, Ineligible.CANCELLED):
            tell_not_eligible(dispatcher, order, order.items, customer, result)
            return {"order_choices": None, **ENDED}
        chosen = {ORDER: order.id, "order_choices": None}
        if len(products) > 1:
            return {**chosen, ITEMS: [line.name for line in products]}
        if not result.eligible:
            tell_not_eligible(dispatcher, order, products[0].name, customer, result)
            return {"order_choices": None, **ENDED}
        return {**chosen, ITEM: products[0].name}

    def _context(self, tracker: Tracker) -> tuple[Order, Customer]:
        """The chosen order read again, and that it is still the sender's (a slot is only a claim)."""
        found = wiring().backends
        lookup = find_order_to_return(found.crm, found.erp, sender_phone(tracker), tracker.get_slot(ORDER))
        if lookup.found is not Found.ORDER:
            raise LookupError("the order is not the sender's")
        return lookup.order, lookup.customer

    # --- step 2: which product ---

    def _pick_item(self, dispatcher: CollectingDispatcher, tracker: Tracker) -> dict[str, Any]:
        items: list[str] = tracker.get_slot(ITEMS) or []
        picked = pick_choice(tracker.latest_message.get("text") or "", items)
        if picked is None:
            dispatcher.utter_message(response="utter_return_explain_item")
            return {}
        order, customer = self._context(tracker)
        reason = Reason(tracker.get_slot(REASON)) if tracker.get_slot(REASON) else None
        result = _eligibility(order, items[picked], customer, reason)
        if not result.eligible:
            tell_not_eligible(dispatcher, order, items[picked], customer, result)
            return ENDED
        return {ITEM: items[picked]}

    # --- step 3: why ---

    def _pick_reason(self, dispatcher: CollectingDispatcher, tracker: Tracker) -> dict[str, Any]:
        text = tracker.latest_message.get("text") or ""
        reason = _choice(tracker, "return_reason", Reason, list(Reason), text, read_reason)
        if reason is None:
            dispatcher.utter_message(response="utter_return_explain_reason")
            return {}
        order, customer = self._context(tracker)
        item = tracker.get_slot(ITEM)
        result = _eligibility(order, item, customer, reason)
        if not result.eligible:
            tell_not_eligible(dispatcher, order, item, customer, result)
            return ENDED
        return {REASON: reason.value}

    # --- step 4: photos of a damaged or wrong product (the channel's attachments) ---

    def _photos(self, dispatcher: CollectingDispatcher, tracker: Tracker) -> dict[str, Any]:
        urls = [item["url"] for item in media_of(tracker)]
        if urls:
            dispatcher.utter_message(response="utter_return_photos_received")
            return {PHOTOS: {"urls": urls}}
        text = fold(tracker.latest_message.get("text") or "")
        if _intent(tracker) == "deny" or says_no_photos(text):
            return {PHOTOS: {"urls": []}}  # the person who works the case may ask for them
        dispatcher.utter_message(response="utter_return_explain_photos")
        return {}

    # --- step 5: refund, voucher or exchange (and what for) ---

    def _pick_resolution(self, dispatcher: CollectingDispatcher, tracker: Tracker) -> dict[str, Any]:
        text = tracker.latest_message.get("text") or ""
        resolution = _choice(
            tracker, "return_resolution", Resolution, list(Resolution), text, read_resolution
        )
        if resolution is None:
            dispatcher.utter_message(response="utter_return_explain_resolution")
            return {}
        return {RESOLUTION: resolution.value}

    def _exchange_for(self, dispatcher: CollectingDispatcher, tracker: Tracker) -> dict[str, Any]:
        text = " ".join((tracker.latest_message.get("text") or "").split())[:200]
        if len(fold(text)) < 2 or text.startswith("/"):
            dispatcher.utter_message(response="utter_ask_return_exchange_for")
            return {}
        return {EXCHANGE_FOR: text}

    # --- step 6: the confirmation, then the case through the outbox ---

    def _confirm(self, dispatcher: CollectingDispatcher, tracker: Tracker) -> dict[str, Any]:
        text = fold(tracker.latest_message.get("text") or "")
        if _intent(tracker) == "deny" or text in ("no", "nop", "no gracias"):
            dispatcher.utter_message(response="utter_return_cancelled")
            return ENDED
        if _intent(tracker) != "affirm" and text not in CONFIRM_YES:
            dispatcher.utter_message(response="utter_return_explain_confirm")
            return {}
        try:
            order, customer = self._context(tracker)
        except LookupError:
            dispatcher.utter_message(response="utter_order_not_found")
            return ENDED
        reason, resolution = Reason(tracker.get_slot(REASON)), Resolution(tracker.get_slot(RESOLUTION))
        item = tracker.get_slot(ITEM)
        # Read again at the "sí": the window may have closed since the question (past midnight).
        result = _eligibility(order, item, customer, reason, resolution)
        if not result.eligible:
            tell_not_eligible(dispatcher, order, item, customer, result)
            return ENDED
        request = ReturnRequest(
            order_id=order.id,
            item=item,
            category=result.category.id,
            reason=reason,
            resolution=resolution,
            exchange_for=tracker.get_slot(EXCHANGE_FOR),
            photos=tuple((tracker.get_slot(PHOTOS) or {}).get("urls") or ()),
            reason_label=REASON_LABELS[reason],
            handover=result.category.handover,
            said=tracker.get_slot(SAID) or "",
        )
        found = wiring().backends
        try:
            outcome = open_return(
                found.cases,
                found.outbox,
                sender_phone(tracker),
                request,
                tracker.sender_id,
                wiring().clock.now(),
            )
        except (BackendUnavailable, WriteRejected):
            logger.exception("returns: the case could not be recorded, not even queued")
            dispatcher.utter_message(response="utter_case_failed")
            return ENDED
        opened = "utter_return_queued" if outcome.status is WriteStatus.QUEUED else "utter_return_opened"
        dispatcher.utter_message(
            response=opened,
            case_id=outcome.management_id,
            item=item,
            order_id=order.id,
            instructions=return_rules().handover[result.category.handover],
        )
        dispatcher.utter_message(response=f"utter_return_outcome_{resolution.value}")
        return {CONFIRMED: True}


class ActionAskReturnOrder(Action):
    """Which of the customer's orders (delivered ones first)."""

    def name(self) -> str:
        return "action_ask_return_order"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        buttons = [
            {"title": option["title"], "payload": f'/inform{{"order_id":"{option["id"]}"}}'}
            for option in tracker.get_slot("order_choices") or []
        ]
        dispatcher.utter_message(response="utter_ask_return_order", buttons=buttons)
        return []


class ActionAskReturnItem(Action):
    """Which product of the order, as numbered options (titles are the products)."""

    def name(self) -> str:
        return "action_ask_return_item"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        buttons = [
            {"title": name[:20], "payload": str(index)}
            for index, name in enumerate(tracker.get_slot(ITEMS) or [], 1)
        ]
        listed = "\n".join(f"{index}. {name}" for index, name in enumerate(tracker.get_slot(ITEMS) or [], 1))
        dispatcher.utter_message(
            response="utter_ask_return_item",
            buttons=buttons,
            order_id=tracker.get_slot(ORDER) or "",
            items=listed,
        )
        return []


class ActionAskReturnConfirmed(Action):
    """The summary to confirm: every write is confirmed first."""

    def name(self) -> str:
        return "action_ask_return_confirmed"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        resolution = Resolution(tracker.get_slot(RESOLUTION))
        wanted = RESOLUTION_LABELS[resolution]
        if resolution is Resolution.EXCHANGE and tracker.get_slot(EXCHANGE_FOR):
            wanted = f"{wanted}: {tracker.get_slot(EXCHANGE_FOR)}"
        photos = len((tracker.get_slot(PHOTOS) or {}).get("urls") or ())
        dispatcher.utter_message(
            response="utter_ask_return_confirmed",
            item=tracker.get_slot(ITEM) or "",
            order_id=tracker.get_slot(ORDER) or "",
            reason=REASON_LABELS[Reason(tracker.get_slot(REASON))],
            resolution=wanted,
            photos=f"{photos} foto(s)" if photos else "sin fotos",
        )
        return []


class ActionReturnReset(Action):
    """Clears the form's slots when it ends, whichever way."""

    def name(self) -> str:
        return "action_return_reset"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        return [SlotSet(slot, None) for slot in FORM_SLOTS]
