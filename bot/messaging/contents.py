"""The WhatsApp buttons and lists the sender shows, as Twilio Content API resources made once.

A message with native options is sent with a ContentSid instead of a Body. Each distinct set of
options (kind, titles, ids, list button) is one content, created with
POST https://content.twilio.com/v1/Content (`friendly_name`, `language`, `variables`, `types`:
the quick reply or list picker, and a "twilio/text" fallback for channels that cannot show it)
(whose text is the numbered options under the body, as SMS shows them, so the message is
listed at Twilio, and recorded by the local fake, with the same text as before buttons existed)
and kept in the `whatsapp_contents` table, so every replica and every restart reuses it.

The body is the one part that changes from message to message ("Abrí el caso GES-…"), so it is
a variable, {{1}}, filled per message through ContentVariables: "Sí, confirmar / No, otro
horario" is one content for every customer and every wording of the question. Options that
change per customer (the orders offered by product name) make one content per distinct set;
Twilio limits how many contents an account may hold (see your account's limits), so those are
the ones to watch. Making the titles and ids variables too would make a handful of contents in
all, but an option list could then no longer be checked as a whole when it is created.

Two processes that create the same content at once both succeed at Twilio; the first SID stored
wins, and the loser deletes its own copy (if that fails, an unused duplicate stays at Twilio,
harmless but counted). When the Content API refuses or cannot be reached, the caller sends the
numbered text instead: a customer always gets the options one way or the other. A stored SID is
checked once per process (GET /v1/Content/{sid}) before its first use, so a content deleted at
Twilio is made again instead of failing every message that names it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from typing import Any, Protocol

from bot.choices import numbered_options
from bot.messaging.buttons import NativeOptions, Representation
from bot.messaging.store import MessagingStore

logger = logging.getLogger(__name__)

BODY_VARIABLE = "{{1}}"
LANGUAGE = "es"


class ContentApi(Protocol):
    async def create_content(self, definition: dict[str, Any]) -> str:
        """Create one content; return its SID (HX…). Raise on refusal or trouble."""

    async def delete_content(self, content_sid: str) -> None:
        """Delete one content (best effort)."""

    async def content_exists(self, content_sid: str) -> bool:
        """Whether the content is still there (True when that cannot be told)."""


def content_types(native: NativeOptions) -> dict[str, Any]:
    """The `types` of the content for `native`, the body left as the variable {{1}}."""
    if native.kind is Representation.QUICK_REPLY:
        shown: dict[str, Any] = {
            "body": BODY_VARIABLE,
            "actions": [{"title": item.title, "id": item.id} for item in native.items],
        }
    else:
        items = []
        for item in native.items:
            entry = {"item": item.title, "id": item.id}
            if item.description:
                entry["description"] = item.description
            items.append(entry)
        shown = {"body": BODY_VARIABLE, "button": native.list_button, "items": items}
    # Where the buttons cannot be shown, Twilio sends the text type: today's numbered options,
    # which the channel reads back as it always did ("2", "la segunda", a title).
    fallback = numbered_options(BODY_VARIABLE, [item.full_title or item.title for item in native.items])
    return {native.kind.value: shown, "twilio/text": {"body": fallback}}


def shape_key(native: NativeOptions) -> str:
    """What identifies a content: the sha256 of its types, written canonically."""
    canonical = json.dumps(content_types(native), ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def content_definition(native: NativeOptions) -> dict[str, Any]:
    """The Content API's create request for `native`."""
    key = shape_key(native)
    return {
        "friendly_name": f"autoservicio_{native.kind.value.split('/')[1].replace('-', '_')}_{key[:16]}",
        "language": LANGUAGE,
        "variables": {"1": "Elige una opción"},  # a sample value: Twilio asks for one per variable
        "types": content_types(native),
    }


class ContentCatalog:
    """ContentSids by shape: in this process's memory, then the table, then created at Twilio."""

    def __init__(self, store: MessagingStore, api: ContentApi) -> None:
        self._store = store
        self._api = api
        self._known: dict[str, str] = {}

    async def sid_for(self, native: NativeOptions) -> str:
        """The ContentSid showing `native`, created now if no process made it before. Raises what
        the Content API or the database raised: the caller falls back to numbered text."""
        key = shape_key(native)
        if key in self._known:
            return self._known[key]
        sid = await asyncio.to_thread(self._store.content_sid, key)
        if sid is not None and not await self._api.content_exists(sid):
            # Deleted at Twilio since it was stored (by hand, or a cleanup): made again.
            logger.warning("content %s is gone from Twilio; creating it again", sid)
            await asyncio.to_thread(self._store.forget_content, key, sid)
            sid = None
        if sid is None:
            created = await self._api.create_content(content_definition(native))
            sid = await asyncio.to_thread(self._store.save_content, key, native.kind.value, created)
            if sid != created:
                logger.info("content %s was created twice at once; deleting the copy %s", sid, created)
                try:
                    await self._api.delete_content(created)
                except Exception:  # noqa: BLE001 (an unused copy is harmless)
                    logger.warning("could not delete the duplicate content %s", created, exc_info=True)
            else:
                logger.info("created WhatsApp content %s (%s)", sid, native.kind.value)
        self._known[key] = sid
        return sid
