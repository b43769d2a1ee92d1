"""Payments: the customer's balance, signed payment links (and the one check that verifies them),
"ya pagué" lookups and promises to pay."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import Enum
from typing import Any
from zoneinfo import ZoneInfo

import dateparser

from bot.adapters.base import Erp
from bot.adapters.outbox_sql import Outbox

# Signing lives with the ERP that issues links; the check is re-exported for the payment page.
from bot.adapters.payment_links import LINK_SALT as LINK_SALT
from bot.adapters.payment_links import InvalidPaymentLink as InvalidPaymentLink
from bot.adapters.payment_links import PaymentLinkSigner as PaymentLinkSigner
from bot.adapters.payment_links import VerifiedLink as VerifiedLink
from bot.adapters.payment_links import verify_payment_link as verify_payment_link
from bot.choices import fold
from bot.money import format_due_date, format_money
from bot.outbox import WriteKind, WriteOutcome, submit_write
from bot.records import Customer, Invoice, InvoiceStatus, Payment

# --- balance ------------------------------------------------------------------------------


@dataclass(frozen=True)
class InvoiceLine:
    """One open invoice as the customer reads it."""

    invoice_id: str
    amount: str  # "$ 1.234,50"
    due: str  # "lunes 30 de noviembre"
    overdue: bool

    def text(self) -> str:
        mark = " ⚠️ vencida" if self.overdue else ""
        return f"• {self.invoice_id}: {self.amount}, vence el {self.due}{mark}"


@dataclass(frozen=True)
class Balance:
    lines: list[InvoiceLine]
    total: str  # per currency, joined: "$ 3.000,00"
    overdue_count: int


def customer_today(customer: Customer, business_timezone: str, now: datetime) -> date:
    return now.astimezone(ZoneInfo(customer.timezone or business_timezone)).date()


def open_invoices(invoices: list[Invoice]) -> list[Invoice]:
    return [invoice for invoice in invoices if invoice.status is InvoiceStatus.OPEN]


def balance_of(customer: Customer, invoices: list[Invoice], today: date) -> Balance:
    """The customer's open invoices, oldest due first, with amounts in their own currency and locale."""
    pending = open_invoices(invoices)
    lines = [
        InvoiceLine(
            invoice_id=invoice.id,
            amount=format_money(invoice.amount, invoice.currency, customer.country),
            due=format_due_date(invoice.due_on),
            overdue=invoice.is_overdue(today),
        )
        for invoice in pending
    ]
    totals: dict[str, Decimal] = {}
    for invoice in pending:
        totals[invoice.currency] = totals.get(invoice.currency, Decimal(0)) + invoice.amount
    total = " + ".join(
        format_money(amount, currency, customer.country) for currency, amount in totals.items()
    )
    return Balance(lines=lines, total=total, overdue_count=sum(line.overdue for line in lines))


def needs_a_person(invoice: Invoice, threshold: Decimal) -> bool:
    """Amounts above PAYMENT_HANDOFF_THRESHOLD are paid with a person, not through a link."""
    return invoice.amount > threshold


# --- "ya pagué" ---------------------------------------------------------------------------

RECENT_PAYMENT = timedelta(days=30)


def recent_payments(payments: list[Payment], now: datetime) -> list[Payment]:
    """Payments of the last 30 days, newest first: what a customer saying "ya pagué" means."""
    return [payment for payment in payments if now - payment.paid_at <= RECENT_PAYMENT]


# --- promises to pay -----------------------------------------------------------------------


def parse_promise_date(text: str, timezone_name: str, now: datetime) -> date | None:
    """The day a customer promises to pay ("el viernes", "15/12", "fin de mes"), not in the past."""
    settings = {
        "TIMEZONE": timezone_name,
        "RETURN_AS_TIMEZONE_AWARE": True,
        "PREFER_DATES_FROM": "future",
        "RELATIVE_BASE": now.astimezone(ZoneInfo(timezone_name)).replace(tzinfo=None),
        "DATE_ORDER": "DMY",
    }
    today = now.astimezone(ZoneInfo(timezone_name)).date()
    # dateparser reads "viernes" and "30" but not the words customers put around them.
    words = _PROMISE_FILLER.sub(" ", fold(text)).strip()
    if words in ("pasado manana", "pasadomanana"):
        return today + timedelta(days=2)
    parsed = dateparser.parse(words, languages=["es"], settings=settings) if words else None
    if parsed is None:
        return None
    day = parsed.date()
    return day if day >= today else None


_PROMISE_FILLER = re.compile(
    r"\b(?:te|le|les|lo|pago|pagare|pagaria|voy a pagar|puedo pagar|pagar|deposito|el|la|los|este|esta|"
    r"para|proximo|proxima|que viene|dia|de la semana)\b"
)


# --- what a person handles: disputes and installment plans --------------------------------


class PersonReason(str, Enum):
    DISPUTE = "dispute"  # "no reconozco este cobro", "me cobraron de mas"
    INSTALLMENTS = "installments"  # "puedo pagar en cuotas?", "un plan de pagos"


_PERSON_WORDS = {
    PersonReason.DISPUTE: (
        "no reconozco",
        "cobraron de mas",
        "cobro de mas",
        "cobraron dos veces",
        "cobro doble",
        "doble cobro",
        "cobro indebido",
        "mal cobrado",
        "me cobraron mal",
        "no es mi deuda",
        "no debo eso",
        "reclamo",
        "disputa",
        "desconozco",
    ),
    PersonReason.INSTALLMENTS: (
        "cuotas",
        "en partes",
        "plan de pago",
        "plan de pagos",
        "financiar",
        "financiacion",
        "refinanciar",
        "convenio",
        "fraccionar",
        "de a poco",
    ),
}


def needs_person_for(text: str) -> PersonReason | None:
    """Whether the request is a dispute or an installment plan, which a person handles."""
    words = f" {fold(text or '')} "
    for reason, phrases in _PERSON_WORDS.items():
        if any(f" {phrase} " in words for phrase in phrases):
            return reason
    return None


# --- the promise through the outbox: never lost while the ERP is down ---------------------------------


def _apply_promise(erp: Erp, payload: Mapping[str, Any]) -> None:
    erp.record_promise(
        payload["customer_id"],
        payload.get("invoice_id"),
        date.fromisoformat(payload["promised_for"]),
        payload["channel"],
        datetime.fromisoformat(payload["made_at"]),
    )


PROMISE = WriteKind(
    "billing.promise",
    _apply_promise,
    system="erp",
    confirmation="utter_promise_confirmed_later",
    notice_fields=("day",),
)


def request_promise(
    erp: Erp,
    outbox: Outbox,
    customer_id: str,
    invoice_id: str | None,
    promised_for: date,
    channel: str,
    conversation_id: str,
    phone: str | None,
    day_text: str,
    now: datetime,
) -> WriteOutcome:
    """Record the promise through the outbox: when the ERP does not answer it is kept under a
    management ID, recorded later and confirmed to the customer with `day_text` (the day as they
    were told it). Raises WriteRejected when the ERP refuses it."""
    payload = {
        "customer_id": customer_id,
        "invoice_id": invoice_id,
        "promised_for": promised_for.isoformat(),
        "channel": channel,
        "made_at": now.isoformat(),
        "notice": {"day": day_text},
    }
    return submit_write(
        PROMISE,
        payload,
        system=erp,
        outbox=outbox,
        conversation_id=conversation_id,
        customer_phone=phone,
        now=now,
    )
