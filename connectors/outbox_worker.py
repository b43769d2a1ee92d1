"""The outbox worker's process (`python -m connectors.outbox_worker`, started by `make run`):
bot/outbox_worker.py's worker over the process's graph (bot/wiring.py)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Awaitable, Callable
from datetime import timedelta

from bot.adapters.sql import SqlCaseBook, SqlStore
from bot.outbox_worker import OutboxWorker, sender_notify
from bot.settings import Settings
from bot.wiring import Wiring, build_wiring


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


async def _serve(poll_s: float) -> None:
    graph = build_wiring(Settings.from_env())
    worker, close = build_worker(graph)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    print(
        f"Outbox worker: retrying queued CRM/ERP writes (database {graph.settings.database_url}).", flush=True
    )
    try:
        await worker.run_forever(stop, poll_s)
    finally:
        await close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--poll", type=float, default=1.0, help="seconds between looks when idle")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    asyncio.run(_serve(args.poll))
    return 0


if __name__ == "__main__":
    sys.exit(main())
