"""One invoice as a document: which one the customer asked for, and its PDF for its owner only.

"mandame la factura de octubre" names a month (with or without a year), "la factura F-2004" a
number; `invoices_asked` finds theirs among the customer's invoices. The PDF comes from the ERP
(`Erp.invoice_pdf`); `owned_invoice_pdf` hands it out only when the invoice is one of the
customer's, the check the media URL's server makes after the URL's signature and expiry.
What the customer reads is in bot/invoice_messages.yml, which designers edit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from pathlib import Path

import yaml
from babel.dates import format_date

from bot.adapters.base import Erp
from bot.choices import fold
from bot.records import Invoice

MESSAGES_FILE = Path(__file__).resolve().parent / "invoice_messages.yml"
MESSAGE_FIELDS = {
    "document": ("{invoice_id}", "{month}", "{amount}"),
    "link": ("{invoice_id}", "{month}", "{amount}", "{url}", "{expires}"),
    "not_found": ("{month}", "{lines}", "{example}"),
    "not_found_number": ("{invoice_id}", "{lines}", "{example}"),
    "notice_paid": ("{invoice_id}",),
    "notice_not_found": ("{invoice_id}",),
}
MAX_DOCUMENTS = 3  # "la factura de noviembre" with several that month: the latest three

MONTHS = {
    "enero": 1,
    "febrero": 2,
    "marzo": 3,
    "abril": 4,
    "mayo": 5,
    "junio": 6,
    "julio": 7,
    "agosto": 8,
    "septiembre": 9,
    "setiembre": 9,  # as Peru and Uruguay write it
    "octubre": 10,
    "noviembre": 11,
    "diciembre": 12,
}
_MONTH = re.compile(r"\b(" + "|".join(MONTHS) + r")\b(?:\s+(?:de|del)?\s*(20\d\d))?")
_YEAR = re.compile(r"\b(20\d\d)\b")
_INVOICE_ID = re.compile(r"(?i)\bf\s*-?\s*(\d{3,8})\b")


class InvoiceMessagesError(ValueError):
    """bot/invoice_messages.yml is missing a text or a placeholder."""


@lru_cache(maxsize=4)
def invoice_messages(path: Path = MESSAGES_FILE) -> dict[str, str]:
    """The texts of bot/invoice_messages.yml, each checked for the placeholders it must fill."""
    loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    messages: dict[str, str] = {}
    for name, placeholders in MESSAGE_FIELDS.items():
        text = loaded.get(name)
        if not isinstance(text, str) or not text.strip():
            raise InvoiceMessagesError(f"{path}: `{name}` needs a text")
        missing = [placeholder for placeholder in placeholders if placeholder not in text]
        if missing:
            raise InvoiceMessagesError(f"{path}: `{name}` must say {', '.join(missing)}")
        messages[name] = text
    return messages


def fill(text: str, **values: str) -> str:
    for key, value in values.items():
        text = text.replace("{" + key + "}", value)
    return text


@dataclass(frozen=True)
class InvoiceRequest:
    """What "mandame la factura …" named: `found` the customer's invoices it names (newest first),
    or nothing found for `asked` (a month as the customer reads it, or a number)."""

    asked: str | None  # None: no month or number named (the list of invoices answers)
    found: tuple[Invoice, ...] = ()
    by_number: bool = False  # `asked` is an invoice number, not a month


def month_label(day: date) -> str:
    """`octubre de 2026`."""
    return format_date(day, "MMMM 'de' y", locale="es")


def invoices_asked(text: str, invoices: list[Invoice]) -> InvoiceRequest:
    """The customer's invoices that `text` names by number or month; a month without a year is
    the latest year in which they have an invoice that month."""
    by_id = _INVOICE_ID.search(text or "")
    if by_id:
        wanted = f"F-{by_id.group(1)}"
        return InvoiceRequest(wanted, tuple(i for i in invoices if i.id == wanted), by_number=True)
    words = fold(text or "")
    named = _MONTH.search(words)
    if not named:
        return InvoiceRequest(None)
    month = MONTHS[named.group(1)]
    year_named = named.group(2) or (found.group(1) if (found := _YEAR.search(words)) else None)
    that_month = [invoice for invoice in invoices if invoice.issued_on.month == month]
    year = int(year_named) if year_named else max((i.issued_on.year for i in that_month), default=None)
    if year is None:
        return InvoiceRequest(named.group(1))
    chosen = sorted(
        (invoice for invoice in that_month if invoice.issued_on.year == year),
        key=lambda invoice: (invoice.issued_on, invoice.id),
        reverse=True,
    )
    label = month_label(date(year, month, 1))
    return InvoiceRequest(label, tuple(chosen[:MAX_DOCUMENTS]))


def owned_invoice_pdf(erp: Erp, customer_id: str, invoice_id: str) -> bytes | None:
    """The invoice's PDF if it is one of `customer_id`'s invoices, else None (whether it exists
    for someone else is not told)."""
    if not any(invoice.id == invoice_id for invoice in erp.invoices_of(customer_id)):
        return None
    return erp.invoice_pdf(invoice_id)
