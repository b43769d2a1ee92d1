"""The analytics consumer: turns the event broker's events into the KPIs' tables (docs/kpis.md).

`python -m connectors.analytics_consumer [--once]` (`make analytics`) reads RabbitMQ's queue when
EVENT_BROKER_URL is set, else the SQL event broker's table in DATABASE_URL, and every minute
copies the recent handoffs and cases. A RabbitMQ message is acknowledged only after the rows it
became are committed: killed at any moment, the consumer gets the unacknowledged ones again on
restart, and recording by event identity keeps each event once.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys

import aio_pika
import sqlalchemy as sa

from bot.adapters.sql import SqlStore
from bot.analytics.consumer import read_sql_broker, sync
from bot.analytics.store import AnalyticsStore
from bot.clock import Clock
from bot.settings import Settings, SettingsError, shown_url
from bot.wiring import wiring

log = logging.getLogger("analytics")
SYNC_EVERY_S = 60.0
IDLE_SLEEP_S = 0.5


async def _declare(channel: aio_pika.abc.AbstractChannel, settings: Settings) -> aio_pika.abc.AbstractQueue:
    """The exchange and durable queue, declared as Rasa's Pika broker declares them, so either
    may start first without an event being published to a queue nobody bound yet."""
    exchange = await channel.declare_exchange(settings.event_broker_exchange, aio_pika.ExchangeType.FANOUT)
    queue = await channel.declare_queue(settings.event_broker_queue, durable=True)
    await queue.bind(exchange, "")
    return queue


async def consume_rabbitmq(
    analytics: AnalyticsStore, settings: Settings, clock: Clock, stop: asyncio.Event, once: bool, batch: int
) -> int:
    """Record the queue's events in batches until `stop` (or, with `once`, until it is empty)."""
    connection = await aio_pika.connect_robust(settings.event_broker_url)
    recorded, last_sync = 0, None
    async with connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=batch)
        queue = await _declare(channel, settings)
        while not stop.is_set():
            messages = []
            while len(messages) < batch:
                message = await queue.get(no_ack=False, fail=False)
                if message is None:
                    break
                messages.append(message)
            events = []
            for message in messages:
                try:
                    events.append(json.loads(message.body))
                except ValueError:
                    log.warning("a message that is not JSON was dropped")
            if events:
                recorded += await asyncio.to_thread(analytics.record, events, clock.now())
            for message in messages:
                await message.ack()
            if last_sync is None or clock.monotonic() - last_sync > SYNC_EVERY_S:
                await asyncio.to_thread(sync, analytics, clock.now())
                last_sync = clock.monotonic()
            if not messages:
                if once:
                    break
                await asyncio.sleep(IDLE_SLEEP_S)
    return recorded


async def consume_sql(
    analytics: AnalyticsStore, clock: Clock, stop: asyncio.Event, once: bool, batch: int
) -> int:
    """Read the SQL event broker's table in order until `stop` (or, with `once`, its end)."""
    read, last_sync = 0, None
    while not stop.is_set():
        try:
            count = await asyncio.to_thread(read_sql_broker, analytics, clock.now(), batch)
        except (sa.exc.IntegrityError, sa.exc.OperationalError) as error:
            # Another reader (`make report`'s catch-up) recorded the same rows first: read again.
            log.warning("batch not recorded (%s); reading it again", type(error).__name__)
            await asyncio.sleep(IDLE_SLEEP_S)
            continue
        read += count
        if last_sync is None or clock.monotonic() - last_sync > SYNC_EVERY_S or (once and not count):
            await asyncio.to_thread(sync, analytics, clock.now())
            last_sync = clock.monotonic()
        if not count:
            if once:
                break
            await asyncio.sleep(IDLE_SLEEP_S)
    return read


async def run(once: bool, batch: int) -> int:
    graph = wiring()
    settings = graph.settings
    analytics = AnalyticsStore(SqlStore(settings.database_url))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    if settings.event_broker_url:
        log.info("reading RabbitMQ queue %s", settings.event_broker_queue)
        count = await consume_rabbitmq(analytics, settings, graph.clock, stop, once, batch)
    else:
        log.info("reading the SQL event broker's table in %s", shown_url(settings.database_url))
        count = await consume_sql(analytics, graph.clock, stop, once, batch)
    log.info("%d events read", count)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m connectors.analytics_consumer", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--once", action="store_true", help="read what is there, then stop")
    parser.add_argument("--batch", type=int, default=500, help="events per transaction (default 500)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s analytics %(message)s")
    try:
        return asyncio.run(run(args.once, max(1, args.batch)))
    except SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
