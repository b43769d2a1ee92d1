"""Payments: balance, payment links and invoices after verification; "ya pagué" and its receipt."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_date
from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.feedback import ask_feedback
from actions.handoff import handoff_events
from actions.order_status import sender_phone
from actions.verification import (
    STOPPED,
    VERIFICATION_SLOTS,
    channel_of,
    customer_on_file,
    reset_flow,
    session_verified_customer,
)
from bot.adapters.base import BackendUnavailable
from bot.cases import request_case
from bot.deep_links import Flow, linked_target
from bot.handoff.rules import Reason
from bot.invoice_documents import fill, invoice_messages, invoices_asked, month_label
from bot.media_links import INVOICE
from bot.messaging.inbound import Channel
from bot.money import format_due_date, format_money
from bot.outbox import WriteRejected, WriteStatus
from bot.payments import (
    PersonReason,
    balance_of,
    customer_today,
    needs_a_person,
    needs_person_for,
    open_invoices,
    parse_promise_date,
    recent_payments,
    request_promise,
)
from bot.records import CaseKind, Customer, InvoiceStatus
from bot.spanish_time import day_phrase, locale_for, moment_phrase
from bot.wiring import wiring

logger = logging.getLogger(__name__)

# Disputes, installment plans and amounts above PAYMENT_HANDOFF_THRESHOLD go to a person through
# the live handoff: the customer is told why, action_handoff follows with the wait and the packet.
PERSON_HANDOFF = {
    PersonReason.DISPUTE: ("utter_payment_dispute_person", Reason.DISPUTE),
    PersonReason.INSTALLMENTS: ("utter_installments_person", Reason.CANNOT_COMPLETE),
}
INVOICE_STATUS = {InvoiceStatus.OPEN: "pendiente", InvoiceStatus.PAID: "pagada"}
# Read once at import: a broken bot/invoice_messages.yml stops the action server at start,
# saying what to fix, rather than the first customer who asks for an invoice.
invoice_messages()
# What "¿Te sirvió?" rates after each pending_flow: the intent that asked for it.
FLOW_INTENTS = {"balance": "check_balance", "payment_link": "make_payment", "invoice": "request_invoice"}


def outage_noted() -> list[EventType]:
    """utter_systems_down offers a person: if the customer takes it, the handoff says why."""
    return [SlotSet("handoff_reason", Reason.BACKEND_UNAVAILABLE.value)]


class ActionCompleteFlow(Action):
    """After verification_form: show the balance, send payment links or list the invoices."""

    def name(self) -> str:
        return "action_complete_flow"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        customer_id = session_verified_customer(tracker)
        status = tracker.get_slot("verification_status")
        if status in STOPPED or not customer_id:
            # Locked, failed, left, down: the reason was already told (down offered a person).
            return [*reset_flow(), *outage_noted()] if status == "down" else reset_flow()
        flow = tracker.get_slot("pending_flow") or "balance"
        answered = True  # False: the invoice asked for is not theirs or does not exist
        request = tracker.get_slot("payment_request") or ""
        reason = needs_person_for(request)
        if reason is PersonReason.INSTALLMENTS and flow != "payment_link":
            reason = None  # "cuantas cuotas me faltan" asks for the balance
        try:
            customer = await asyncio.to_thread(wiring().backends.crm.customer_by_id, customer_id)
            invoices = await asyncio.to_thread(wiring().backends.erp.invoices_of, customer_id)
            if customer is None:
                raise BackendUnavailable(f"verified customer {customer_id} vanished")
            if reason is not None:
                response, handoff_reason = PERSON_HANDOFF[reason]
                dispatcher.utter_message(response=response)
                return [*reset_flow(), *handoff_events(handoff_reason, request)]
            notified = notified_invoice(tracker) if flow == "payment_link" else None
            if flow == "payment_link" and await self.record_promise(dispatcher, tracker, customer, invoices):
                pass  # "te pago el viernes": promised, no link today
            elif notified is not None:  # "Pagar ahora" on a reminder: that invoice only
                answered, over_threshold = await self.send_notified_link(
                    dispatcher, customer, invoices, notified
                )
                if over_threshold:
                    return [*reset_flow(), *handoff_events(Reason.AMOUNT_OVER_THRESHOLD, over_threshold)]
            elif flow == "payment_link":
                over_threshold = await self.send_links(dispatcher, customer, invoices)
                if over_threshold:
                    return [*reset_flow(), *handoff_events(Reason.AMOUNT_OVER_THRESHOLD, over_threshold)]
            elif flow == "invoice":
                answered = self.send_invoices(dispatcher, channel_of(tracker), customer, invoices, request)
            else:
                self.show_balance(dispatcher, customer, invoices)
        except BackendUnavailable:
            logger.exception("payments: CRM/ERP unavailable")
            dispatcher.utter_message(response="utter_systems_down")
            return [*reset_flow(), *outage_noted()]
        if answered:  # "¿Te sirvió?" after what they asked for, not after "no la encuentro"
            ask_feedback(dispatcher, tracker, FLOW_INTENTS.get(flow, flow))
        return reset_flow()

    @staticmethod
    async def record_promise(
        dispatcher: CollectingDispatcher, tracker: Tracker, customer: Customer, invoices: list
    ) -> bool:
        """ "te pago el viernes": record the promise for the oldest open invoice. False when the
        request names no later day (then the links are sent)."""
        zone = customer.timezone or wiring().settings.bot_timezone
        now = wiring().clock.now()
        today = now.astimezone(ZoneInfo(zone)).date()
        day = parse_promise_date(tracker.get_slot("promise_date") or "", zone, now)
        pending = open_invoices(invoices)
        if day is None or day <= today or not pending:
            return False
        # Through the outbox: an ERP down at this point gets the promise queued, not lost.
        found = wiring().backends
        try:
            outcome = await asyncio.to_thread(
                request_promise,
                found.erp,
                wiring().outbox,
                customer.id,
                pending[0].id,
                day,
                channel_of(tracker),
                tracker.sender_id,
                sender_phone(tracker),
                format_date(day, "EEEE d 'de' MMMM", locale=locale_for(customer.country)),
                now,
            )
        except WriteRejected as refused:
            raise BackendUnavailable(f"the ERP refused the promise: {refused}") from refused
        if outcome.status is WriteStatus.QUEUED:
            dispatcher.utter_message(
                response="utter_promise_queued",
                name=customer.first_name,
                day=format_date(day, "EEEE d 'de' MMMM", locale=locale_for(customer.country)),
                case_id=outcome.management_id,
            )
            return True
        dispatcher.utter_message(
            response="utter_promise_recorded", name=customer.first_name, day=day_phrase(day, today)
        )
        return True

    @staticmethod
    def show_balance(dispatcher: CollectingDispatcher, customer: Customer, invoices: list) -> None:
        now = wiring().clock.now()
        balance = balance_of(
            customer, invoices, customer_today(customer, wiring().settings.bot_timezone, now)
        )
        if not balance.lines:
            dispatcher.utter_message(response="utter_balance_zero", name=customer.first_name)
            return
        response = "utter_balance_overdue" if balance.overdue_count else "utter_balance"
        dispatcher.utter_message(
            response=response,
            name=customer.first_name,
            lines="\n".join(line.text() for line in balance.lines),
            total=balance.total,
        )

    @classmethod
    def send_invoices(
        cls, dispatcher: CollectingDispatcher, channel: str, customer: Customer, invoices: list, request: str
    ) -> bool:
        """ "mandame la factura de octubre": that invoice's PDF on WhatsApp, its expiring link
        elsewhere; a month or number with no invoice of theirs lists the ones there are; a request
        naming neither lists the latest. False when what was asked for was not found."""
        asked = invoices_asked(request, invoices)
        if asked.asked is None or not invoices:
            cls.list_invoices(dispatcher, customer, invoices)
            return True
        texts = invoice_messages()
        if not asked.found:
            latest = invoices[-5:]
            lines = [
                f"• {invoice.id}: {month_label(invoice.issued_on)}, "
                f"{format_money(invoice.amount, invoice.currency, customer.country)}"
                for invoice in latest
            ]
            example = month_label(max(invoice.issued_on for invoice in latest)).split(" de ")[0]
            text = texts["not_found_number"] if asked.by_number else texts["not_found"]
            filled = fill(
                text, month=asked.asked, invoice_id=asked.asked, lines="\n".join(lines), example=example
            )
            dispatcher.utter_message(text=filled)
            return False
        now = wiring().clock.now()
        signer = wiring().media_links()
        for invoice in asked.found:
            link = signer.sign(INVOICE, invoice.id, customer.id, now, filename=f"factura-{invoice.id}.pdf")
            values = {
                "invoice_id": invoice.id,
                "month": month_label(invoice.issued_on),
                "amount": format_money(invoice.amount, invoice.currency, customer.country),
            }
            if channel == Channel.WHATSAPP.value:
                dispatcher.utter_message(text=fill(texts["document"], **values), attachment=link.url)
            else:  # SMS carries no documents here; the REST channel and the console show the link
                expires = describe_day_and_time(link.expires_at, customer, now)
                dispatcher.utter_message(text=fill(texts["link"], url=link.url, expires=expires, **values))
        return True

    @staticmethod
    def list_invoices(dispatcher: CollectingDispatcher, customer: Customer, invoices: list) -> None:
        if not invoices:
            dispatcher.utter_message(response="utter_no_invoices", name=customer.first_name)
            return
        lines = [
            f"• {invoice.id}: {format_money(invoice.amount, invoice.currency, customer.country)}, "
            f"emitida el {format_due_date(invoice.issued_on)} ({INVOICE_STATUS[invoice.status]})"
            for invoice in invoices[-5:]
        ]
        dispatcher.utter_message(response="utter_invoice_list", lines="\n".join(lines))

    @classmethod
    async def send_notified_link(
        cls, dispatcher: CollectingDispatcher, customer: Customer, invoices: list, invoice_id: str
    ) -> tuple[bool, str | None]:
        """ "Pagar ahora" on the reminder about `invoice_id`: that invoice's link only (or a person,
        above the threshold); already paid, said so; not one of the verified customer's invoices
        (someone else's, or gone), the same answer as for any number that is not theirs. Returns
        (answered, what the agent needs to know of an amount above the threshold)."""
        invoice = next((invoice for invoice in invoices if invoice.id == invoice_id), None)
        texts = invoice_messages()
        if invoice is None:
            dispatcher.utter_message(text=fill(texts["notice_not_found"], invoice_id=invoice_id))
            return False, None
        if invoice.status is not InvoiceStatus.OPEN:
            dispatcher.utter_message(text=fill(texts["notice_paid"], invoice_id=invoice.id))
            return True, None
        return True, await cls.send_links(dispatcher, customer, [invoice])

    @staticmethod
    async def send_links(dispatcher: CollectingDispatcher, customer: Customer, invoices: list) -> str | None:
        """A link per open invoice; the ones above the threshold are announced for a person.
        Returns what the agent needs to know about those ("F-2004: $ 150.000,00"), or None."""
        pending = open_invoices(invoices)
        if not pending:
            dispatcher.utter_message(response="utter_nothing_to_pay", name=customer.first_name)
            return None
        settings = wiring().settings
        now = wiring().clock.now()
        for_a_person: list[str] = []
        for invoice in pending:
            amount = format_money(invoice.amount, invoice.currency, customer.country)
            if needs_a_person(invoice, settings.payment_handoff_threshold):
                dispatcher.utter_message(
                    response="utter_payment_with_person", invoice_id=invoice.id, amount=amount
                )
                for_a_person.append(f"{invoice.id}: {amount}")
                continue
            link = await asyncio.to_thread(wiring().backends.erp.payment_link, invoice, now)
            dispatcher.utter_message(
                response="utter_payment_link",
                invoice_id=invoice.id,
                amount=amount,
                url=link.url,
                expires=describe_day_and_time(link.expires_at, customer, now),
            )
        return "; ".join(for_a_person) or None


def notified_invoice(tracker: Tracker) -> str | None:
    """The invoice a payment reminder's "Pagar ahora" named, when that tap started this flow.

    The channel opened the tap's signed link and put its target in the message's metadata
    (bot/deep_links.py). The flow is the one the latest message asking for a payment flow
    started (as `pending_flow` is), so "quiero pagar" typed after the tap asks for every open
    invoice again; an answer to the verification form's questions never counts, whatever NLU
    made of it (a code such as "482913" can be read as make_payment). The id is only a pointer:
    the caller looks it up among the verified customer's own invoices."""
    started: dict[str, Any] | None = None
    asking = None  # the verification form's question being answered, if any
    for event in tracker.events:
        kind = event.get("event")
        if kind == "slot" and event.get("name") == "requested_slot":
            asking = event.get("value")
        elif kind in ("restart", "session_started") or (kind == "active_loop" and not event.get("name")):
            asking = None
        elif kind == "user" and asking not in VERIFICATION_SLOTS:
            intent = ((event.get("parse_data") or {}).get("intent") or {}).get("name")
            if intent in FLOW_INTENTS.values():
                started = event
    return linked_target(started.get("metadata"), Flow.PAY) if started else None


def describe_day_and_time(moment: datetime, customer: Customer, now: datetime) -> str:
    """`mañana viernes 27 de noviembre a las 10:00`, in the customer's zone."""
    return moment_phrase(moment, ZoneInfo(customer.timezone or wiring().settings.bot_timezone), now)


class ActionReportPayment(Action):
    """ "ya pagué": confirm a recorded payment, or explain processing times and ask for the receipt."""

    def name(self) -> str:
        return "action_report_payment"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        try:
            customer = await customer_on_file(tracker)
            if customer is None:
                dispatcher.utter_message(response="utter_unknown_customer")
                return []
            payments = await asyncio.to_thread(wiring().backends.erp.payments_of, customer.id)
        except BackendUnavailable:
            logger.exception("report payment: CRM/ERP unavailable")
            dispatcher.utter_message(response="utter_systems_down")
            return outage_noted()
        if media_of(tracker):
            return await attach_receipt(dispatcher, tracker, customer)
        text = tracker.latest_message.get("text") or ""
        if needs_person_for(text) is PersonReason.DISPUTE:
            dispatcher.utter_message(response="utter_payment_dispute_person")
            return handoff_events(Reason.DISPUTE, text)
        now = wiring().clock.now()
        found = recent_payments(payments, now)
        if found:
            payment = found[0]
            dispatcher.utter_message(
                response="utter_payment_found",
                name=customer.first_name,
                amount=format_money(payment.amount, payment.currency, customer.country),
                when=describe_day_and_time(payment.paid_at, customer, now),
                invoice_id=payment.invoice_id or "-",
            )
            return [SlotSet("awaiting_receipt", False)]
        dispatcher.utter_message(response="utter_payment_not_found", name=customer.first_name)
        return [SlotSet("awaiting_receipt", True)]


def media_of(tracker: Tracker) -> list[dict[str, str]]:
    """Attachments of the latest message, as the channel put them in its metadata."""
    metadata = tracker.latest_message.get("metadata") or {}
    return [item for item in metadata.get("media") or [] if isinstance(item, dict) and item.get("url")]


async def attach_receipt(
    dispatcher: CollectingDispatcher, tracker: Tracker, customer: Customer
) -> list[EventType]:
    media = media_of(tracker)
    if not media:
        dispatcher.utter_message(response="utter_receipt_missing")
        return []
    details: dict[str, str | None] = {
        "customer_id": customer.id,
        "media_url": media[0]["url"],
        "content_type": media[0].get("content_type"),
        "text": tracker.latest_message.get("text")
        if not str(tracker.latest_message.get("text", "")).startswith("/")
        else None,
    }
    for index, item in enumerate(media[1:], start=2):
        details[f"media_url_{index}"] = item["url"]
    found = wiring().backends
    try:
        outcome = await asyncio.to_thread(
            request_case,
            found.cases,
            wiring().outbox,
            sender_phone(tracker),
            CaseKind.PAYMENT_RECEIPT,
            details,
            conversation_id=tracker.sender_id,
            now=wiring().clock.now(),
        )
    except (BackendUnavailable, WriteRejected):
        logger.exception("receipt: the case could not be recorded, not even queued")
        dispatcher.utter_message(response="utter_case_failed")
        return []
    if outcome.status is WriteStatus.QUEUED:
        dispatcher.utter_message(response="utter_case_queued", case_id=outcome.management_id)
    else:
        dispatcher.utter_message(response="utter_receipt_received", case_id=outcome.management_id)
    return [SlotSet("awaiting_receipt", False)]


class ActionAttachReceipt(Action):
    """The photo or PDF of a receipt after "ya pagué" not found: a case for a person to check."""

    def name(self) -> str:
        return "action_attach_receipt"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        try:
            customer = await customer_on_file(tracker)
        except BackendUnavailable:
            dispatcher.utter_message(response="utter_systems_down")
            return outage_noted()
        if customer is None:
            dispatcher.utter_message(response="utter_unknown_customer")
            return []
        return await attach_receipt(dispatcher, tracker, customer)
