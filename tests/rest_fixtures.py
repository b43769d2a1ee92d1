"""Fixtures for the REST adapter tests: the reference server over real HTTP, in-process or as a process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import requests

from bot.adapters.outbox_sql import Outbox
from bot.adapters.rest import RestCaseBook, RestClient, RestCrm, RestErp
from bot.backends import Backends
from bot.settings import BackendSettings
from reference.server import Credentials, ReferenceServer
from tests.harness import free_port

ROOT = Path(__file__).parent.parent
TOKEN = "crm-test-token"
API_KEY = "crm-test-key"

# No waiting between read retries: the tests provoke every failure on purpose. The timeouts leave
# room for a busy machine; the latency test sets its own short one.
FAST = BackendSettings(
    kind="rest",
    token=TOKEN,
    connect_timeout_s=2,
    read_timeout_s=3,
    read_retries=2,
    circuit_failures=3,
    circuit_cooldown_s=30,
)


class FakeClock:
    """Monotonic seconds that move only when a test says so (the breaker's cool-down)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def client_for(url: str, clock: FakeClock | None = None, **overrides) -> RestClient:
    return RestClient(
        "CRM", replace(FAST, url=url, **overrides), sleep=lambda _s: None, clock=clock or FakeClock()
    )


def rest_backends(
    url: str, outbox: Outbox | None = None, clock: FakeClock | None = None, **overrides
) -> Backends:
    crm_client, erp_client = client_for(url, clock, **overrides), client_for(url, clock, **overrides)
    return Backends(
        crm=RestCrm(crm_client), erp=RestErp(erp_client), cases=RestCaseBook(crm_client), outbox=outbox
    )


def start_server(store, port: int = 0) -> ReferenceServer:
    """The reference server over `store` (loaded by the `demo` fixture), on 127.0.0.1."""
    return ReferenceServer(store, Credentials(frozenset({TOKEN}), frozenset({API_KEY})), port=port).start()


class ServerProcess:
    """`python -m reference` (what `make crm-server` runs), killable."""

    def __init__(self, tmp: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.database_url = f"sqlite:///{tmp / 'crm.db'}"
        self.log = tmp / "crm-server.log"
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> ServerProcess:
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "CRM_SERVER_PORT": str(self.port),
            "CRM_SERVER_DATABASE_URL": self.database_url,
            "DEMO_DATA": str(ROOT / "data" / "demo" / "fixture.yml"),
            "CRM_TOKEN": TOKEN,
            "CRM_BACKEND": "sql",
            "ERP_BACKEND": "sql",
        }
        with self.log.open("a") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "reference"],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"the reference server exited:\n{self.log.read_text()}")
            try:
                if requests.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return self
            except requests.RequestException:
                time.sleep(0.2)
        pytest.fail(f"the reference server did not start:\n{self.log.read_text()}")

    def kill(self) -> None:
        """SIGKILL: no goodbye, connections drop as in a crash."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
