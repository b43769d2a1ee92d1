"""The outbox worker's process (`python -m connectors.outbox_worker`, started by `make run`):
bot/outbox_worker.py's worker over the process's graph (bot/wiring.py), with a small HTTP
endpoint on OUTBOX_WORKER_HOST:OUTBOX_WORKER_PORT (loopback, 5056) that supervisors and probes ask:
`/health` (the loop is alive: a round ended within STALE_AFTER_S) and `/ready` (the last round
reached the database and the worker is not stopping). One word each, no credential, nothing else.
SIGTERM: the endpoint answers "not ready", the write in progress is finished, then the process exits.
Beside the writes, the same process deletes the agents' files past MEDIA_RETENTION_DAYS every
hour (bot/messaging/media_retention.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Awaitable, Callable
from datetime import timedelta

from aiohttp import web

from bot.adapters.sql import SqlCaseBook, SqlStore
from bot.messaging.media_retention import MediaRetention
from bot.outbox_worker import OutboxWorker, sender_notify
from bot.settings import Settings, shown_url
from bot.wiring import Wiring, build_wiring
from connectors.worker_main import worker_main


def build_worker(graph: Wiring) -> tuple[OutboxWorker, Callable[[], Awaitable[None]]]:
    """The worker `make run` starts, and how to release what it holds."""
    settings = graph.settings
    # Cases about writes that finally failed go to the assistant's own book: the CRM may be down.
    own = SqlStore(settings.database_url)
    sender = graph.sender()
    worker = OutboxWorker(
        graph.outbox,
        graph.backends,
        SqlCaseBook(own),
        sender_notify(sender, graph.messaging),
        graph.clock.now,
        max_attempts=settings.outbox_max_attempts,
        max_age=timedelta(seconds=settings.outbox_max_age_s),
    )

    async def close() -> None:
        await sender.transport.close()
        own.dispose()

    return worker, close


# The purge's pace: an hour late is nothing against a retention counted in days.
MEDIA_PURGE_INTERVAL = timedelta(hours=1)


def build_media_retention(graph: Wiring) -> MediaRetention | None:
    """The purge of the agents' files past their retention (None without a files table)."""
    if graph.attachments is None:
        return None
    settings = graph.settings
    return MediaRetention(
        graph.attachments,
        graph.clock.now,
        link_ttl=timedelta(minutes=settings.media_link_ttl_minutes),
        keep_after_expiry=timedelta(days=settings.media_retention_days),
    )


async def purge_media_forever(
    retention: MediaRetention, stop: asyncio.Event, interval: timedelta = MEDIA_PURGE_INTERVAL
) -> None:
    """A purge at start and then every `interval` until `stop` is set; a failed one (the
    database down) is logged and tried at the next turn, never stopping the writes beside it."""
    while not stop.is_set():
        try:
            await asyncio.to_thread(retention.purge)
        except Exception:
            logging.getLogger(__name__).exception("media retention: the purge failed; trying again later")
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), interval.total_seconds())


# A round lasts at most a batch of writes, each bounded by the backends' timeouts; a loop that has
# not ended one in this long is stuck, and its liveness check fails so that it gets restarted.
STALE_AFTER_S = 300.0


class WorkerHealth:
    """What the health endpoint answers, from the rounds the worker reports. Time is the given
    monotonic clock's (bot/clock.py), never read here."""

    def __init__(self, monotonic: Callable[[], float], stale_after_s: float = STALE_AFTER_S) -> None:
        self.monotonic, self.stale_after_s = monotonic, stale_after_s
        self.started = monotonic()
        self.last_round: float | None = None
        self.reached_database = False
        self.stopping = False

    def round_ended(self, reached_database: bool) -> None:
        self.last_round, self.reached_database = self.monotonic(), reached_database

    def alive(self) -> bool:
        last = self.last_round if self.last_round is not None else self.started
        return self.monotonic() - last <= self.stale_after_s

    def ready(self) -> bool:
        return self.reached_database and not self.stopping and self.alive()


def health_app(health: WorkerHealth) -> web.Application:
    async def live(_: web.Request) -> web.Response:
        if health.alive():
            return web.json_response({"status": "ok"})
        return web.json_response({"status": "stuck"}, status=503)

    async def ready(_: web.Request) -> web.Response:
        if health.ready():
            return web.json_response({"status": "ready"})
        return web.json_response({"status": "not ready"}, status=503)

    app = web.Application()
    app.add_routes([web.get("/health", live), web.get("/ready", ready)])
    return app


async def serve_health(health: WorkerHealth, host: str, port: int) -> web.AppRunner:
    """The endpoint, listening; `await runner.cleanup()` closes it."""
    runner = web.AppRunner(health_app(health), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner


async def _serve(poll_s: float) -> None:
    graph = build_wiring(Settings.from_env())
    settings = graph.settings
    worker, close = build_worker(graph)
    health = WorkerHealth(graph.clock.monotonic)
    stop = asyncio.Event()

    def on_signal() -> None:
        health.stopping = True  # not ready at once; the current write is finished first
        stop.set()

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal)
    endpoint = await serve_health(health, settings.outbox_worker_host, settings.outbox_worker_port)
    database = shown_url(settings.database_url)
    print(
        f"Outbox worker: retrying queued CRM/ERP writes (database {database}); health on "
        f"http://{settings.outbox_worker_host}:{settings.outbox_worker_port}/health and /ready.",
        flush=True,
    )
    retention = build_media_retention(graph)
    tasks = [worker.run_forever(stop, poll_s, on_round=health.round_ended)]
    if retention is not None:
        tasks.append(purge_media_forever(retention, stop))
    try:
        await asyncio.gather(*tasks)
    finally:
        await endpoint.cleanup()
        await close()


def main(argv: list[str] | None = None) -> int:
    return worker_main(__doc__.splitlines()[0], _serve, argv)


if __name__ == "__main__":
    sys.exit(main())
