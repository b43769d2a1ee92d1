"""What the inbound rules remember per conversation between two messages, shared by every replica.

Two facts: whether the last message held a card number (a lone 3-4 digit message right after
it is its security code) and the numbered options last offered (so "2" or "la segunda" can be
read back). With REDIS_URL they live in Redis, where the replica that gets the next message
finds them; without it, in a small bounded in-process memory, as the locks do.
Synchronous on purpose: a call is one Redis round trip, made from whichever thread or event loop
the channel runs in (an asyncio client is bound to the loop that created it).
"""

from __future__ import annotations

import json
import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from threading import Lock
from typing import Any

import redis

# Long enough for any answer within WhatsApp's 24-hour window; then the memory lapses.
MEMORY_TTL_S = 24 * 3600
IN_PROCESS_CAPACITY = 10_000
REDIS_TIMEOUT_S = 2.0

Button = dict[str, str]  # {"title": ..., "payload": ...}


class ConversationMemory(ABC):
    @abstractmethod
    def after_card(self, conversation_id: str) -> bool:
        """Whether the conversation's last message held card data."""

    @abstractmethod
    def remember_card(self, conversation_id: str, held_card_data: bool) -> None:
        """Record whether the message just read held card data."""

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

    def _set(self, key: tuple[str, str], value: Any) -> None:
        with self._lock:
            self._entries[key] = (time.monotonic() + self._ttl, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self._capacity:
                self._entries.popitem(last=False)

    def _delete(self, key: tuple[str, str]) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def after_card(self, conversation_id: str) -> bool:
        return bool(self._get(("card", conversation_id)))

    def remember_card(self, conversation_id: str, held_card_data: bool) -> None:
        if held_card_data:
            self._set(("card", conversation_id), True)
        else:
            self._delete(("card", conversation_id))

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

    def remember_card(self, conversation_id: str, held_card_data: bool) -> None:
        key = self._key("card", conversation_id)
        if held_card_data:
            self._redis.set(key, "1", ex=self._ttl)
        else:
            self._redis.delete(key)

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
