"""A console app served for real on a free loopback port (Sanic in a thread), for integration
tests that drive it with a real HTTP client."""

from __future__ import annotations

import asyncio
import re
import socket
import threading
import uuid
from typing import Any

import requests
from sanic import Sanic

from bot.adapters.outbox_sql import Outbox
from bot.adapters.sql import SqlCaseBook, SqlCrm, SqlErp, SqlStore
from bot.backends import Backends
from bot.clock import Clock
from bot.handoff.service import build_services
from bot.settings import Settings
from bot.wiring import Wiring
from connectors.console.app import create_app
from connectors.console.rasa_api import RasaApi

Sanic.test_mode = True  # many apps in one process


def console_graph(settings: Settings, store: SqlStore, clock: Clock) -> Wiring:
    """What a console process has: the handoff services and the CRM/ERP over one database."""
    return Wiring.of(
        settings,
        clock,
        handoff=build_services(settings, store, clock),
        backends=Backends(
            crm=SqlCrm(store), erp=SqlErp(store), cases=SqlCaseBook(store), outbox=Outbox(store)
        ),
    )


class RunningConsole:
    """One console app served on a free loopback port until `stop()`."""

    def __init__(self, graph: Wiring, **options: Any) -> None:
        """`options` go to create_app (e.g. `kb=`, the knowledge base to show)."""
        self.graph = graph
        app = create_app(
            graph, "test-secret", RasaApi("http://127.0.0.1:9", None), name=f"c{uuid.uuid4().hex}", **options
        )
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
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
        assert started.wait(10), "the console did not start"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def login(self, name: str, password: str, session: requests.Session | None = None) -> requests.Response:
        """The login form's answer; `session` (a browser's cookies) keeps the session if it works."""
        session = session or requests.Session()
        form = session.get(f"{self.url}/login", timeout=10)
        csrf = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)
        return session.post(
            f"{self.url}/login",
            data={"csrf": csrf, "name": name, "password": password},
            allow_redirects=False,
            timeout=10,
        )

    def session(self, name: str, password: str) -> requests.Session:
        """A browser session logged in as `name`."""
        session = requests.Session()
        answer = self.login(name, password, session)
        assert answer.status_code == 302, answer.text
        return session

    def stop(self) -> None:
        async def close() -> None:
            self._server.close()
            await self._server.wait_closed()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
