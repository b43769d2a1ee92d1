"""The one function that turns a phone number as channels and people write it into E.164."""

from __future__ import annotations

import re

import phonenumbers

_CHANNEL_PREFIX = re.compile(r"^(whatsapp|sms|tel|phone):", re.IGNORECASE)


class InvalidPhoneNumber(ValueError):
    """The text is not a phone number we can place in any country."""


def normalize_phone(raw: str, default_country: str = "MX") -> str:
    """Return `raw` in E.164 (`+5215512345678` → `+525512345678`).

    Accepts channel addresses (`whatsapp:+54911…`), spaces, dashes and parentheses. A number
    without a leading + or 00 is read as a number of `default_country`.
    """
    text = _CHANNEL_PREFIX.sub("", (raw or "").strip()).strip()
    if text.startswith("00"):
        text = "+" + text[2:]
    try:
        parsed = phonenumbers.parse(text, None if text.startswith("+") else default_country)
    except phonenumbers.NumberParseException as error:
        raise InvalidPhoneNumber(f"not a phone number: {raw!r}") from error

    # WhatsApp still reports Mexican mobiles with the "1" Mexico dropped in 2019
    # (+52 1 55…); the number people have on file is the one without it.
    national = str(parsed.national_number)
    if parsed.country_code == 52 and len(national) == 11 and national.startswith("1"):
        parsed = phonenumbers.parse(f"+52{national[1:]}", None)

    if not phonenumbers.is_possible_number(parsed):
        raise InvalidPhoneNumber(f"not a phone number: {raw!r}")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def phone_country(phone: str) -> str | None:
    """The ISO 3166 alpha-2 country of an E.164 number (`+51987654321` → `PE`), or None when the
    number belongs to no single country (or is not a number)."""
    try:
        parsed = phonenumbers.parse(phone, None)
    except phonenumbers.NumberParseException:
        return None
    region = phonenumbers.region_code_for_number(parsed)
    # "ZZ": unknown; "001": a non-geographic number (international freephone, satellites).
    return region if region and region.isalpha() and region != "ZZ" else None
