"""Events reach analytics through Rasa's event broker, each exactly once: the SQL event broker's
table read from where the consumer stopped, and RabbitMQ (Rasa's Pika broker, the real server)
with the consumer killed mid-stream and restarted. Masked before they leave the tracker store."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from datetime import timedelta

import pytest
import sqlalchemy as sa
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import UserUttered
from rasa.shared.core.trackers import DialogueStateTracker

from bot.adapters.sql import SqlStore, from_db_time
from bot.analytics.consumer import BROKER_TABLE, read_sql_broker
from bot.analytics.schema import analytics_events, analytics_link_taps, analytics_sessions
from bot.analytics.sessions import event_key, trim_event
from bot.analytics.store import AnalyticsStore
from bot.migrations import target_metadata
from bot.settings import Settings
from connectors.event_broker import AnalyticsSqlBroker, broker_for
from connectors.stores import SettingsTrackerStore
from tests.analytics_helpers import NOW, Conversation, at, delivered_events

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RABBITMQ_URL = os.environ.get("TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")


def expected_keys(events: list[dict]) -> set[str]:
    keys = set()
    for event in events:
        body = {key: value for key, value in event.items() if key != "sender_id"}
        if trim_event(event["sender_id"], body) is not None:
            keys.add(event_key(event["sender_id"], body))
    return keys


def recorded_keys(store: SqlStore) -> list[str]:
    with store.connect() as conn:
        return list(conn.execute(sa.select(analytics_events.c.event_key)).scalars())


def test_the_sql_broker_table_is_read_once_in_batches_from_where_the_consumer_stopped(store):
    broker = AnalyticsSqlBroker(str(store.engine.url.render_as_string(hide_password=False)))
    analytics = AnalyticsStore(store)
    events = delivered_events()
    for event in events:
        broker.publish(event)
    assert read_sql_broker(analytics, NOW, batch=7) == 7
    while read_sql_broker(analytics, NOW, batch=7):
        pass
    for event in events[:10]:  # the same events published again (a replica retried, say)
        broker.publish(event)
    assert read_sql_broker(analytics, NOW) == 10
    keys = recorded_keys(store)
    assert Counter(keys).most_common(1)[0][1] == 1
    assert set(keys) == expected_keys(events)
    with store.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(analytics_sessions)).scalar() == 9
        conn.execute(sa.text(f"DROP TABLE {BROKER_TABLE}"))


def test_the_tracker_store_streams_events_masked_as_it_stores_them(tmp_path):
    url = f"sqlite:///{tmp_path / 'bot.db'}"
    broker = AnalyticsSqlBroker(url)
    store = SettingsTrackerStore(
        domain=Domain.empty(), event_broker=broker, settings=Settings.from_env({"DATABASE_URL": url})
    )
    tracker = DialogueStateTracker.from_events(
        "+525511111111", [UserUttered("mi tarjeta 4111 1111 1111 1111")]
    )
    asyncio.run(store.save(tracker))
    tracker.update(UserUttered("y la otra 5500 0000 0000 0004"))
    asyncio.run(store.save(tracker))
    with broker.engine.connect() as conn:
        table = AnalyticsSqlBroker.SQLBrokerEvent.__table__
        published = [row.data for row in conn.execute(sa.select(table.c.data).order_by(table.c.id))]
    assert len(published) == 2  # each event once: only the new ones on the second save
    assert "4111" not in published[0] and "0004" not in published[1]
    assert "tarjeta oculta" in published[0]


def test_a_tapped_links_notification_travels_with_the_event_to_the_link_taps(tmp_path):
    """The channel names the notification whose live link was tapped on the message's metadata
    (connectors/twilio_channel.py): the tracker store publishes it, the consumer records the tap."""
    url = f"sqlite:///{tmp_path / 'bot.db'}"
    sql = SqlStore(url)
    with sql.connect() as conn:
        for tables in target_metadata():
            tables.create_all(conn)
    broker = AnalyticsSqlBroker(url)
    store = SettingsTrackerStore(
        domain=Domain.empty(), event_broker=broker, settings=Settings.from_env({"DATABASE_URL": url})
    )
    metadata = {"channel": "whatsapp", "phone": "+525511111111", "notification": 7}
    tap = UserUttered(
        '/reschedule_delivery{"order_id": "PED-1"}',
        intent={"name": "reschedule_delivery", "confidence": 1.0},
        metadata=metadata,
        timestamp=at(24, 9, 30).timestamp(),
    )
    asyncio.run(store.save(DialogueStateTracker.from_events("+525511111111", [tap])))
    analytics = AnalyticsStore(sql)
    assert read_sql_broker(analytics, NOW) == 1
    with sql.connect() as conn:
        taps = conn.execute(sa.select(analytics_link_taps.c.notification_id, analytics_link_taps.c.at)).all()
    assert [(number, from_db_time(moment)) for number, moment in taps] == [(7, at(24, 9, 30))]
    sql.dispose()


# --- RabbitMQ -------------------------------------------------------------------------------


def many_events(conversations: int) -> list[dict]:
    events = []
    for number in range(conversations):
        talk = Conversation(f"+5255{number:08d}")
        talk.session(at(23, 9) + timedelta(minutes=number)).says("hola", "greet").answers("utter_greet", "u")
        talk.says("¿dónde está mi pedido?", "order_status").answers("action_order_status", "u")
        events += talk.delivered()
    return events


@pytest.fixture
def rabbit_settings(pg_url) -> dict[str, str]:
    name = f"kpi_test_{uuid.uuid4().hex[:8]}"
    store = SqlStore(pg_url)
    with store.connect() as conn:
        for tables in target_metadata():  # what `make migrate` makes; other tests may have left rows
            tables.drop_all(conn)
            tables.create_all(conn)
    store.dispose()
    env = {
        "BOT_ENV": "development",
        "DATABASE_URL": pg_url,
        "EVENT_BROKER_URL": RABBITMQ_URL,
        "EVENT_BROKER_QUEUE": name,
        "EVENT_BROKER_EXCHANGE": name,
    }
    yield env
    asyncio.run(_delete(name))


async def _delete(name: str) -> None:
    import aio_pika

    connection = await aio_pika.connect_robust(RABBITMQ_URL)
    async with connection:
        channel = await connection.channel()
        await channel.queue_delete(name)
        await channel.exchange_delete(name)


async def publish_through_rasa(settings: Settings, events: list[dict]) -> None:
    broker = await broker_for(settings)
    for event in events:
        broker.publish(event)
    while broker._background_tasks:  # Rasa publishes in background tasks: wait until all are done
        await asyncio.sleep(0.05)
    assert not broker._unpublished_events
    await broker.close()


def consumer(env: dict[str, str], *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "connectors.analytics_consumer", "--batch", "25", *args],
        cwd=ROOT,
        env={**os.environ, **env, "PYTHONPATH": ROOT},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def test_no_event_is_lost_or_doubled_when_the_rabbitmq_consumer_is_killed_mid_stream(rabbit_settings, pg_url):
    settings = Settings.from_env(rabbit_settings)
    every = many_events(300)
    first, second = every[: len(every) // 2], every[len(every) // 2 :]  # 150 conversations each
    store = SqlStore(pg_url)
    # Rasa's broker declares and binds the durable queue: what it publishes waits there.
    asyncio.run(publish_through_rasa(settings, first))
    first_consumer = consumer(rabbit_settings)
    try:
        deadline = time.monotonic() + 60
        while not 0 < len(recorded_keys(store)) < len(first) * 0.9:
            assert time.monotonic() < deadline, "the consumer recorded nothing in 60 s"
            time.sleep(0.02)
    finally:
        first_consumer.send_signal(signal.SIGKILL)
        first_consumer.wait(timeout=10)
    killed_at = len(recorded_keys(store))
    assert 0 < killed_at < len(expected_keys(first))  # killed mid-stream
    asyncio.run(publish_through_rasa(settings, second))  # published while no consumer runs
    restarted = consumer(rabbit_settings, "--once")
    output, _ = restarted.communicate(timeout=120)
    assert restarted.returncode == 0, output.decode()
    keys = recorded_keys(store)
    assert len(keys) == len(set(keys)) == len(expected_keys(first + second))
    assert set(keys) == expected_keys(first + second)
    with store.connect() as conn:
        sessions = conn.execute(
            sa.select(analytics_sessions.c.conversation_id, analytics_sessions.c.intent)
        ).all()
    assert len(sessions) == 300 and {intent for _, intent in sessions} == {"order_status"}
    store.dispose()
