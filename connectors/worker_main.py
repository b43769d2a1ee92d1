"""What the workers' processes (connectors/outbox_worker.py, connectors/notification_worker.py)
share at their command line: the one `--poll` option and the log format."""

from __future__ import annotations

import argparse
import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any


def worker_main(
    description: str, serve: Callable[[float], Coroutine[Any, Any, None]], argv: list[str] | None = None
) -> int:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--poll", type=float, default=1.0, help="seconds between looks when idle")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    asyncio.run(serve(args.poll))
    return 0
