"""A Sanic app served for real on a free loopback port, in a thread of the test process, for
integration tests that drive it with a real HTTP client (the console, the notification intake)."""

from __future__ import annotations

import asyncio
import threading
import uuid

from sanic import Blueprint, Sanic

from bot.clock import Clock
from connectors.media import add_media_routes
from tests.harness import free_port

Sanic.test_mode = True  # many apps in one process


class ServedApp:
    """`app` served on 127.0.0.1:`port` from construction until `stop()`."""

    def __init__(self, app: Sanic, what: str) -> None:
        # Below the kernel's ephemeral range: a port bound to 0 and released can be taken by an
        # outgoing connection's local port before the server binds it (tests/harness.py).
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        started = threading.Event()

        def serve() -> None:
            asyncio.set_event_loop(self._loop)

            async def start() -> None:
                self._server = await app.create_server(
                    host="127.0.0.1", port=self.port, return_asyncio_server=True, access_log=False
                )
                await self._server.startup()
                started.set()

            self._loop.run_until_complete(start())
            self._loop.run_forever()

        self._thread = threading.Thread(target=serve, daemon=True)
        self._thread.start()
        assert started.wait(10), f"the {what} did not start"

    def stop(self) -> None:
        async def close() -> None:
            self._server.close()
            await self._server.wait_closed()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


def served_media_route(clock: Clock) -> ServedApp:
    """The Twilio channel's media route (connectors/media.py) as the Rasa server mounts it, under
    /webhooks/twilio, on `clock`; it reads the process's graph (install one first)."""
    app = Sanic(f"media_{uuid.uuid4().hex}")
    routes = Blueprint("twilio_media", url_prefix="/webhooks/twilio")
    add_media_routes(routes, clock)
    app.blueprint(routes)
    return ServedApp(app, "media route")
