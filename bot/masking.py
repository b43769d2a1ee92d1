"""Finds card data in what customers write and masks it before it is stored, logged or handed over."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from itertools import accumulate

import phonenumbers

CARD_MASK = "[tarjeta oculta]"
CVV_MASK = "[cvv oculto]"

# A card number is 13 to 19 digits in groups; between two groups customers put anything that
# reads as a gap: spaces (several, tabs, newlines, no-break and other Unicode spaces), ".", "-",
# " - ", "/", dashes and invisible joiners. A comma is not one: "$1,234.50" is an amount.
_SEPARATORS = frozenset(
    ".-/"
    "\u00ad"  # soft hyphen
    "\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63\uff0d"  # hyphens, dashes, minus, full-width "-"
    "\uff0e\uff0f\u3002"  # full-width "." and "/", ideographic full stop
    "\u200b\u200c\u200d\u2060\ufeff"  # zero-width space, joiners, word joiner, BOM
)
# A gap between two groups of one card: 1 to 5 separators ("4111 - 1111" has 3). `\s` is
# str.isspace: tabs, newlines, no-break and the other Unicode spaces.
_GAP_LIMIT = 5
_GAP = re.compile("[" + re.escape("".join(sorted(_SEPARATORS))) + rf"\s]{{1,{_GAP_LIMIT}}}")
# Digits right after "+" start a phone number, never a card.
_PHONE_MARKS = "+\uff0b"
# Each phone lookup costs ~30 µs; past this many in one text, a Luhn-valid number of a card
# brand is masked without asking (masking too much is the safe side), so no text costs more.
_PHONE_LOOKUPS_PER_TEXT = 32
_CARD_LENGTHS = range(13, 20)
# Digit runs of any script (`\d` is str.isdecimal: ASCII, full-width U+FF10-FF19, Arabic-Indic...),
# with what lies between them; a flat pattern, linear.
_DIGIT_RUN_SPLIT = re.compile(r"(\d+)")
_DIGIT_RUN = re.compile(r"\d+")
_LUHN_DOUBLED = (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)
_DIGIT_VALUES = bytes.maketrans(b"0123456789", bytes(range(10)))
_DOUBLED_VALUES = bytes.maketrans(b"0123456789", bytes(_LUHN_DOUBLED))
_NO_END = b"\x0a"  # a residue no slice has: no group ends at that digit

# A security code named as such: "cvv 123", "cvc: 1234", "código de seguridad 123", "el de atrás es 123".
_NAMED_CVV = re.compile(
    r"\b(?:cvv2?|cvc2?|cv2|c[oó]d(?:igo)?\.?\s+(?:de\s+)?seguridad|(?:los\s+)?(?:n[uú]meros?\s+)?de\s+atr[aá]s)"
    r"\W{0,3}(?:(?:es|son|:)\s*)?(\d{3,4})\b",
    re.IGNORECASE,
)
# Right after a card number in the same message, a lone 3- or 4-digit group is its security code
# ("4111 1111 1111 1111 12/27 123"); an expiry has a slash and stays, and a number further on
# (an order number) is left alone.
_CODE_AFTER_CARD = re.compile(r"([^\d]{0,20}?(?:\d{1,2}/\d{2,4}[^\d]{0,20}?)?)(?<![\d/])(\d{3,4})(?![\d/])")


def luhn_valid(digits: str) -> bool:
    """True when the digit string passes the Luhn checksum every payment card number carries."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        total += _LUHN_DOUBLED[value] if position % 2 == 1 else value
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


def _is_card_brand(digits: str) -> bool:
    # Short numbers belong to few brands (13: Visa; 14: Diners; 15: Amex, JCB); the rest of
    # 13-15-digit runs are phone numbers or IDs with a lucky checksum.
    if len(digits) == 13:
        return digits.startswith("4")
    if len(digits) == 14:
        return digits.startswith(("30", "36", "38", "39"))
    if len(digits) == 15:
        return digits.startswith(("34", "37", "1800", "2131"))
    return True


def _is_card_number(digits: str) -> bool:
    return (
        len(digits) in _CARD_LENGTHS
        and luhn_valid(digits)
        and _is_card_brand(digits)
        and not _is_phone_number(digits)
    )


@dataclass
class _Chain:
    """Digit groups joined by short gaps of separators: where a card number can be."""

    starts: list[int]  # per group: where it starts in the text
    ends: list[int]  # per group: where it ends in the text
    digits: list[str]  # per group: its digits in ASCII
    offsets: list[int]  # per group: the index of its first digit in "".join(digits); then the total
    after_plus: bool  # the first group follows "+": a phone number, never a card

    def card_spans(self, budget: list[int]) -> list[tuple[int, int]]:
        """Where cards are, in the text: from each group, the longest card starting there.

        A card starts and ends at group boundaries and has 13 to 19 digits. Luhn prefix sums
        make each slice's checksum O(1), and `rfind` over the residues at group ends finds the
        longest slice passing it in the 7-digit window, so the work is linear in the digits.
        """
        offsets, total = self.offsets, self.offsets[-1]
        if total < _CARD_LENGTHS.start:
            return []
        text = "".join(self.digits)
        values = text.encode("ascii").translate(_DIGIT_VALUES)
        doubled = text.encode("ascii").translate(_DOUBLED_VALUES)
        # A slice text[s:e] doubles every second digit counting from its last: those at indexes
        # of e's parity. even_sums / odd_sums are prefix sums with the even / odd indexes doubled.
        even, odd = bytearray(values), bytearray(values)
        even[0::2], odd[1::2] = doubled[0::2], doubled[1::2]
        even_sums, odd_sums = [0, *accumulate(even)], [0, *accumulate(odd)]
        # At each group end of each parity, the residue a slice ending there must start with.
        even_ends, odd_ends = bytearray(_NO_END) * (total + 1), bytearray(_NO_END) * (total + 1)
        group_ending_at = {}
        for group, stop in enumerate(offsets[1:]):
            group_ending_at[stop] = group
            if stop % 2:
                odd_ends[stop] = odd_sums[stop] % 10
            else:
                even_ends[stop] = even_sums[stop] % 10
        spans: list[tuple[int, int]] = []
        first = 1 if self.after_plus else 0
        while first < len(self.digits):
            begin = offsets[first]
            low, high = begin + _CARD_LENGTHS.start, begin + _CARD_LENGTHS.stop
            even_residue, odd_residue = even_sums[begin] % 10, odd_sums[begin] % 10
            found = -1
            while found < 0 and high > low:
                stop = max(even_ends.rfind(even_residue, low, high), odd_ends.rfind(odd_residue, low, high))
                if stop < 0:
                    break
                if self._brand_not_phone(text[begin:stop], budget):
                    found = group_ending_at[stop]
                high = stop
            if found < 0:
                first += 1
            else:
                spans.append((self.starts[first], self.ends[found]))
                first = found + 1
        return spans

    @staticmethod
    def _brand_not_phone(digits: str, budget: list[int]) -> bool:
        if not _is_card_brand(digits):
            return False
        if len(digits) > 15 or budget[0] <= 0:
            return True
        budget[0] -= 1
        return not _is_phone_number(digits)


class _AsciiDigitTable(dict[int, str]):
    """A str.translate table from any Unicode decimal digit to its ASCII one, filled as met
    (at most the ~700 decimal digits Unicode has)."""

    def __missing__(self, code: int) -> str:
        self[code] = str(unicodedata.digit(chr(code)))
        return self[code]


_ASCII_DIGITS = _AsciiDigitTable()


def _ascii_digits(run: str) -> str:
    return run if run.isascii() else run.translate(_ASCII_DIGITS)


def _chains(text: str) -> list[_Chain]:
    """The text's digit groups, joined into chains where only a short gap of separators lies
    between them: one pass of a flat regex, then list operations over the groups."""
    parts = _DIGIT_RUN_SPLIT.split(text)  # [gap, digits, gap, digits, ..., gap]
    runs, gaps = parts[1::2], parts[2::2]
    if not runs:
        return []
    bounds = [0, *accumulate(map(len, parts))]
    starts, ends = bounds[1::2], bounds[2::2]
    digits = runs if text.isascii() else [_ascii_digits(run) for run in runs]
    joins = {gap: bool(_GAP.fullmatch(gap)) for gap in set(gaps)}
    chains: list[_Chain] = []
    first = 0
    for last, gap in enumerate(gaps):
        if joins[gap] and last + 1 < len(runs):
            continue
        begin = starts[first]
        chains.append(
            _Chain(
                starts[first : last + 1],
                ends[first : last + 1],
                digits[first : last + 1],
                [0, *accumulate(map(len, runs[first : last + 1]))],
                begin > 0 and text[begin - 1] in _PHONE_MARKS,
            )
        )
        first = last + 1
    return chains


def _card_spans(text: str) -> list[tuple[int, int]]:
    """Where card numbers are in the text, in order; linear in its length.

    One regex pass finds the digit runs (`\\d+`, no nesting), joined into chains by short gaps
    of separators. In a chain, a card starts and ends at group boundaries and has 13 to 19
    digits, so from each group at most 7 ends are tried, each checked in O(1) with prefix sums.
    """
    budget = [_PHONE_LOOKUPS_PER_TEXT]
    return [span for chain in _chains(text) for span in chain.card_spans(budget)]


def contains_card_number(text: str) -> bool:
    """True when the text holds something that is a payment card number by length and checksum."""
    return bool(_card_spans(text))


def looks_like_cvv(text: str) -> bool:
    """True when the whole message is a security code (3-4 digits) or names one ("cvv 123")."""
    stripped = text.strip()
    return bool(re.fullmatch(r"\d{3,4}", stripped) or _NAMED_CVV.search(stripped))


# --- a card number split across two consecutive messages ---
# What a message leaves for the next one to continue: the digit groups it ends with, at most this
# many digits (a card has 13-19, so the next message brings at least one), never a card itself.
CARRY_DIGITS = 15
# The country whose national phone numbers are never carried (a phone then a code is not a card).
_CARRY_PHONE_REGION = "MX"
# A number completed across two messages must start like a card brand: 2 (Mastercard 2221-2720),
# 3 (Amex, Diners, JCB), 4 (Visa), 5 (Mastercard, Maestro), 6 (Discover, UnionPay, Maestro).
_CARD_FIRST_DIGITS = "23456"


def _is_any_phone_number(digits: str) -> bool:
    if _is_phone_number(digits):
        return True
    try:
        return phonenumbers.is_valid_number(phonenumbers.parse(digits, _CARRY_PHONE_REGION))
    except phonenumbers.NumberParseException:
        return False


def _without_trailing_gap(text: str) -> str:
    end = len(text)
    while end and (text[end - 1] in _SEPARATORS or text[end - 1].isspace()):
        end -= 1
    return text[:end]


def card_tail(text: str) -> str:
    """The digits a card number split across messages could start with: the digit groups the
    text ends with (trailing separators allowed), as ASCII groups joined by one space, at most
    CARRY_DIGITS digits, cut at a group boundary. Empty when the text does not end in digits,
    when those digits follow "+" or are a phone number (national or international): a phone
    and then a code must not make a card. Call it on text whose cards are already masked."""
    if not text:
        return ""
    stripped = _without_trailing_gap(text)
    if not stripped or len(text) - len(stripped) > _GAP_LIMIT:
        return ""
    chains = _chains(stripped)
    if not chains or chains[-1].ends[-1] != len(stripped) or chains[-1].after_plus:
        return ""
    digits = chains[-1].digits
    if _is_any_phone_number("".join(digits)):
        return ""
    kept: list[str] = []
    total = 0
    for group in reversed(digits):
        if total + len(group) > CARRY_DIGITS:
            break
        kept.insert(0, group)
        total += len(group)
    if not kept or (len(kept) < len(digits) and _is_any_phone_number("".join(kept))):
        return ""
    return " ".join(kept)


def _continued_card(carried: str, text: str) -> tuple[int, int] | None:
    """Where in `text` a card that starts in `carried` (the previous message's tail) ends, and
    how many of the previous message's digits it takes: (end, digits carried), or None.

    The joined text is ~15 digits longer than `text`, so this stays linear. A number completed
    so must also start like a card brand, and its part in this message must not be a phone number
    on its own (a code after a phone number is not a card either)."""
    if not carried or not text:
        return None
    lead = _GAP.match(text)
    first = lead.end() if lead else 0
    if first >= len(text) or not text[first].isdecimal():
        return None
    # Only this message's first 19 digits can end such a card: the join stops after the run
    # that holds them, so the extra work is bounded whatever the message's length.
    limit, seen = len(text), 0
    for run in _DIGIT_RUN.finditer(text, first):
        seen += len(run.group())
        if seen >= _CARD_LENGTHS.stop:
            limit = run.end()
            break
    offset = len(carried) + 1
    joined = carried + " " + text[first:limit]
    spans = _card_spans(joined)
    if not spans or spans[0][0] >= len(carried) or spans[0][1] <= offset:
        return None
    start, end = spans[0]
    taken = sum(char.isdecimal() for char in carried[start:])
    whole = _ascii_digits("".join(char for char in joined[start:end] if char.isdecimal()))
    if whole[0] not in _CARD_FIRST_DIGITS or _is_any_phone_number(whole[taken:]):
        return None
    return first + end - offset, taken


# The metadata key of a message whose card began in the previous message: how many digits it
# took from there (the tracker store masks them in the stored previous message).
CARRIED_CARD_DIGITS = "card_digits_in_previous_message"


def mask_carried_card(text: str, digits: int) -> str:
    """The previous message, once the next one completed a card with its last `digits` digits:
    those digits (from the group they start at to the end) masked. When the text no longer ends
    so (it changed), its whole trailing digit chain is masked: too much is the safe side."""
    stripped = _without_trailing_gap(text)
    chains = _chains(stripped)
    if not chains or chains[-1].ends[-1] != len(stripped) or digits <= 0:
        return text
    chain = chains[-1]
    begin, total = chain.starts[0], 0
    for start, group in zip(reversed(chain.starts), reversed(chain.digits), strict=True):
        total += len(group)
        if total == digits:
            begin = start
            break
    return text[:begin] + CARD_MASK + text[len(stripped) :]


@dataclass(frozen=True)
class Masked:
    """A text with its card data replaced, and what was found in it."""

    text: str
    card: bool = False
    cvv: bool = False
    # How many of the previous message's last digits a card completed here started with.
    carried: int = 0

    @property
    def changed(self) -> bool:
        return self.card or self.cvv


def mask_card_data(text: str, *, after_card: bool = False, carried: str = "") -> Masked:
    """The text with card numbers and security codes replaced by placeholders.

    `after_card` says the previous message of the conversation held a card number, so a
    message that is only a 3-4 digit code is that card's security code. `carried` is the
    previous message's `card_tail`: a card that starts there and ends here is masked here (its
    digits in this message) and reported in `carried`.
    """
    if not text:
        return Masked(text or "")
    spans = _card_spans(text)
    continued = _continued_card(carried, text)
    taken = 0
    if continued is not None and not (spans and spans[0][0] < continued[0] < spans[0][1]):
        # A card of this message alone that goes on past the continued one wins ("pedido 1234",
        # then a whole card); one that ends where it does, or before, is its second part.
        spans = [(0, continued[0]), *(span for span in spans if span[0] >= continued[0])]
        taken = continued[1]
    pieces: list[str] = []
    position, cvv = 0, False
    for index, (start, end) in enumerate(spans):
        pieces += [text[position:start], CARD_MASK]
        position = end
        # The code that follows a card number in the same message ("... 1111 cvv 123", "... 1111 123"),
        # looked for before the next card only; the pattern reads at most ~50 characters.
        limit = spans[index + 1][0] if index + 1 < len(spans) else len(text)
        code = _CODE_AFTER_CARD.match(text, end, limit)
        if code:
            pieces += [code.group(1), CVV_MASK]
            position, cvv = code.end(), True
    pieces.append(text[position:])
    masked, card = "".join(pieces), bool(spans)
    masked, named = _NAMED_CVV.subn(lambda m: m.group().replace(m.group(1), CVV_MASK), masked)
    cvv = cvv or bool(named)
    if after_card and _lone_code(masked, card):
        masked, cvv = CVV_MASK, True
    return Masked(masked, card=card, cvv=cvv, carried=taken)


def _lone_code(masked_text: str, card: bool) -> bool:
    return not card and re.fullmatch(r"\d{3,4}", masked_text.strip()) is not None


def depends_on_previous_card(masked: Masked) -> bool:
    """Whether `mask_card_data(text)` (no `after_card`) gave `masked` for a text that `after_card`
    would mask differently: a message that is only a 3-4 digit number. For any other text the
    previous message need not be looked up."""
    return _lone_code(masked.text, masked.card)


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
    carried: int = 0  # digits of the previous message that a card completed here started with
    tail: str = ""  # what the next message may continue (`card_tail`); empty after card data


def screen_message(text: str, *, after_card: bool = False, carried: str = "") -> Screened:
    """The message for Rasa: itself, or the card_data intent when it holds card data (also a card
    that `carried`, the previous message's tail, began)."""
    masked = mask_card_data(text or "", after_card=after_card, carried=carried)
    if masked.changed:
        return Screened(f"/{CARD_DATA_INTENT}", card_data=True, carried=masked.carried)
    return Screened(text, card_data=False, tail=card_tail(text or ""))
