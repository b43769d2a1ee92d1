"""What the inbound rules remember per conversation between two messages, shared by every replica.

Three facts: whether the last message held a card number (a lone 3-4 digit message right after
it is its security code), the digits the last message ended with when a card could start there
(`bot.masking.card_tail`: at most 15 digits, kept 5 minutes, so a card split across two messages
is caught in the second) and the numbered options last offered (so "2" or "la segunda" can be
read back). The tail is partial card data: it lives only here, never in a table or a log.
With REDIS_URL they live in Redis, where the replica that gets the next message finds them;
without it, in a small bounded in-process memory, as the locks do.
Synchronous on purpose: a call is one Redis round trip, made from whichever thread or event loop
the channel runs in (an asyncio client is bound to the loop that created it).
"""

from __future__ import annotations

import json
import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from dataclasses import dataclass
from threading import Lock
from typing import Any

import redis

# Long enough for any answer within WhatsApp's 24-hour window; then the memory lapses.
MEMORY_TTL_S = 24 * 3600
IN_PROCESS_CAPACITY = 10_000
# The second half of a split card comes within seconds; the first half is forgotten soon after.
CARD_TAIL_TTL_S = 300
REDIS_TIMEOUT_S = 2.0

Button = dict[str, str]  # {"title": ..., "payload": ...}


@dataclass(frozen=True)
class CardContext:
    """What the card screening of the next message needs of the previous one."""

    after_card: bool = False  # it held card data
    tail: str = ""  # the digits it ended with, which a card may continue (bot.masking.card_tail)


class ConversationMemory(ABC):
    @abstractmethod
    def after_card(self, conversation_id: str) -> bool:
        """Whether the conversation's last message held card data."""

    @abstractmethod
    def card_context(self, conversation_id: str) -> CardContext:
        """The card facts of the conversation's last message, in one read."""

    @abstractmethod
    def remember_card(self, conversation_id: str, held_card_data: bool, tail: str = "") -> None:
        """Record whether the message just read held card data, and the digits it ended with
        that a card may continue (empty: none). Both replace what the previous message left."""

    @abstractmethod
    def set_pending_buttons(self, conversation_id: str, buttons: list[Button]) -> None:
        """The options just offered as a numbered list."""

    @abstractmethod
    def pending_buttons(self, conversation_id: str) -> list[Button]:
        """The options last offered, still unanswered."""

    @abstractmethod
    def clear_pending_buttons(self, conversation_id: str) -> None:
        """Forget the options: the next message answered them (one answer each)."""

    def take_pending_buttons(self, conversation_id: str) -> list[Button]:
        buttons = self.pending_buttons(conversation_id)
        if buttons:
            self.clear_pending_buttons(conversation_id)
        return buttons

    def close(self) -> None:  # noqa: B027 (optional: the in-process memory holds nothing)
        """Release connections."""


class InProcessMemory(ConversationMemory):
    """For a single process: least recently used entries beyond `capacity` and expired ones go."""

    def __init__(self, ttl_s: float = MEMORY_TTL_S, capacity: int = IN_PROCESS_CAPACITY) -> None:
        self._ttl = ttl_s
        self._capacity = capacity
        self._entries: OrderedDict[tuple[str, str], tuple[float, Any]] = OrderedDict()
        self._lock = Lock()  # the webhook loop and the conversation worker thread both use it

    def __len__(self) -> int:
        return len(self._entries)

    def _get(self, key: tuple[str, str]) -> Any:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if entry[0] <= time.monotonic():
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return entry[1]

    def _set(self, key: tuple[str, str], value: Any, ttl_s: float | None = None) -> None:
        with self._lock:
            self._entries[key] = (time.monotonic() + (self._ttl if ttl_s is None else ttl_s), value)
            self._entries.move_to_end(key)
            while len(self._entries) > self._capacity:
                self._entries.popitem(last=False)

    def _delete(self, key: tuple[str, str]) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def after_card(self, conversation_id: str) -> bool:
        return bool(self._get(("card", conversation_id)))

    def card_context(self, conversation_id: str) -> CardContext:
        return CardContext(self.after_card(conversation_id), self._get(("tail", conversation_id)) or "")

    def remember_card(self, conversation_id: str, held_card_data: bool, tail: str = "") -> None:
        if held_card_data:
            self._set(("card", conversation_id), True)
        else:
            self._delete(("card", conversation_id))
        if tail:
            self._set(("tail", conversation_id), tail, CARD_TAIL_TTL_S)
        else:
            self._delete(("tail", conversation_id))

    def set_pending_buttons(self, conversation_id: str, buttons: list[Button]) -> None:
        self._set(("buttons", conversation_id), [dict(button) for button in buttons])

    def pending_buttons(self, conversation_id: str) -> list[Button]:
        return [dict(button) for button in self._get(("buttons", conversation_id)) or []]

    def clear_pending_buttons(self, conversation_id: str) -> None:
        self._delete(("buttons", conversation_id))


class RedisMemory(ConversationMemory):
    """Shared by every replica: one key per fact and conversation, expiring after `ttl_s`."""

    def __init__(self, url: str, ttl_s: int = MEMORY_TTL_S, prefix: str = "inbound:") -> None:
        # A hung Redis fails the call in seconds (the message is retried from the journal)
        # instead of holding the conversation, and everything behind it, for good.
        self._redis = redis.Redis.from_url(
            url, socket_timeout=REDIS_TIMEOUT_S, socket_connect_timeout=REDIS_TIMEOUT_S
        )
        self._ttl = ttl_s
        self._prefix = prefix

    def _key(self, fact: str, conversation_id: str) -> str:
        return f"{self._prefix}{fact}:{conversation_id}"

    def after_card(self, conversation_id: str) -> bool:
        return bool(self._redis.exists(self._key("card", conversation_id)))

    def card_context(self, conversation_id: str) -> CardContext:
        card, tail = self._redis.mget(self._key("card", conversation_id), self._key("tail", conversation_id))
        return CardContext(card is not None, tail.decode() if tail else "")

    def remember_card(self, conversation_id: str, held_card_data: bool, tail: str = "") -> None:
        card_key, tail_key = self._key("card", conversation_id), self._key("tail", conversation_id)
        with self._redis.pipeline(transaction=False) as pipe:  # one round trip
            if held_card_data:
                pipe.set(card_key, "1", ex=self._ttl)
            else:
                pipe.delete(card_key)
            if tail:
                pipe.set(tail_key, tail, ex=CARD_TAIL_TTL_S)
            else:
                pipe.delete(tail_key)
            pipe.execute()

    def set_pending_buttons(self, conversation_id: str, buttons: list[Button]) -> None:
        value = json.dumps(buttons, ensure_ascii=False)
        self._redis.set(self._key("buttons", conversation_id), value, ex=self._ttl)

    def pending_buttons(self, conversation_id: str) -> list[Button]:
        value = self._redis.get(self._key("buttons", conversation_id))
        return json.loads(value) if value else []

    def clear_pending_buttons(self, conversation_id: str) -> None:
        self._redis.delete(self._key("buttons", conversation_id))

    def take_pending_buttons(self, conversation_id: str) -> list[Button]:
        # GETDEL: two replicas reading the same answer cannot both apply it.
        value = self._redis.getdel(self._key("buttons", conversation_id))
        return json.loads(value) if value else []

    def close(self) -> None:
        self._redis.close()


def memory_for(redis_url: str | None) -> ConversationMemory:
    return RedisMemory(redis_url) if redis_url else InProcessMemory()
