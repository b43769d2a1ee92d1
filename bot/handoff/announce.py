"""Tells agents about handoff events in real time: Redis pub/sub when REDIS_URL is set.

Without Redis there is nothing to announce across processes: the console polls the handoff
tables (a short poll every two seconds), which works for one console process on any database.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import redis

logger = logging.getLogger(__name__)

CHANNEL = "handoffs"


class Announcer:
    """Publishes {"event": ..., "handoff_id": ..., ...} on the `handoffs` channel."""

    def __init__(self, redis_url: str | None) -> None:
        self._client = redis.Redis.from_url(redis_url, socket_timeout=2) if redis_url else None

    def announce(self, event: str, handoff_id: str, **details: Any) -> None:
        """Best effort: agents also see the queue by polling, so a Redis hiccup loses nothing."""
        if self._client is None:
            return
        message = json.dumps({"event": event, "handoff_id": handoff_id, **details}, ensure_ascii=False)
        try:
            self._client.publish(CHANNEL, message)
        except redis.RedisError:
            logger.warning("could not announce %s for %s on Redis", event, handoff_id)
