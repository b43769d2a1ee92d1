"""Payments: the customer's balance, signed payment links (and the one check that verifies them),
"ya pagué" lookups and promises to pay."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from enum import Enum
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import dateparser
from itsdangerous import BadSignature, URLSafeSerializer

from bot.choices import fold
from bot.money import format_due_date, format_money
from bot.records import Customer, Invoice, InvoiceStatus, Payment, PaymentLink

if TYPE_CHECKING:
    from bot.outbox import WriteOutcome

# Binds signatures to this one purpose: a token signed for something else never opens a payment.
LINK_SALT = "autoservicio.payment-link.v1"


class InvalidPaymentLink(ValueError):
    """The link was not issued by us, was altered, or has expired."""


@dataclass(frozen=True)
class PaymentLinkSigner:
    """Signs payment links for the embedded ERP: invoice, amount, currency and expiry inside."""

    secret: str
    base_url: str
    ttl: timedelta

    def sign(self, invoice: Invoice, now: datetime) -> PaymentLink:
        expires_at = now + self.ttl
        token = URLSafeSerializer(self.secret, salt=LINK_SALT).dumps(
            {
                "inv": invoice.id,
                "amt": str(invoice.amount),
                "cur": invoice.currency,
                "exp": int(expires_at.timestamp()),
            }
        )
        return PaymentLink(
            url=f"{self.base_url.rstrip('/')}/{token}",
            invoice_id=invoice.id,
            amount=invoice.amount,
            currency=invoice.currency,
            expires_at=expires_at,
        )


@dataclass(frozen=True)
class VerifiedLink:
    invoice_id: str
    amount: Decimal
    currency: str
    expires_at: datetime


def verify_payment_link(url: str, secret: str, now: datetime) -> VerifiedLink:
    """What a payment link asks to pay, if we signed it and it has not expired.

    The payment page calls this before charging; anything else raises InvalidPaymentLink.
    """
    token = url.rstrip("/").rsplit("/", 1)[-1]
    try:
        data = URLSafeSerializer(secret, salt=LINK_SALT).loads(token)
        link = VerifiedLink(
            invoice_id=str(data["inv"]),
            amount=Decimal(data["amt"]),
            currency=str(data["cur"]),
            expires_at=datetime.fromtimestamp(int(data["exp"]), timezone.utc),
        )
    except (BadSignature, KeyError, TypeError, ValueError, ArithmeticError) as error:
        raise InvalidPaymentLink("not a payment link we signed") from error
    if now >= link.expires_at:
        raise InvalidPaymentLink("the payment link has expired")
    return link


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


def request_promise(
    backends: Any,
    customer_id: str,
    invoice_id: str | None,
    promised_for: date,
    channel: str,
    conversation_id: str,
    phone: str | None,
    day_text: str,
    now: datetime,
) -> WriteOutcome:
    """Record the promise through the outbox (bot/outbox.py): when the ERP does not answer it is
    kept under a management ID, recorded later and confirmed to the customer with `day_text`
    (the day as they were told it). Raises WriteRejected when the ERP refuses it."""
    # Imported here: the SQL adapter imports this module (PaymentLinkSigner), and the outbox it.
    from bot.outbox import default_outbox, submit_write

    payload = {
        "customer_id": customer_id,
        "invoice_id": invoice_id,
        "promised_for": promised_for.isoformat(),
        "channel": channel,
        "made_at": now.isoformat(),
        "notice": {"day": day_text},
    }
    return submit_write(
        "billing.promise",
        payload,
        conversation_id=conversation_id,
        customer_phone=phone,
        backends=backends,
        outbox=backends.outbox or default_outbox(),
        now=now,
    )
