"""Message length rules: GSM-7 vs UCS-2 SMS segments, and splitting long texts at natural breaks."""

from __future__ import annotations

import re

# GSM 03.38 basic set. "¡" and "¿" are in it; á, í, ó, ú are not, so they force UCS-2.
GSM7_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# Characters that take two septets (an escape and the character).
GSM7_EXTENDED = set("^{}\\[~]|€\f")

TWILIO_MAX_BODY = 1600  # Twilio refuses longer bodies
MAX_SMS_SEGMENTS = 10  # beyond this carriers drop or mangle concatenated SMS


def is_gsm7(text: str) -> bool:
    return all(ch in GSM7_BASIC or ch in GSM7_EXTENDED for ch in text)


def _gsm7_length(text: str) -> int:
    return sum(2 if ch in GSM7_EXTENDED else 1 for ch in text)


def _ucs2_length(text: str) -> int:
    # Characters outside the Basic Multilingual Plane (most emojis) take two UTF-16 units.
    return sum(2 if ord(ch) > 0xFFFF else 1 for ch in text)


def sms_segments(text: str) -> int:
    """How many SMS segments `text` costs (160/153 GSM-7 septets, 70/67 UCS-2 units)."""
    if is_gsm7(text):
        length, single, multi = _gsm7_length(text), 160, 153
    else:
        length, single, multi = _ucs2_length(text), 70, 67
    if length <= single:
        return 1
    return -(-length // multi)


def sms_part_limit(text: str) -> int:
    """The longest SMS part, in characters, that stays within MAX_SMS_SEGMENTS for this text."""
    return min(TWILIO_MAX_BODY, MAX_SMS_SEGMENTS * (153 if is_gsm7(text) else 67))


_BREAK = re.compile(r"(?<=[.!?…])[ \t]+|\n+")


def _measure(text: str, sms: bool) -> int:
    if not sms:
        return len(text)
    return _gsm7_length(text) if is_gsm7(text) else _ucs2_length(text)


def split_text(text: str, limit: int, sms: bool = False) -> list[str]:
    """Split `text` into parts of at most `limit` (characters, or SMS units when `sms`).

    Breaks at line or sentence ends when it can, else between words, and only inside a word
    that is longer than a whole part. Line breaks inside a part are kept.
    """
    text = text.strip()
    if _measure(text, sms) <= limit:
        return [text] if text else []
    parts: list[str] = []
    current = ""
    for separator, piece in _pieces(text, limit, sms):
        candidate = f"{current}{separator}{piece}" if current else piece
        if _measure(candidate, sms) <= limit:
            current = candidate
        else:
            parts.append(current)
            current = piece
    if current:
        parts.append(current)
    return parts


def _pieces(text: str, limit: int, sms: bool) -> list[tuple[str, str]]:
    """(separator before, piece): sentences that fit; longer ones as words; longer words sliced."""
    pieces: list[tuple[str, str]] = []
    position, separator = 0, ""
    for match in [*_BREAK.finditer(text), None]:
        end = match.start() if match else len(text)
        sentence = text[position:end].strip()
        if sentence:
            if _measure(sentence, sms) <= limit:
                pieces.append((separator, sentence))
            else:
                for index, word in enumerate(sentence.split()):
                    glue = separator if index == 0 else " "
                    while _measure(word, sms) > limit:
                        cut = limit
                        while _measure(word[:cut], sms) > limit:
                            cut -= 1
                        pieces.append((glue, word[:cut]))
                        word, glue = word[cut:], ""
                    pieces.append((glue, word))
        if match:
            position, separator = match.end(), "\n" if "\n" in match.group() else " "
    return pieces
