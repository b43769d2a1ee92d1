"""Management IDs (GES-7F3K2Q9M): what the customer is told for a case or a change, and types back."""

from __future__ import annotations

import re
import secrets

PREFIX = "GES-"
# No 0/O, 1/I/L: the ID is read aloud and typed back by people.
ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
LENGTH = 8  # 31**8, about 40 bits: not guessable, still easy to read out


def new_management_id() -> str:
    """A random management ID such as GES-7F3K2Q9M, from the OS's secure random source."""
    return PREFIX + "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))


def is_management_id(text: str) -> bool:
    body = text.removeprefix(PREFIX)
    return text.startswith(PREFIX) and len(body) == LENGTH and all(ch in ALPHABET for ch in body)


# Typed back by people: any case, the dash or a space optional ("ges 7f3k2q9m", "GES7F3K2Q9M").
_WRITTEN = re.compile(rf"\bGES[-\s]?([{ALPHABET}]{{{LENGTH}}})\b", re.IGNORECASE)


def find_management_id(text: str) -> str | None:
    """The first management ID written in `text`, as the assistant writes it, or None."""
    for match in _WRITTEN.finditer(text or ""):
        candidate = PREFIX + match.group(1).upper()
        if is_management_id(candidate):
            return candidate
    return None
