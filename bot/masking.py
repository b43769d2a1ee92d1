"""Finds card data in what customers write and masks it before it is stored, logged or handed over."""

from __future__ import annotations

import re
from dataclasses import dataclass

import phonenumbers

CARD_MASK = "[tarjeta oculta]"
CVV_MASK = "[cvv oculto]"

# Digits, alone or in groups joined by single spaces or dashes ("4111 1111 1111 1111",
# "4111-1111-1111-1111"); a card is 13 to 19 of them in consecutive groups. A leading "+"
# marks a phone number, never a card.
_DIGIT_GROUPS = re.compile(r"(?<![\d+])\d+(?:[ \-]\d+)*(?!\d)")
_GROUP = re.compile(r"\d+")
# A security code named as such: "cvv 123", "cvc: 1234", "código de seguridad 123", "el de atrás es 123".
_NAMED_CVV = re.compile(
    r"\b(?:cvv2?|cvc2?|cv2|c[oó]d(?:igo)?\.?\s+(?:de\s+)?seguridad|(?:los\s+)?(?:n[uú]meros?\s+)?de\s+atr[aá]s)"
    r"\W{0,3}(?:(?:es|son|:)\s*)?(\d{3,4})\b",
    re.IGNORECASE,
)
# Right after a card number in the same message, a lone 3- or 4-digit group is its security code
# ("4111 1111 1111 1111 12/27 123"); an expiry has a slash and stays, and a number further on
# (an order number) is left alone.
_CODE_AFTER_CARD = re.compile(r"^([^\d]{0,20}?(?:\d{1,2}/\d{2,4}[^\d]{0,20}?)?)(?<![\d/])(\d{3,4})(?![\d/])")


def luhn_valid(digits: str) -> bool:
    """True when the digit string passes the Luhn checksum every payment card number carries."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def _is_phone_number(digits: str) -> bool:
    # E.164 numbers have at most 15 digits; a run that is a valid number once "+" is put in
    # front (an Argentine mobile with 549..., a Mexican one with 521...) is a phone, not a card.
    if len(digits) > 15:
        return False
    try:
        return phonenumbers.is_valid_number(phonenumbers.parse("+" + digits))
    except phonenumbers.NumberParseException:
        return False


def _is_card_number(digits: str) -> bool:
    if not 13 <= len(digits) <= 19 or not luhn_valid(digits):
        return False
    # Short numbers belong to few brands (13: Visa; 14: Diners; 15: Amex, JCB); the rest of
    # 13-15-digit runs are phone numbers or IDs with a lucky checksum.
    if len(digits) == 13 and not digits.startswith("4"):
        return False
    if len(digits) == 14 and not digits.startswith(("30", "36", "38", "39")):
        return False
    if len(digits) == 15 and not digits.startswith(("34", "37", "1800", "2131")):
        return False
    return not _is_phone_number(digits)


def _card_spans(text: str) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    for run in _DIGIT_GROUPS.finditer(text):
        groups = [
            (run.start() + g.start(), run.start() + g.end(), g.group()) for g in _GROUP.finditer(run.group())
        ]
        first = 0
        while first < len(groups):
            # The longest card starting at this group: "4111 1111 1111 1111 12" holds a card
            # followed by something else.
            for last in range(len(groups) - 1, first - 1, -1):
                digits = "".join(group for _, _, group in groups[first : last + 1])
                if _is_card_number(digits):
                    spans.append((groups[first][0], groups[last][1]))
                    first = last
                    break
            first += 1
    return spans


def contains_card_number(text: str) -> bool:
    """True when the text holds something that is a payment card number by length and checksum."""
    return bool(_card_spans(text))


def looks_like_cvv(text: str) -> bool:
    """True when the whole message is a security code (3-4 digits) or names one ("cvv 123")."""
    stripped = text.strip()
    return bool(re.fullmatch(r"\d{3,4}", stripped) or _NAMED_CVV.search(stripped))


@dataclass(frozen=True)
class Masked:
    """A text with its card data replaced, and what was found in it."""

    text: str
    card: bool = False
    cvv: bool = False

    @property
    def changed(self) -> bool:
        return self.card or self.cvv


def mask_card_data(text: str, *, after_card: bool = False) -> Masked:
    """The text with card numbers and security codes replaced by placeholders.

    `after_card` says the previous message of the conversation held a card number, so a
    message that is only a 3-4 digit code is that card's security code.
    """
    if not text:
        return Masked(text or "")
    spans = _card_spans(text)
    masked, card, cvv = text, bool(spans), False
    for start, end in reversed(spans):
        tail = masked[end:]
        if card:
            # The code that follows a card number in the same message ("... 1111 cvv 123", "... 1111 123").
            tail, count = _CODE_AFTER_CARD.subn(lambda m: m.group(1) + CVV_MASK, tail, count=1)
            cvv = cvv or bool(count)
        masked = masked[:start] + CARD_MASK + tail
    masked, named = _NAMED_CVV.subn(lambda m: m.group().replace(m.group(1), CVV_MASK), masked)
    cvv = cvv or bool(named)
    if after_card and not card and re.fullmatch(r"\d{3,4}", masked.strip()):
        masked, cvv = CVV_MASK, True
    return Masked(masked, card=card, cvv=cvv)


def mask_sensitive(text: str) -> str:
    """The text safe to store, log or show to an agent: card numbers and named security codes masked."""
    return mask_card_data(text).text


# --- what the channels hand to Rasa (issue 6) ---

# The intent a message with card data becomes: Rasa never sees the digits, and the assistant
# answers with advice never to send card data in a chat (utter_card_data_refused).
CARD_DATA_INTENT = "card_data"
# What a one-time code or the digits of a document look like once stored.
SECRET_MASK = "[dato oculto]"  # noqa: S105 (a placeholder, not a password)


@dataclass(frozen=True)
class Screened:
    """A customer's message as the channel passes it on."""

    text: str
    card_data: bool


def screen_message(text: str, *, after_card: bool = False) -> Screened:
    """The message for Rasa: itself, or the card_data intent when it holds card data."""
    masked = mask_card_data(text or "", after_card=after_card)
    if masked.changed:
        return Screened(f"/{CARD_DATA_INTENT}", card_data=True)
    return Screened(text, card_data=False)
