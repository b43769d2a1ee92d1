"""Tracker and lock stores that Rasa builds from the assistant's settings (DATABASE_URL, REDIS_URL).

endpoints.yml names these classes, so the database and Redis are configured in one place,
the environment, and the embedded defaults need no configuration at all.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rasa.core.brokers.broker import EventBroker
from rasa.core.lock_store import InMemoryLockStore, LockStore, RedisLockStore
from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.domain import Domain
from redis.connection import SSLConnection, parse_url
from sqlalchemy.engine import make_url

from bot.adapters.sql import tune_sqlite
from bot.settings import Settings, current


def tracker_store_arguments(database_url: str) -> dict[str, Any]:
    """SQLTrackerStore's keyword arguments for a SQLAlchemy URL."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    return {
        "dialect": url.drivername,
        "host": url.host,
        "port": url.port,
        "db": url.database,
        "username": url.username,
        "password": url.password,
        "query": dict(url.query) or None,
    }


class SettingsTrackerStore(SQLTrackerStore):
    """Rasa's SQL tracker store on DATABASE_URL (SQLite under var/ when unset)."""

    def __init__(
        self,
        domain: Domain | None = None,
        event_broker: EventBroker | None = None,
        settings: Settings | None = None,
        **_endpoint_kwargs: Any,
    ) -> None:
        settings = settings or current()
        super().__init__(
            domain=domain,
            event_broker=event_broker,
            **tracker_store_arguments(settings.database_url),
        )
        tune_sqlite(self.engine)


def lock_store_for(settings: Settings) -> LockStore:
    """Rasa's Redis lock store when REDIS_URL is set (shared by replicas), else in-process."""
    if not settings.redis_url:
        return InMemoryLockStore()
    options = parse_url(settings.redis_url)
    return RedisLockStore(
        host=options.get("host", "localhost"),
        port=int(options.get("port", 6379)),
        db=int(options.get("db", 0)),
        username=options.get("username"),
        password=options.get("password"),
        use_ssl=options.get("connection_class") is SSLConnection,
    )


class SettingsLockStore:
    """endpoints.yml's lock store type: constructing it yields the store `lock_store_for` picks."""

    def __new__(cls, endpoint_config: Any = None) -> LockStore:  # type: ignore[misc]
        return lock_store_for(current())
