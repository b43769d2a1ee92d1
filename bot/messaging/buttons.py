"""How a message's options look on each channel: WhatsApp buttons, a WhatsApp list, or numbers.

WhatsApp shows options natively through Twilio's Content API (content.twilio.com/v1/Content):
- `twilio/quick-reply`: a body (at most 1,024 characters) and an `actions` array of
  `{"title", "id"}` buttons. In a session (not an approved template) WhatsApp shows at most 3,
  with titles of at most 20 characters (twilio.com/docs/content/twilio-quick-reply; WhatsApp's
  "interactive reply buttons" page: 3 buttons, 20-character titles).
- `twilio/list-picker`: a body, a `button` that opens the list (at most 20 characters, like a
  reply button) and 1 to 10 `items` of `{"item"` ≤ 24 characters, `"id"` ≤ 200 characters,
  `"description"` ≤ 72 characters`}` (twilio.com/docs/content/twiliolist-picker). List pickers
  work only within the 24-hour session and cannot be approved as templates. One version of that
  page calls `description` required, another optional: it is sent only to carry the whole title of
  an item that had to be shortened (if Twilio refuses the content, the text goes out numbered).

The choice, for WhatsApp (SMS and every other case get today's numbered text, which is also what
a customer's "2" or "la segunda" is read against):
1. at most 3 options whose titles fit 20 characters → quick reply, titles as written;
2. at most 10 options whose titles fit 24 characters → list, titles as written;
3. at most 10 options, some longer: each long title is shortened at a word boundary to 23
   characters plus "…", its whole title kept as the item's description (up to 72) → list,
   but only if the shortened titles stay distinct (folded) and no first word is too long;
4. otherwise (more than 10 options, a title that cannot be shortened honestly, titles that
   collide once shortened, an empty title, a body over 1,024 characters, or a numbered text over
   1,600) → numbered text.

A button's id is not its payload: it is "opt-" and a digest of the payload (`button_id`), so a
tap is mapped back only to a payload the bot offered in this conversation (the pending options
of bot/messaging/memory.py); an id that matches none of them is read as text.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from bot.choices import fold, numbered_options
from bot.messaging.inbound import Channel

QUICK_REPLY_MAX_BUTTONS = 3
QUICK_REPLY_MAX_TITLE = 20
LIST_MAX_ITEMS = 10
LIST_MAX_TITLE = 24
LIST_MAX_DESCRIPTION = 72
LIST_MAX_BUTTON_TEXT = 20
CONTENT_MAX_BODY = 1024
FALLBACK_MAX_BODY = 1600  # a "twilio/text" body, like any message's
ELLIPSIS = "…"
_BUTTON_ID = re.compile(r"opt-[0-9a-f]{20}")


class Representation(str, Enum):
    QUICK_REPLY = "twilio/quick-reply"
    LIST = "twilio/list-picker"
    NUMBERED = "numbered"


@dataclass(frozen=True)
class Option:
    """One option as the bot offered it: the title shown and the payload it stands for."""

    title: str
    payload: str


@dataclass(frozen=True)
class NativeItem:
    title: str  # as shown: the option's title, or its honest shortening
    id: str  # button_id(payload)
    description: str = ""  # the whole title when `title` is shortened
    full_title: str = ""  # as the bot wrote it: the numbered text fallback shows this


@dataclass(frozen=True)
class NativeOptions:
    """Options WhatsApp shows as buttons or a list; the body itself is sent as a variable."""

    kind: Representation
    items: tuple[NativeItem, ...]
    list_button: str = ""  # the text of the button that opens a list


def button_id(payload: str) -> str:
    """The id a native button carries: a digest of its payload, never the payload itself, so a
    tap can only name an option, and a forged id names nothing the bot offered."""
    return "opt-" + hashlib.sha256(payload.encode("utf-8")).hexdigest()[:20]


def is_button_id(value: str | None) -> bool:
    """Whether `value` has the form of an id `button_id` gives (says nothing of who offered it)."""
    return bool(value) and _BUTTON_ID.fullmatch(value or "") is not None


def payload_for_id(tapped_id: str, offered: Sequence[dict[str, str]]) -> str | None:
    """The payload of the offered option whose id was tapped, or None (not offered, or forged)."""
    for option in offered:
        if button_id(option.get("payload", "")) == tapped_id:
            return option.get("payload", "")
    return None


def shorten(title: str, limit: int) -> str | None:
    """`title` cut at the last word boundary that leaves room for "…" within `limit`, or None
    when even its first word does not fit (no honest shortening)."""
    title = " ".join(title.split())
    if len(title) <= limit:
        return title
    words, kept = title.split(" "), ""
    for word in words:
        candidate = f"{kept} {word}" if kept else word
        if len(candidate) + len(ELLIPSIS) > limit:
            break
        kept = candidate
    kept = kept.rstrip(" ,;:.-/")
    return f"{kept}{ELLIPSIS}" if kept else None


def _distinct(titles: Sequence[str]) -> bool:
    folded = [fold(title) for title in titles]
    return all(folded) and len(set(folded)) == len(folded)


def choose(channel: Channel, body: str, options: Sequence[Option], list_button: str) -> NativeOptions | None:
    """The native form of `options` under `body`, or None for the numbered text (see the module
    docstring for the rules). `list_button` is the text of a list's button (≤ 20 characters)."""
    if channel is not Channel.WHATSAPP or not options or len(options) > LIST_MAX_ITEMS:
        return None
    if not body.strip() or len(body) > CONTENT_MAX_BODY:
        return None
    titles = [" ".join(option.title.split()) for option in options]
    if len(numbered_options(body, titles)) > FALLBACK_MAX_BODY:
        return None  # the content's text fallback (numbered) would not fit one message
    ids = [button_id(option.payload) for option in options]
    if not _distinct(titles) or len(set(ids)) != len(ids):
        return None  # two options that read (or lead) the same: the customer could not tell
    if len(options) <= QUICK_REPLY_MAX_BUTTONS and all(len(t) <= QUICK_REPLY_MAX_TITLE for t in titles):
        items = tuple(NativeItem(title, id_, "", title) for title, id_ in zip(titles, ids, strict=True))
        return NativeOptions(Representation.QUICK_REPLY, items)
    button = list_button.strip()
    if not button or len(button) > LIST_MAX_BUTTON_TEXT:
        return None
    shown = [shorten(title, LIST_MAX_TITLE) for title in titles]
    if any(title is None for title in shown) or not _distinct([t for t in shown if t]):
        return None
    items = tuple(
        NativeItem(
            short,
            id_,
            "" if short == title else (shorten(title, LIST_MAX_DESCRIPTION) or ""),
            title,
        )
        for short, title, id_ in zip(shown, titles, ids, strict=True)
        if short is not None
    )
    return NativeOptions(Representation.LIST, items, button)
