"""The security suite: one test (or a small class of them) per finding of the trust audit
(issue 15), each named after the finding it guards. tests/conftest.py provides the databases,
Redis, the clock and the stack; tests/integration/conftest.py's fixtures are shared here, and
`serve` runs a real Sanic app on a free loopback port for the tests that speak HTTP."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sanic import Sanic

from tests.harness import free_port
from tests.integration.conftest import crm_store, customers_wrote  # noqa: F401 (pytest fixtures)

Sanic.test_mode = True  # many apps in one process


@contextmanager
def serve(app: Sanic) -> Iterator[int]:
    """Serve `app` on 127.0.0.1 (a free port, yielded) in a thread until the block ends."""
    # Below the kernel's ephemeral range (tests/harness.py): a port found by binding to 0 can be
    # taken by an outgoing connection's local port before the server binds it.
    port = free_port()
    loop = asyncio.new_event_loop()
    started = threading.Event()
    holder: dict[str, object] = {}

    def run() -> None:
        asyncio.set_event_loop(loop)

        async def start() -> None:
            server = await app.create_server(
                host="127.0.0.1", port=port, return_asyncio_server=True, access_log=False
            )
            await server.startup()
            holder["server"] = server
            started.set()

        loop.run_until_complete(start())
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert started.wait(10), "the app did not start"
    try:
        yield port
    finally:

        async def close() -> None:
            server = holder["server"]
            server.close()  # type: ignore[attr-defined]
            await server.wait_closed()  # type: ignore[attr-defined]

        asyncio.run_coroutine_threadsafe(close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
