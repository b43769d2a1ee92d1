"""A console app served for real on a free loopback port (Sanic in a thread), for integration
tests that drive it with a real HTTP client."""

from __future__ import annotations

import json
import re
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests

from bot.adapters.outbox_sql import Outbox
from bot.adapters.sql import SqlCaseBook, SqlCrm, SqlErp, SqlStore
from bot.backends import Backends
from bot.clock import Clock
from bot.handoff.service import build_services
from bot.settings import Settings
from bot.wiring import Wiring
from connectors.console.app import create_app
from connectors.console.rasa_api import RasaApi
from tests.served_app import ServedApp


def console_graph(settings: Settings, store: SqlStore, clock: Clock, **parts: Any) -> Wiring:
    """What a console process has: the handoff services and the CRM/ERP over one database (and
    `parts`, e.g. its messaging store, given to Wiring.of)."""
    return Wiring.of(
        settings,
        clock,
        handoff=build_services(settings, store, clock),
        backends=Backends(
            crm=SqlCrm(store), erp=SqlErp(store), cases=SqlCaseBook(store), outbox=Outbox(store)
        ),
        **parts,
    )


class RunningConsole(ServedApp):
    """One console app served on a free loopback port until `stop()`."""

    def __init__(self, graph: Wiring, rasa: RasaApi | None = None, **options: Any) -> None:
        """`rasa`: where the console writes into trackers (by default a closed port: every write
        fails); `options` go to create_app (e.g. `kb=`, the knowledge base to show)."""
        self.graph = graph
        rasa = rasa or RasaApi("http://127.0.0.1:9", None)
        app = create_app(graph, "test-secret", rasa, name=f"c{uuid.uuid4().hex}", **options)
        super().__init__(app, "console")

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


class FakeRasaBridge:
    """The Rasa server's console door (/webhooks/console/events), keeping what it is sent."""

    def __init__(self) -> None:
        self.events: list[dict] = []
        bridge = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (the http.server API)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.path.endswith("/events"):
                    bridge.events.append(body)
                answer = json.dumps({"messages": []}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *_: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
