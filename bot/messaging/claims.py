"""Exactly-once processing of inbound messages: a MessageSid is claimed before it is processed."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections import OrderedDict

import redis.asyncio as aioredis

# Twilio retries a webhook within minutes; a day covers every retry and manual replay.
CLAIM_TTL_S = 24 * 3600


class MessageClaims(ABC):
    @abstractmethod
    async def claim(self, message_sid: str) -> bool:
        """True for the first caller with this MessageSid, False for every later one."""

    async def close(self) -> None:  # noqa: B027 (optional: most claims hold nothing)
        """Release connections."""


# Claims one process keeps at most. Every claim lives the same TTL, so the oldest is the one
# evicted: a message claimed this many messages ago. Twilio retries within minutes, so evicting
# a claim hours old does not let a retry through; at 50,000 claims, only a process taking more
# than 50,000 messages within a retry's minutes could (and such a process runs with REDIS_URL).
IN_PROCESS_CLAIMS = 50_000


class InProcessClaims(MessageClaims):
    """For a single Rasa process: check and set happen without an await in between.

    Claims are kept in the order they were made, which is the order they expire (one TTL for
    all): expired ones are dropped from the front on each claim, and beyond `capacity` the
    oldest goes, so the memory is bounded by `capacity` whatever the traffic."""

    def __init__(self, ttl_s: float = CLAIM_TTL_S, capacity: int = IN_PROCESS_CLAIMS) -> None:
        self._ttl = ttl_s
        self._capacity = capacity
        self._seen: OrderedDict[str, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._seen)

    async def claim(self, message_sid: str) -> bool:
        now = time.monotonic()
        while self._seen:
            oldest, until = next(iter(self._seen.items()))
            if until > now:
                break
            del self._seen[oldest]
        if self._seen.get(message_sid, 0) > now:
            return False
        self._seen[message_sid] = now + self._ttl
        self._seen.move_to_end(message_sid)
        while len(self._seen) > self._capacity:
            self._seen.popitem(last=False)
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
