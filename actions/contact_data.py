"""update_contact_data: a new e-mail or delivery address, after verification, validated, confirmed
and written through the CRM with its audit record."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.feedback import ask_feedback
from actions.order_status import sender_phone
from actions.verification import (
    STOPPED,
    VerificationSteps,
    channel_of,
    reset_flow,
    session_identity,
    subject_customer,
)
from bot.adapters.base import BackendUnavailable
from bot.contact_data import (
    clean_address,
    clean_district,
    clean_email,
    district_label,
    field_named,
    request_contact_change,
)
from bot.outbox import WriteRejected, WriteStatus
from bot.records import ContactField
from bot.wiring import wiring

logger = logging.getLogger(__name__)

FIELD_NAMES = {ContactField.EMAIL.value: "correo", ContactField.ADDRESS.value: "dirección de entrega"}


class ValidateContactForm(VerificationSteps, FormValidationAction):
    """contact_form: verification, then which data, the new value (and district), confirmation."""

    def name(self) -> str:
        return "validate_contact_form"

    async def required_slots(
        self,
        domain_slots: list[str],
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
    ) -> list[str]:
        if tracker.get_slot("verification_status") in STOPPED:
            return []
        steps = await self.verification_slots(tracker)
        steps += ["contact_field", "contact_value"]
        if tracker.get_slot("contact_field") == ContactField.ADDRESS.value:
            steps.append("contact_district")
        return steps + ["contact_confirmed"]

    async def extract_contact_field(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        # "quiero cambiar mi mail" already says which: do not ask again.
        if (
            tracker.get_slot("contact_field")
            or tracker.get_intent_of_latest_message() != "update_contact_data"
        ):
            return {}
        text = tracker.latest_message.get("text") or ""
        # "cambiá mi correo a ana@gmail.com" names the field; an address with @ alone, too.
        field = field_named(text) or (ContactField.EMAIL if clean_email(text) else None)
        return {"contact_field": field.value} if field else {}

    async def extract_contact_value(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        # The new e-mail written in the request itself is not asked again after the code. (A
        # street address is not read from the request: its words cannot be told from the ask.)
        if (
            tracker.get_slot("contact_value")
            or tracker.get_intent_of_latest_message() != "update_contact_data"
            or tracker.get_slot("contact_field") not in (None, ContactField.EMAIL.value)
        ):
            return {}
        email = clean_email(tracker.latest_message.get("text") or "")
        return {"contact_value": email} if email else {}

    def _wrong(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, response: str, slot: str
    ) -> dict[str, Any]:
        wrong = self.count_wrong(tracker)
        dispatcher.utter_message(response=response)
        if wrong >= 2:
            # Second wrong answer: explain what fits and offer a person.
            dispatcher.utter_message(response="utter_contact_help")
        return {slot: None, "wrong_answers": float(wrong)}

    def validate_contact_field(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        if (leaving := self.left("contact_field", value, dispatcher)) is not None:
            return leaving
        # The value is the field's name when extract_contact_field read it from the request
        # ("address": not a word customers write, so field_named would refuse it), else the answer.
        known = {field.value: field for field in ContactField}
        field = known.get(str(value)) or field_named(str(value or ""))
        if field is None:
            return self._wrong(dispatcher, tracker, "utter_contact_field_invalid", "contact_field")
        return {"contact_field": field.value, "wrong_answers": None}

    def validate_contact_value(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        if (leaving := self.left("contact_value", value, dispatcher)) is not None:
            return leaving
        if tracker.get_slot("contact_field") == ContactField.EMAIL.value:
            email = clean_email(str(value or ""))
            if email is None:
                return self._wrong(dispatcher, tracker, "utter_contact_email_invalid", "contact_value")
            return {"contact_value": email, "wrong_answers": None}
        address = clean_address(str(value or ""))
        if address is None:
            return self._wrong(dispatcher, tracker, "utter_contact_address_invalid", "contact_value")
        return {"contact_value": address, "wrong_answers": None}

    def validate_contact_district(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        if (leaving := self.left("contact_district", value, dispatcher)) is not None:
            return leaving
        district = clean_district(str(value or ""))
        if district is None:
            return self._wrong(dispatcher, tracker, "utter_contact_district_invalid", "contact_district")
        return {"contact_district": district, "wrong_answers": None}


class ActionAskContactDistrict(Action):
    """Asks for the district by the name the customer's country gives it (distrito, comuna, colonia)."""

    def name(self) -> str:
        return "action_ask_contact_district"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        try:
            customer = await subject_customer(tracker)
        except BackendUnavailable:
            customer = None
        label = district_label(customer.country if customer else "")
        dispatcher.utter_message(response="utter_ask_contact_district", label=label)
        return []


class ActionAskContactConfirmed(Action):
    """Reads the change back before anything is written."""

    def name(self) -> str:
        return "action_ask_contact_confirmed"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        value = tracker.get_slot("contact_value") or ""
        district = tracker.get_slot("contact_district")
        new = f"{value}, {district}" if district else value
        field = FIELD_NAMES.get(tracker.get_slot("contact_field") or "", "dato")
        dispatcher.utter_message(
            response="utter_ask_contact_confirmed",
            field=field,
            new=new,
            buttons=[{"title": "Sí, cambiarlo", "payload": "/affirm"}, {"title": "No", "payload": "/deny"}],
        )
        return []


class ActionUpdateContact(Action):
    """After contact_form: write the confirmed change with its audit record."""

    def name(self) -> str:
        return "action_update_contact"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        identity = session_identity(tracker)
        stopped = tracker.get_slot("verification_status") in STOPPED
        if stopped or identity is None or not tracker.get_slot("contact_value"):
            return reset_flow()  # locked, failed or left: already told
        if tracker.get_slot("contact_confirmed") is not True:
            dispatcher.utter_message(response="utter_contact_not_changed")
            return reset_flow()
        field = ContactField(tracker.get_slot("contact_field"))
        found = wiring().backends
        try:
            # Through the outbox: a CRM down at this point gets the change queued, not lost.
            change, outcome = await asyncio.to_thread(
                request_contact_change,
                found.crm,
                wiring().outbox,
                identity.customer_id,
                field,
                tracker.get_slot("contact_value"),
                channel_of(tracker),
                identity.how,
                tracker.get_slot("contact_district"),
                tracker.sender_id,
                sender_phone(tracker),
                FIELD_NAMES[field.value],
                wiring().clock.now(),
            )
        except (BackendUnavailable, LookupError, WriteRejected):
            logger.exception("contact data: the change could not be written, not even queued")
            dispatcher.utter_message(response="utter_contact_update_failed")
            return reset_flow()
        if outcome.status is WriteStatus.QUEUED:
            dispatcher.utter_message(
                response="utter_contact_queued",
                field=FIELD_NAMES[field.value],
                new=change.new,
                case_id=outcome.management_id,
            )
            ask_feedback(dispatcher, tracker, "update_contact_data")
            return reset_flow()
        dispatcher.utter_message(
            response="utter_contact_updated", field=FIELD_NAMES[field.value], new=change.new
        )
        ask_feedback(dispatcher, tracker, "update_contact_data")
        return reset_flow()
