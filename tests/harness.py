"""Starts the real stack (`scripts/stack.py run`, what `make run` starts) for end-to-end tests."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests
import yaml

ROOT = Path(__file__).parent.parent
# One credential per door of the Rasa server, as in production: none opens another.
API_TOKEN = "api-" + uuid.uuid4().hex  # RASA_TOKEN: Rasa's HTTP API (reads only by default)
REST_TOKEN = "rest-" + uuid.uuid4().hex  # REST_CHANNEL_TOKEN: the REST channel
CONSOLE_TOKEN = "console-" + uuid.uuid4().hex  # CONSOLE_RASA_TOKEN: the console's route
ACTION_SERVER_TOKEN = "actions-" + uuid.uuid4().hex  # what Rasa sends the stack's action server
RESPONSES = yaml.safe_load((ROOT / "domain.yml").read_text())["responses"]


# Ports for the stacks' servers come from below the kernel's ephemeral range (32768-60999 here,
# /proc/sys/net/ipv4/ip_local_port_range): a port the kernel hands out for binding to 0 is also
# one it may give an outgoing connection's local end a moment later, and then the server that
# meant to listen there finds it taken (a console failed to start so, three times, in one CI run).
_OWN_PORTS = (20000, 32767)


def free_port() -> int:
    """A loopback port free now, outside the ephemeral range, picked at random among many so two
    stacks started side by side do not pick the same one."""
    chooser = random.SystemRandom()
    for _ in range(200):
        port = chooser.randint(*_OWN_PORTS)
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as probe:  # the whole band busy: let the kernel choose
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def is_up(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


class Stack:
    def __init__(self, tmp: Path, extra_env: dict[str, str]) -> None:
        self.rasa_port, self.action_port, self.console_port = free_port(), free_port(), free_port()
        self.worker_port = free_port()  # the outbox worker's health endpoint
        self.notify_port = free_port()
        self.log = tmp / "stack.log"
        self.database_url = f"sqlite:///{tmp / 'bot.db'}"
        env = {
            **os.environ,
            "DATABASE_URL": self.database_url,
            "DEMO_DATA": str(ROOT / "data" / "demo" / "fixture.yml"),
            "RASA_PORT": str(self.rasa_port),
            "ACTION_PORT": str(self.action_port),
            "CONSOLE_PORT": str(self.console_port),
            "OUTBOX_WORKER_PORT": str(self.worker_port),
            "NOTIFY_PORT": str(self.notify_port),  # the notification intake: its own port per stack
            "RASA_TOKEN": API_TOKEN,
            "REST_CHANNEL_TOKEN": REST_TOKEN,
            "CONSOLE_RASA_TOKEN": CONSOLE_TOKEN,
            "ACTION_SERVER_TOKEN": ACTION_SERVER_TOKEN,
            "BOT_ENV": "development",
            **extra_env,
        }
        with self.log.open("w") as log:
            self.process = subprocess.Popen(
                [sys.executable, str(ROOT / "scripts" / "stack.py"), "run"],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.rasa_port}"

    @property
    def console(self) -> str:
        return f"http://127.0.0.1:{self.console_port}"

    def wait_ready(self, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"the stack exited with {self.process.returncode}:\n{self.tail()}")
            if "Assistant ready." in self.log.read_text():
                return
            time.sleep(0.5)
        pytest.fail(f"the stack was not ready within {timeout} s:\n{self.tail()}")

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.log.read_text().splitlines()[-lines:])

    def say(
        self, sender: str, message: str, token: str | None = REST_TOKEN, command: bool = False
    ) -> list[dict]:
        """`command=True`: "/intent" is read as a command (the REST channel allows it in development
        only); otherwise it is a customer's text and its leading "/" is dropped."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        reply = requests.post(
            f"{self.base}/webhooks/rest/webhook",
            json={"sender": sender, "message": message, "command": command},
            headers=headers,
            timeout=60,
        )
        assert reply.status_code == 200, reply.text
        return reply.json()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()


def is_response(text: str, name: str) -> bool:
    """Whether `text` is one of the variations of response `name` (placeholders filled)."""
    for variation in RESPONSES[name]:
        parts = variation["text"].replace("{", "\0{").split("\0")
        fixed = [part.split("}", 1)[-1] if part.startswith("{") else part for part in parts]
        if all(piece in text for piece in fixed):
            return True
    return False
