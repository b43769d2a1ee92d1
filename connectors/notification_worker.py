"""The notification worker's process (`python -m connectors.notification_worker`, started by
`make run`): bot/notifications/worker.py over the process's graph (bot/wiring.py)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta

from bot.adapters.sql import SqlStore
from bot.consents.store import ConsentBook
from bot.deep_links import DeepLinks
from bot.notifications.pull import pull_once
from bot.notifications.rules import DEFAULT_RULES, check_templates, load_rules
from bot.notifications.store import NotificationStore
from bot.notifications.worker import NotificationWorker, TokenBucket
from bot.settings import Settings, shown_url
from bot.wiring import Wiring, build_wiring
from connectors.worker_main import worker_main


def build_worker(graph: Wiring) -> tuple[NotificationWorker, Callable[[], Awaitable[None]]]:
    """The worker `make run` starts, and how to release what it holds."""
    settings = graph.settings
    own = SqlStore(settings.database_url)
    sender = graph.sender()
    # The pace is measured on the machine's monotonic clock: a clock pinned by a test or moved by
    # BOT_NOW still lets real seconds pass between sends.
    bucket = TokenBucket(
        settings.notify_rate_per_s, time.monotonic, burst=max(1.0, settings.notify_rate_per_s)
    )
    path = settings.notify_rules or DEFAULT_RULES
    rules = load_rules(path)
    # At start-up: a rule naming a template the templates file lacks, or one it cannot fill, stops here.
    check_templates(rules, sender.templates, str(path))
    worker = NotificationWorker(
        NotificationStore(own),
        rules,
        sender,
        graph.messaging,
        graph.crm,
        graph.clock.now,
        bucket,
        default_zone=settings.bot_timezone,
        default_country=settings.default_country,
        lease=timedelta(seconds=settings.notify_lease_s),
        memory=graph.memory,
        consents=ConsentBook(own, graph.clock),
        # Quick replies that open a flow carry a link signed with IDENTITY_SECRET, which the Rasa
        # process checks; without it they carry their plain payload.
        links=DeepLinks(settings.identity_secret) if settings.identity_secret else None,
    )

    async def close() -> None:
        await sender.transport.close()
        own.dispose()

    return worker, close


async def pull_forever(graph: Wiring, store: NotificationStore, stop: asyncio.Event) -> None:
    """The pull job (bot/notifications/pull.py) every NOTIFY_PULL_INTERVAL_S, beside the sends."""
    settings = graph.settings
    while not stop.is_set():
        try:
            new = await asyncio.to_thread(
                pull_once, graph.erp, store, graph.clock.now(), settings.bot_timezone
            )
            if new:
                logging.getLogger(__name__).info("pull job: %d new event(s) from the ERP", new)
        except Exception:
            logging.getLogger(__name__).exception("pull job: polling the ERP failed; trying again later")
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), settings.notify_pull_interval_s)


async def _serve(poll_s: float) -> None:
    graph = build_wiring(Settings.from_env())
    worker, close = build_worker(graph)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    print(
        f"Notification worker: sending due notifications at {graph.settings.notify_rate_per_s:g}/s "
        f"(database {shown_url(graph.settings.database_url)}).",
        flush=True,
    )
    tasks = [worker.run_forever(stop, poll_s)]
    if graph.settings.notify_pull_interval_s:
        tasks.append(pull_forever(graph, worker.store, stop))
    try:
        await asyncio.gather(*tasks)
    finally:
        await close()


def main(argv: list[str] | None = None) -> int:
    return worker_main(__doc__.splitlines()[0], _serve, argv)


if __name__ == "__main__":
    sys.exit(main())
