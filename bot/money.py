"""Amounts and due dates written the way each country writes them ("$ 1.234,50", "S/ 1,234.50")."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from babel.dates import format_date
from babel.numbers import format_currency

# Babel's CLDR patterns, except where local usage puts a space after the symbol (AR, CO, PE:
# CLDR glues the peso sign in es_AR, and joins S/ with a no-break space that some SMS
# gateways turn into "?").
_PATTERNS = {
    "AR": "¤ #,##0.00",
    "CO": "¤ #,##0.00",
    "PE": "¤ #,##0.00",
}
_CURRENCIES = {"AR": "ARS", "CL": "CLP", "CO": "COP", "MX": "MXN", "PE": "PEN"}


def currency_of(country: str) -> str:
    """The ISO 4217 currency of a country the assistant serves (MXN when unknown)."""
    return _CURRENCIES.get(country.upper(), "MXN")


def format_money(amount: Decimal, currency: str, country: str) -> str:
    """`amount` in `currency`, written as customers in `country` read it."""
    locale = f"es_{country.upper()}"
    pattern = _PATTERNS.get(country.upper())
    text = format_currency(amount, currency, format=pattern, locale=locale, currency_digits=True)
    return text.replace("\xa0", " ")


def format_due_date(day: date) -> str:
    """A due date in Spanish: "lunes 30 de noviembre"."""
    return format_date(day, "EEEE d 'de' MMMM", locale="es")
