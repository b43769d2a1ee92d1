"""The tracker and lock stores Rasa builds from the settings, on the real PostgreSQL and Redis."""

import asyncio

from rasa.core.lock_store import InMemoryLockStore, RedisLockStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import UserUttered
from rasa.shared.core.trackers import DialogueStateTracker

from bot.settings import Settings
from connectors.stores import SettingsLockStore, SettingsTrackerStore, lock_store_for, tracker_store_arguments
from tests.conftest import REDIS_URL


def test_sqlite_url_becomes_tracker_store_arguments(tmp_path):
    arguments = tracker_store_arguments(f"sqlite:///{tmp_path}/x/bot.db")
    assert (arguments["dialect"], arguments["db"]) == ("sqlite", f"{tmp_path}/x/bot.db")
    assert (tmp_path / "x").is_dir()


def test_postgres_url_becomes_tracker_store_arguments():
    arguments = tracker_store_arguments("postgresql+psycopg2://bot:pw@db.internal:6432/rasa?sslmode=require")
    assert arguments == {
        "dialect": "postgresql+psycopg2",
        "host": "db.internal",
        "port": 6432,
        "db": "rasa",
        "username": "bot",
        "password": "pw",
        "query": {"sslmode": "require"},
    }


def test_conversations_are_kept_in_postgresql(pg_url):
    settings = Settings.from_env({"DATABASE_URL": pg_url})
    store = SettingsTrackerStore(domain=Domain.empty(), settings=settings, host=None)
    tracker = DialogueStateTracker.from_events("+525512345678", [UserUttered("hola", {"name": "greet"})])
    asyncio.run(store.save(tracker))
    again = SettingsTrackerStore(domain=Domain.empty(), settings=settings)
    restored = asyncio.run(again.retrieve("+525512345678"))
    assert restored.latest_message.text == "hola"
    assert str(store.engine.url).startswith("postgresql")


def test_no_redis_url_means_in_process_locks():
    assert isinstance(lock_store_for(Settings.from_env({})), InMemoryLockStore)


def test_redis_url_means_shared_locks_in_redis(redis_client, monkeypatch):
    monkeypatch.setenv("REDIS_URL", REDIS_URL)
    from bot import settings as settings_module

    settings_module.current.cache_clear()
    try:
        store = SettingsLockStore(endpoint_config=None)
    finally:
        settings_module.current.cache_clear()
    assert isinstance(store, RedisLockStore)

    async def hold_lock() -> list[bytes]:
        async with store.lock("+525512345678"):
            return redis_client.keys("*")

    keys = asyncio.run(hold_lock())
    assert any(b"+525512345678" in key for key in keys)
