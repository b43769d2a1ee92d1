"""A console app served for real on a free loopback port (Sanic in a thread), for integration
tests that drive it with a real HTTP client."""

from __future__ import annotations

import re
import uuid
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
