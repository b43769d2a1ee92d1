"""Exactly-once processing of inbound messages: a MessageSid is claimed before it is processed."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod

import redis.asyncio as aioredis

# Twilio retries a webhook within minutes; a day covers every retry and manual replay.
CLAIM_TTL_S = 24 * 3600


class MessageClaims(ABC):
    @abstractmethod
    async def claim(self, message_sid: str) -> bool:
        """True for the first caller with this MessageSid, False for every later one."""

    async def close(self) -> None:  # noqa: B027 (optional: most claims hold nothing)
        """Release connections."""


class InProcessClaims(MessageClaims):
    """For a single Rasa process: check and set happen without an await in between."""

    def __init__(self, ttl_s: float = CLAIM_TTL_S) -> None:
        self._ttl = ttl_s
        self._seen: dict[str, float] = {}
        self._next_sweep = time.monotonic() + ttl_s

    async def claim(self, message_sid: str) -> bool:
        now = time.monotonic()
        if now >= self._next_sweep:
            self._seen = {sid: until for sid, until in self._seen.items() if until > now}
            self._next_sweep = now + self._ttl
        if self._seen.get(message_sid, 0) > now:
            return False
        self._seen[message_sid] = now + self._ttl
        return True


class RedisClaims(MessageClaims):
    """Shared by every replica: one atomic SET NX EX per MessageSid."""

    def __init__(self, url: str, ttl_s: int = CLAIM_TTL_S, prefix: str = "twilio:claim:") -> None:
        self._redis = aioredis.from_url(url)
        self._ttl = ttl_s
        self._prefix = prefix

    async def claim(self, message_sid: str) -> bool:
        return bool(await self._redis.set(self._prefix + message_sid, "1", nx=True, ex=self._ttl))

    async def close(self) -> None:
        await self._redis.close()


def claims_for(redis_url: str | None) -> MessageClaims:
    return RedisClaims(redis_url) if redis_url else InProcessClaims()
