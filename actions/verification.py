"""Step-up verification in forms: a one-time code by SMS to the number on file, and, for a number
not on file, order number plus the last digits of a document first.

`VerificationSteps` is shared by every form that needs a verified customer (verification_form
for balance, payment links and invoices; contact_form for contact data). The code itself never
stays in a slot: `otp_code` is emptied as soon as it is checked, and the tracker store masks the
message that answered it (connectors/stores.py).

Who was identified and who was verified are signed claims (bot/identity.py) bound to the
conversation's sender: only these steps issue them, and `session_identity` and
`identified_customer_id` are the only readers. A slot set from outside (a made-up tracker sent to
the action server, a SlotSet through Rasa's HTTP API) fails the check and counts for nothing.
Wrong identity answers are bounded per number and per customer across sessions
(bot.verification.IdentityGuesses).
"""

from __future__ import annotations

import asyncio
import logging
import random
from datetime import timedelta
from typing import Any

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import ActiveLoop, EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.order_status import sender_phone
from bot.adapters.base import BackendUnavailable
from bot.identity import IDENTIFIED, IDENTIFIED_TTL, VERIFIED, IdentityClaim
from bot.messaging.inbound import Channel
from bot.messaging.keywords import leaves_form
from bot.messaging.sender import OutboundMessage
from bot.records import Customer, normalize_order_id
from bot.settings import Settings, require_identity_secret, require_media_secret, require_payment_secrets
from bot.verification import CheckOutcome, SendOutcome
from bot.wiring import wiring

logger = logging.getLogger(__name__)

# Production refuses to start the action server without the keys that protect codes and links
# (development gets them from scripts/stack.py, generated into var/).
# Read here once, at import, so that the server refuses to start rather than the first customer.
_STARTING_WITH = Settings.from_env()
if not _STARTING_WITH.is_development:
    require_payment_secrets(_STARTING_WITH)
    require_identity_secret(_STARTING_WITH)
    require_media_secret(_STARTING_WITH)  # invoice PDFs go out by signed URL

VERIFICATION_SLOTS = ["identity_order_id", "identity_document", "otp_code"]
# Slots a flow leaves behind; every way out of a form empties them (action_stop_flow and the
# submit actions), so the next flow starts clean. The session's verification stays.
FLOW_SLOTS = [
    "otp_code",
    "otp_sent",
    "identity_order_id",
    "identity_document",
    "identified_identity",
    "verification_status",
    "wrong_answers",
    "pending_flow",
    "payment_request",
    "promise_date",
    "contact_field",
    "contact_value",
    "contact_district",
    "contact_confirmed",
]
# verification_status values that end a form early (the reason was already told); the one set
# every form with a verification step reads (contact data, payments).
STOPPED = {"locked", "too_many_sends", "failed", "guesses", "down", "unknown", "left"}
DOCUMENT_DIGITS = 4


def reset_flow() -> list[EventType]:
    return [SlotSet(slot, None) for slot in FLOW_SLOTS]


def _claim(tracker: Tracker, slot: str, kind: str) -> IdentityClaim | None:
    """The claim in `slot` if this process signed it for this conversation's sender and it has
    not expired; a made-up, altered, copied or old value is None."""
    value = tracker.get_slot(slot)
    if not value:
        return None
    return wiring().identity_signer().verify(value, kind, tracker.sender_id, wiring().clock.now())


def session_identity(tracker: Tracker) -> IdentityClaim | None:
    """Who a one-time code verified in this session, while VERIFICATION_TTL_MINUTES lasts."""
    return _claim(tracker, "verified_identity", VERIFIED)


def session_verified_customer(tracker: Tracker) -> str | None:
    """The customer verified earlier in this session (see session_identity)."""
    claim = session_identity(tracker)
    return claim.customer_id if claim else None


def identified_customer_id(tracker: Tracker) -> str | None:
    """The customer an order number and document identified in this form run (the code to their
    number on file still to be answered)."""
    claim = _claim(tracker, "identified_identity", IDENTIFIED)
    return claim.customer_id if claim else None


async def customer_on_file(tracker: Tracker) -> Customer | None:
    """The customer whose number on file is the sender's, if any."""
    phone = sender_phone(tracker)
    if phone is None:
        return None
    return await asyncio.to_thread(wiring().backends.crm.customer_by_phone, phone)


async def subject_customer(tracker: Tracker) -> Customer | None:
    """Whom this conversation is about: the verified customer, else the sender's number on file,
    else the customer identified by order and document (still to be verified by code)."""
    crm = wiring().backends.crm
    customer_id = session_verified_customer(tracker) or identified_customer_id(tracker)
    if customer_id:
        return await asyncio.to_thread(crm.customer_by_id, customer_id)
    return await customer_on_file(tracker)


def guessing_number(tracker: Tracker) -> str:
    """Whom wrong identity answers count against: the sender's phone (WhatsApp and SMS alike),
    else the conversation's sender id."""
    return sender_phone(tracker) or tracker.sender_id


def last_digits(phone: str) -> str:
    return phone[-2:]


def channel_of(tracker: Tracker) -> str:
    metadata = tracker.latest_message.get("metadata") or {}
    return metadata.get("channel") or tracker.get_latest_input_channel() or "chat"


class VerificationSteps:
    """Required slots, validation and wrong-answer handling of the verification part of a form."""

    async def verification_slots(self, tracker: Tracker) -> list[str]:
        """Which verification slots this run still needs: none once the session is verified."""
        if tracker.get_slot("verification_status") in STOPPED:
            return []
        if session_verified_customer(tracker):
            return []
        if identified_customer_id(tracker):
            return ["otp_code"]
        try:
            known = await customer_on_file(tracker)
        except BackendUnavailable:
            return []  # validate_* already said so; the submit action ends the flow
        return ["otp_code"] if known else list(VERIFICATION_SLOTS)

    def left(self, slot: str, value: Any, dispatcher: CollectingDispatcher) -> dict[str, Any] | None:
        """The slots that end the form when the answer is a way of leaving, else None."""
        if not leaves_form(str(value or "")):
            return None
        dispatcher.utter_message(response="utter_flow_left")
        return {slot: None, "verification_status": "left"}

    def count_wrong(self, tracker: Tracker) -> int:
        return int(tracker.get_slot("wrong_answers") or 0) + 1

    # --- number not on file: order number + last digits of a document -------------------

    async def _guesses_blocked(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, customer_id: str | None
    ) -> bool:
        """Whether this number, or the customer the order names, has used up its wrong answers
        (then the customer is told and offered a person)."""
        guesses = wiring().identity_guesses()
        if await asyncio.to_thread(guesses.blocked, guessing_number(tracker), customer_id):
            dispatcher.utter_message(response="utter_identity_too_many_guesses")
            return True
        return False

    async def validate_identity_order_id(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        if (leaving := self.left("identity_order_id", value, dispatcher)) is not None:
            return leaving
        order_id = normalize_order_id(str(value or ""))
        if order_id:
            try:
                # A number that used up its wrong answers is told so before it names an order.
                if await self._guesses_blocked(dispatcher, tracker, None):
                    return {"identity_order_id": None, "verification_status": "guesses"}
            except BackendUnavailable:
                logger.exception("verification: the guess counts are unavailable")
                dispatcher.utter_message(response="utter_systems_down")
                return {"identity_order_id": None, "verification_status": "down"}
            return {"identity_order_id": order_id}
        dispatcher.utter_message(response="utter_identity_order_invalid")
        return {"identity_order_id": None}

    async def validate_identity_document(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        if (leaving := self.left("identity_document", value, dispatcher)) is not None:
            return leaving
        digits = "".join(ch for ch in str(value or "") if ch.isdigit())
        order_id = tracker.get_slot("identity_order_id")
        found = wiring().backends
        try:
            order = await asyncio.to_thread(found.erp.order, order_id) if order_id else None
            details = await asyncio.to_thread(found.crm.contact_details, order.customer_id) if order else None
        except BackendUnavailable:
            logger.exception("verification: CRM/ERP unavailable")
            dispatcher.utter_message(response="utter_systems_down")
            return {"identity_document": None, "verification_status": "down"}
        named = order.customer_id if order else None
        stop = {"identity_order_id": None, "identity_document": None, "verification_status": "guesses"}
        try:
            # Checked before the answer: once the bound is hit, not even a right one counts.
            if await self._guesses_blocked(dispatcher, tracker, named):
                return stop
        except BackendUnavailable:
            logger.exception("verification: the guess counts are unavailable")
            dispatcher.utter_message(response="utter_systems_down")
            return {"identity_document": None, "verification_status": "down"}
        on_file = "".join(ch for ch in (details.document_id or "") if ch.isdigit()) if details else ""
        if len(digits) >= DOCUMENT_DIGITS and on_file and on_file.endswith(digits[-DOCUMENT_DIGITS:]):
            signer, now = wiring().identity_signer(), wiring().clock.now()
            claim = signer.issue(
                IDENTIFIED, tracker.sender_id, order.customer_id, "order_document", now, IDENTIFIED_TTL
            )
            return {"identity_document": None, "identified_identity": claim, "wrong_answers": None}
        try:
            guesses = wiring().identity_guesses()
            reached = await asyncio.to_thread(guesses.wrong, guessing_number(tracker), named)
        except BackendUnavailable:
            logger.exception("verification: the guess counts are unavailable")
            reached = False
        if reached:
            dispatcher.utter_message(response="utter_identity_too_many_guesses")
            return stop
        # One answer for a wrong order, a wrong document or both: nothing is revealed.
        wrong = self.count_wrong(tracker)
        if wrong >= 2:
            dispatcher.utter_message(response="utter_identity_failed")
            return {"identity_order_id": None, "identity_document": None, "verification_status": "failed"}
        dispatcher.utter_message(response="utter_identity_mismatch")
        return {"identity_order_id": None, "identity_document": None, "wrong_answers": float(wrong)}

    # --- the one-time code ----------------------------------------------------------------

    async def validate_otp_code(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        if (leaving := self.left("otp_code", value, dispatcher)) is not None:
            return leaving
        if not any(ch.isdigit() for ch in str(value or "")):
            # Words, not a code ("y cuanto era?"): ask again without spending a try.
            dispatcher.utter_message(response="utter_ask_otp_code")
            return {"otp_code": None}
        customer = await self._subject_or_stop(dispatcher, tracker)
        if customer is None:
            return {"otp_code": None, "verification_status": "down"}
        try:
            check = await asyncio.to_thread(wiring().code_verifier().check, customer.id, str(value or ""))
        except BackendUnavailable:
            logger.exception("verification: code store unavailable")
            dispatcher.utter_message(response="utter_systems_down")
            return {"otp_code": None, "verification_status": "down"}
        if check.outcome is CheckOutcome.VERIFIED:
            how = "order_document+sms_code" if identified_customer_id(tracker) else "sms_code"
            ttl = timedelta(minutes=wiring().settings.verification_ttl_minutes)
            # The one place a verified identity is issued: signed, for this sender, expiring.
            signer, now = wiring().identity_signer(), wiring().clock.now()
            claim = signer.issue(VERIFIED, tracker.sender_id, customer.id, how, now, ttl)
            dispatcher.utter_message(response="utter_otp_verified")
            return {
                "otp_code": None,
                "verified_identity": claim,
                "verification_status": "ok",
                "wrong_answers": None,
            }
        if check.outcome is CheckOutcome.LOCKED:
            dispatcher.utter_message(response="utter_otp_locked")
            return {"otp_code": None, "verification_status": "locked"}
        if check.outcome is CheckOutcome.EXPIRED:
            dispatcher.utter_message(response="utter_otp_expired")
            return {"otp_code": None, "otp_sent": False}  # the question sends a fresh code
        dispatcher.utter_message(response="utter_otp_wrong", tries_left=str(check.tries_left))
        if check.tries_left == 1:
            # Second wrong code: explain where the code is and offer a person.
            dispatcher.utter_message(response="utter_otp_help")
        return {"otp_code": None}

    async def _subject_or_stop(self, dispatcher: CollectingDispatcher, tracker: Tracker) -> Customer | None:
        try:
            customer = await subject_customer(tracker)
        except BackendUnavailable:
            logger.exception("verification: CRM unavailable")
            customer = None
        if customer is None:
            dispatcher.utter_message(response="utter_systems_down")
        return customer


class ValidateVerificationForm(VerificationSteps, FormValidationAction):
    """verification_form: only the verification steps; action_complete_flow does the rest."""

    def name(self) -> str:
        return "validate_verification_form"

    async def required_slots(
        self,
        domain_slots: list[str],
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
    ) -> list[str]:
        return await self.verification_slots(tracker)


class ActionAskOtpCode(Action):
    """Asks for the code; the first time in a form run it sends one by SMS to the number on file."""

    def name(self) -> str:
        return "action_ask_otp_code"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        if tracker.get_slot("otp_sent"):
            dispatcher.utter_message(response="utter_ask_otp_code")
            return []
        stop = [SlotSet("requested_slot", None), ActiveLoop(None)]
        try:
            customer = await subject_customer(tracker)
            if customer is None:
                # Not on file and not identified: verification_slots asks for the order first,
                # so this is a number that is not a phone (REST channel) or a vanished customer.
                dispatcher.utter_message(response="utter_unknown_customer")
                return [SlotSet("verification_status", "unknown"), *stop]
            outcome, code = await asyncio.to_thread(wiring().code_verifier().issue, customer.id)
        except BackendUnavailable:
            logger.exception("verification: could not issue a code")
            dispatcher.utter_message(response="utter_systems_down")
            return [SlotSet("verification_status", "down"), *stop]
        if outcome is SendOutcome.LOCKED:
            dispatcher.utter_message(response="utter_otp_locked")
            return [SlotSet("verification_status", "locked"), *stop]
        if outcome is SendOutcome.TOO_MANY_SENDS:
            dispatcher.utter_message(response="utter_otp_too_many_sends")
            return [SlotSet("verification_status", "too_many_sends"), *stop]
        template = random.choice(domain["responses"]["utter_otp_sms"])["text"]  # noqa: S311 (a wording)
        # Always an SMS to the number on file, never to whoever is asking.
        sms = OutboundMessage(customer.phone, Channel.SMS, body=template.format(code=code))
        result = await wiring().sender().send(sms)
        if result.status in ("failed", "blocked"):
            logger.error("verification: the code SMS was %s (outbound %s)", result.status, result.record_ids)
            dispatcher.utter_message(response="utter_otp_not_delivered")
            return [SlotSet("verification_status", "down"), *stop]
        dispatcher.utter_message(response="utter_otp_sent", last_digits=last_digits(customer.phone))
        return [SlotSet("otp_sent", True)]


class ActionStopFlow(Action):
    """Leaves the running form quietly and forgets its answers (the session's verification stays)."""

    def name(self) -> str:
        return "action_stop_flow"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        return [ActiveLoop(None), SlotSet("requested_slot", None), *reset_flow()]
