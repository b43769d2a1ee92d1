"""The analytics consumer: turns the event broker's events into the KPIs' tables (docs/kpis.md).

`python -m connectors.analytics_consumer [--once]` (`make analytics`) reads RabbitMQ's queue when
EVENT_BROKER_URL is set, else the SQL event broker's table in DATABASE_URL, and every minute
copies the recent handoffs and cases. A RabbitMQ message is acknowledged only after the rows it
became are committed: killed at any moment, the consumer gets the unacknowledged ones again on
restart, and recording by event identity keeps each event once.

Beside the reading, a task checks the KPI alert rules (bot/alerts.yml) every
ALERT_CHECK_INTERVAL_S and posts fired alerts to ALERT_WEBHOOK_URL, in worker threads: a slow
webhook never holds up the events. One process fewer to supervise, and the alerts judge the
tables this same process keeps current.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys

import aio_pika
import sqlalchemy as sa

from bot.adapters.sql import SqlStore
from bot.analytics.alert_book import AlertBook
from bot.analytics.alert_webhook import deliver_due_alerts
from bot.analytics.alerts import DEFAULT_RULES, AlertRulesError, RuleFile, check_alerts
from bot.analytics.consumer import read_sql_broker, sync
from bot.analytics.store import AnalyticsStore
from bot.clock import Clock
from bot.settings import Settings, SettingsError, shown_url
from bot.wiring import wiring

log = logging.getLogger("analytics")
SYNC_EVERY_S = 60.0
IDLE_SLEEP_S = 0.5
DELIVER_EVERY_S = 5.0  # the alert webhook's due retries are looked for this often


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


def alert_round(
    analytics: AnalyticsStore, book: AlertBook, rules: RuleFile, settings: Settings, clock: Clock, check: bool
) -> None:
    """Check the rules (when `check`) at the clock's now, then post the due alerts."""
    if check:
        for alert in check_alerts(
            analytics,
            book,
            rules.rules(),
            clock.now(),
            settings.bot_timezone,
            deliver=settings.alert_webhook_url is not None,
        ):
            log.warning(
                "KPI alert %s: %s %s in %s (%.3f, threshold %s)",
                alert.id,
                alert.rule,
                alert.subject or "all sessions",
                alert.week,
                alert.value,
                alert.threshold,
            )
    if settings.alert_webhook_url and settings.alert_webhook_secret:
        deliver_due_alerts(book, settings.alert_webhook_url, settings.alert_webhook_secret, clock.now())


async def watch_alerts(
    analytics: AnalyticsStore, settings: Settings, clock: Clock, rules: RuleFile, stop: asyncio.Event
) -> None:
    """Until `stop`: the rules every ALERT_CHECK_INTERVAL_S, the webhook's due retries every
    DELIVER_EVERY_S. A failed round is logged and tried again at the next."""
    book = AlertBook(analytics.sql)
    last_check: float | None = None
    while not stop.is_set():
        check = last_check is None or clock.monotonic() - last_check >= settings.alert_check_interval_s
        try:
            await asyncio.to_thread(alert_round, analytics, book, rules, settings, clock, check)
        except Exception:
            log.exception("alert round failed; trying again in %.0f s", DELIVER_EVERY_S)
        if check:
            last_check = clock.monotonic()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), DELIVER_EVERY_S)


async def run(once: bool, batch: int) -> int:
    graph = wiring()
    settings = graph.settings
    analytics = AnalyticsStore(SqlStore(settings.database_url))
    try:
        rules = RuleFile(settings.alert_rules or DEFAULT_RULES)
    except AlertRulesError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    alerts = (
        None if once else asyncio.create_task(watch_alerts(analytics, settings, graph.clock, rules, stop))
    )
    try:
        if settings.event_broker_url:
            log.info("reading RabbitMQ queue %s", settings.event_broker_queue)
            count = await consume_rabbitmq(analytics, settings, graph.clock, stop, once, batch)
        else:
            log.info("reading the SQL event broker's table in %s", shown_url(settings.database_url))
            count = await consume_sql(analytics, graph.clock, stop, once, batch)
    finally:
        stop.set()
        if alerts is not None:
            await alerts
    if once:  # what was read, judged once
        await asyncio.to_thread(
            alert_round, analytics, AlertBook(analytics.sql), rules, settings, graph.clock, True
        )
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
