"""The tracker and lock stores Rasa builds from the settings, on the real PostgreSQL and Redis."""

import asyncio

from rasa.core.lock_store import InMemoryLockStore, RedisLockStore
from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.constants import ACTION_LISTEN_NAME
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, BotUttered, SessionStarted, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker, EventVerbosity

from bot import wiring as wiring_module
from bot.settings import Settings
from bot.wiring import Wiring
from connectors.stores import SettingsLockStore, SettingsTrackerStore, lock_store_for, tracker_store_arguments
from tests.conftest import CLOCK, REDIS_URL


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
    # endpoints.yml's lock store reads the process's settings from the composition root.
    monkeypatch.setattr(
        wiring_module, "_process", Wiring.of(Settings.from_env({"REDIS_URL": REDIS_URL}), CLOCK)
    )
    store = SettingsLockStore(endpoint_config=None)
    assert isinstance(store, RedisLockStore)

    async def hold_lock() -> list[bytes]:
        async with store.lock("+525512345678"):
            return redis_client.keys("*")

    keys = asyncio.run(hold_lock())
    assert any(b"+525512345678" in key for key in keys)


def _turn(text: str, intent: str) -> list:
    return [
        UserUttered(text, {"name": intent}),
        ActionExecuted("utter_greet"),
        BotUttered(f"respuesta a {text}"),
        ActionExecuted(ACTION_LISTEN_NAME),
    ]


def _store(url: str) -> SettingsTrackerStore:
    return SettingsTrackerStore(domain=Domain.empty(), settings=Settings.from_env({"DATABASE_URL": url}))


def _as_rasa_reads_it(url: str, sender: str) -> list[dict]:
    plain = SQLTrackerStore(domain=Domain.empty(), **tracker_store_arguments(url))
    return asyncio.run(plain.retrieve(sender)).current_state(EventVerbosity.ALL)["events"]


def test_cached_conversation_reads_the_same_events_as_rasa(tmp_path):
    url = f"sqlite:///{tmp_path}/bot.db"
    store = _store(url)
    sender = "+525512345678"
    tracker = DialogueStateTracker.from_events(sender, [SessionStarted(), ActionExecuted(ACTION_LISTEN_NAME)])
    asyncio.run(store.save(tracker))
    for turn in range(12):
        tracker = asyncio.run(store.retrieve(sender))
        for event in _turn(f"mensaje {turn}", "greet"):
            tracker.update(event)
        asyncio.run(store.save(tracker))
    cached = asyncio.run(store.retrieve(sender)).current_state(EventVerbosity.ALL)["events"]
    assert cached == _as_rasa_reads_it(url, sender)
    assert len(cached) == 2 + 12 * 4


def test_each_read_gets_its_own_tracker(tmp_path):
    store = _store(f"sqlite:///{tmp_path}/bot.db")
    asyncio.run(store.save(DialogueStateTracker.from_events("a", _turn("hola", "greet"))))
    first = asyncio.run(store.retrieve("a"))
    first.update(UserUttered("sin guardar", {"name": "greet"}))
    second = asyncio.run(store.retrieve("a"))
    assert second is not first
    assert second.latest_message.text == "hola"  # an unsaved change stays with its reader


def test_events_saved_by_another_replica_are_read(tmp_path):
    url = f"sqlite:///{tmp_path}/bot.db"
    replica_a, replica_b = _store(url), _store(url)
    asyncio.run(replica_a.save(DialogueStateTracker.from_events("a", _turn("hola", "greet"))))
    asyncio.run(replica_a.retrieve("a"))  # replica A now holds the conversation in memory
    tracker = asyncio.run(replica_b.retrieve("a"))
    for event in _turn("gracias", "thank"):
        tracker.update(event)
    asyncio.run(replica_b.save(tracker))
    assert asyncio.run(replica_a.retrieve("a")).latest_message.text == "gracias"


def test_a_new_session_starts_from_its_own_events(pg_url):
    store = _store(pg_url)
    sender = "+5491112345678"
    tracker = DialogueStateTracker.from_events(
        sender, [SessionStarted(timestamp=1.0), *_turn("hola", "greet")]
    )
    asyncio.run(store.save(tracker))
    tracker = asyncio.run(store.retrieve(sender))
    tracker.update(ActionExecuted("action_session_start"))
    tracker.update(SessionStarted())
    for event in _turn("volvi", "greet"):
        tracker.update(event)
    asyncio.run(store.save(tracker))
    events = asyncio.run(store.retrieve(sender)).current_state(EventVerbosity.ALL)["events"]
    assert events == _as_rasa_reads_it(pg_url, sender)
    assert [event["text"] for event in events if event["event"] == "user"] == ["volvi"]


def test_a_message_deserialises_only_the_events_added_since(tmp_path, monkeypatch):
    import connectors.stores as stores

    deserialised: list[int] = []
    real = stores.deserialise_events
    monkeypatch.setattr(
        stores, "deserialise_events", lambda dicts: deserialised.append(len(dicts)) or real(dicts)
    )
    store = _store(f"sqlite:///{tmp_path}/bot.db")
    asyncio.run(store.save(DialogueStateTracker.from_events("a", _turn("hola", "greet"))))
    for turn in range(30):
        tracker = asyncio.run(store.retrieve("a"))
        for event in _turn(f"mensaje {turn}", "greet"):
            tracker.update(event)
        asyncio.run(store.save(tracker))
    # Rasa alone turns 4 + 8 + ... + 120 stored events back into objects (1,860); here the
    # first read takes the 4 stored ones and every later read only the 4 the previous turn added.
    assert deserialised == [4] * 30
