"""`make scale-test`: two Rasa replicas and two action servers behind HAProxy, one Rasa killed with
kill -9 while customers write; every accepted message answered once, in order, none refused.

All on loopback, all real but Twilio's cloud (tests/fake_twilio.py):
- HAProxy from Debian's package (scripts/ensure_haproxy.sh installs it when missing), run by this
  script with its own configuration (`haproxy_config`, mirroring deploy/compose/haproxy.cfg):
  one frontend for the Rasa replicas, health-checked on their readiness
  (`/webhooks/twilio/ready`, every second, out after 2 failures, back after 2 successes), and
  one for the action servers (`/health`). A webhook that reaches a dead replica (connection
  refused, or closed without an answer) or gets a 503 is sent again to the other replica by
  HAProxy itself (`retries`, `option redispatch 1`, `retry-on`): safe for Twilio's webhooks only,
  because the inbound journal de-duplicates by MessageSid; every other path gets no L7 retry.
- The action servers are shared through HAProxy: each Rasa replica calls HAProxy's action
  frontend, which spreads the calls over both action servers (as deploy/compose/ and the Helm
  charts' Service do). A Rasa replica's death then costs no action server, and an action
  server's death no Rasa replica. Action calls are retried only when the connection was never
  made (an action may have written before it died).
- Both Rasa replicas, both action servers, the outbox worker and the console share one
  PostgreSQL database (SCALE_DATABASE_URL, else TEST_DATABASE_URL, else the tests' default
  `test`) and one Redis database (SCALE_REDIS_URL, else TEST_STACK_REDIS_URL, else the tests'
  default db 13): the tracker store, the inbound journal and its leases, the lock store, the
  conversation memories. Nothing is dropped: each run writes from phone numbers of its own.
- scripts/supervisor.py keeps every process alive, as `make run` does: the killed Rasa replica
  is restarted (after 1 s), loads its model, and HAProxy puts it back once its readiness answers.
  Until then the other replica takes every webhook, and the rows the dead one had leased are
  taken over when their lease (15 s) runs out.

Traffic is open loop: CUSTOMERS customers (200) write "hola", "donde esta mi pedido", "gracias",
… at RATE messages a second in all (10) for SECONDS (60), customer c's k-th message due at
(k × CUSTOMERS + c) / RATE s whatever the bot's speed; a customer's next message waits for the
previous one's 2xx (Twilio's order). 10% of deliveries are repeated with the same MessageSid. A
delivery without a 2xx is sent again after 1 s, as Twilio does. KILL_AT (a third of SECONDS) into
the traffic, once replica 1 holds a lease on some journal row, it is killed with kill -9.

Printed and checked (scripts/chaos.py's accounting: each reply attributed to its inbound message
through outbound_messages): lost, doubled, out of order (each 0), per-customer order (100%), and
the seconds in which any webhook delivery was refused or failed (goal 0). Exit 1 otherwise.
Bounded: the stack's start (300 s), SECONDS, then 180 s for the answers.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import requests
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import stack  # noqa: E402 (scripts/stack.py)
from chaos import WEBHOOK, Driver, Inbound, Tally  # noqa: E402 (scripts/chaos.py)
from supervisor import GroupProcess, ProcessSpec, Supervisor  # noqa: E402 (scripts/supervisor.py)

from tests.fake_twilio import FakeTwilio, inbound_form  # noqa: E402
from tests.harness import API_TOKEN, free_port  # noqa: E402

PUBLIC_URL = "https://scale.example.test"
CONVERSATION = ("hola", "donde esta mi pedido", "gracias")
DUPLICATE_SHARE = 0.10
STARTUP_TIMEOUT_S = 300.0
SETTLE_TIMEOUT_S = 180.0
DELIVERY_TIMEOUT_S = 15.0  # what Twilio gives a webhook
KEPT_LOGS = ROOT / "var" / "scale"
PHASE = "scale"


def log(message: str) -> None:
    print(f"[scale {time.strftime('%H:%M:%S')}] {message}", flush=True)


def fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(2)


# --- what runs ---------------------------------------------------------------------------------


@dataclass
class Ports:
    rasa: tuple[int, int] = field(default_factory=lambda: (free_port(), free_port()))
    actions: tuple[int, int] = field(default_factory=lambda: (free_port(), free_port()))
    lb_rasa: int = field(default_factory=free_port)
    lb_actions: int = field(default_factory=free_port)
    console: int = field(default_factory=free_port)
    worker: int = field(default_factory=free_port)


WEBHOOK_RETRIES = """\
    # A webhook that met a dead replica (refused, or closed with no answer), or a replica that
    # answered 503, is sent again to the other one, up to 3 times. Safe for Twilio's webhooks
    # because the inbound journal de-duplicates by MessageSid; nothing else is retried once sent
    # (a REST channel turn or an API call would run twice).
    retries 3
    option redispatch 1
    retry-on conn-failure empty-response response-timeout 503
    http-request disable-l7-retry unless { path_beg /webhooks/twilio/ }
"""


def haproxy_config(ports: Ports, stats_socket: Path, webhook_retries: bool = True) -> str:
    """deploy/compose/haproxy.cfg with fixed loopback servers and faster checks. Without
    `webhook_retries` (--health-check-only, for comparison) only the health check takes a dead
    replica out, and HAProxy's default connection retries go to the same server."""
    rasa_servers = "\n".join(
        f"    server rasa{n} 127.0.0.1:{port} check" for n, port in enumerate(ports.rasa, start=1)
    )
    action_servers = "\n".join(
        f"    server actions{n} 127.0.0.1:{port} check" for n, port in enumerate(ports.actions, start=1)
    )
    return f"""# Written by scripts/scale_test.py for one run.
global
    log stdout format raw local0
    maxconn 4000
    stats socket {stats_socket} mode 600 level operator

defaults
    mode http
    log global
    option httplog
    timeout connect 1s
    timeout client 30s
    timeout server 30s
    # Checked every second (every 0.5 s once a check failed): a dead server (connection refused)
    # is out after 2 failed checks; a live one answers a check within 5 s even on a busy machine
    # (a check timing out on both replicas at once would leave no server: 503 to every webhook).
    timeout check 5s
    default-server inter 1s fastinter 500ms downinter 1s fall 2 rise 2

frontend rasa_in
    bind 127.0.0.1:{ports.lb_rasa}
    default_backend rasa

backend rasa
    balance roundrobin
    option httpchk GET /webhooks/twilio/ready
    http-check expect status 200
    # The whole body first, so a request can be sent again to another server.
    option http-buffer-request
{WEBHOOK_RETRIES if webhook_retries else ""}{rasa_servers}

frontend actions_in
    bind 127.0.0.1:{ports.lb_actions}
    default_backend actions

backend actions
    balance roundrobin
    option httpchk GET /health
    http-check expect status 200
    # Only a connection never made is tried elsewhere: an action that died may have written.
    retries 3
    option redispatch 1
    retry-on conn-failure
{action_servers}
"""


def shared_stores(prefix: str) -> tuple[str, str]:
    """The PostgreSQL database and Redis the replicas share: <prefix>_DATABASE_URL and
    <prefix>_REDIS_URL, else the integration tests' (TEST_DATABASE_URL, TEST_STACK_REDIS_URL,
    else tests/conftest.py's defaults)."""
    database_url = (
        os.environ.get(f"{prefix}_DATABASE_URL")
        or os.environ.get("TEST_DATABASE_URL")
        or "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
    )
    redis_url = (
        os.environ.get(f"{prefix}_REDIS_URL")
        or os.environ.get("TEST_STACK_REDIS_URL")
        or "redis://127.0.0.1:6379/13"
    )
    if not database_url.startswith("postgresql"):
        fail(f"the replicas share one PostgreSQL database: {prefix}_DATABASE_URL=postgresql+psycopg2://…")
    return database_url, redis_url


def haproxy_binary() -> str:
    if subprocess.call(["bash", str(ROOT / "scripts" / "ensure_haproxy.sh")]) != 0:
        fail("HAProxy is needed (see above): apt-get install -y haproxy, or HAPROXY=/path/to/haproxy.")
    found = os.environ.get("HAPROXY") or shutil.which("haproxy") or "/usr/sbin/haproxy"
    return found


def stack_environment(database_url: str, redis_url: str, fake: FakeTwilio, ports: Ports) -> None:
    """This launcher's environment, from which scripts/stack.py builds each child's (credentials
    separated as in `make run`); the ports each child listens on are given per child."""
    os.environ.update(
        {
            "BOT_ENV": "development",
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "DEMO_DATA": str(ROOT / "data" / "demo" / "fixture.yml"),
            "RASA_TOKEN": API_TOKEN,
            "REST_CHANNEL_TOKEN": "rest-" + uuid.uuid4().hex,
            "CONSOLE_RASA_TOKEN": "console-" + uuid.uuid4().hex,
            "ACTION_SERVER_TOKEN": "actions-" + uuid.uuid4().hex,
            "TWILIO_ACCOUNT_SID": fake.account_sid,
            "TWILIO_AUTH_TOKEN": fake.auth_token,
            "TWILIO_API_BASE": fake.url,
            "TWILIO_WHATSAPP_NUMBER": "+14155238886",
            "TWILIO_SMS_NUMBER": "+15005550006",
            "PUBLIC_URL": PUBLIC_URL,
            # The console reaches Rasa through the load balancer, as in deploy/.
            "RASA_URL": f"http://127.0.0.1:{ports.lb_rasa}",
            "CONSOLE_PORT": str(ports.console),
            "OUTBOX_WORKER_PORT": str(ports.worker),
            "PYTHONPATH": str(ROOT),
            "SQLALCHEMY_SILENCE_UBER_WARNING": "1",
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "RASA_TELEMETRY_ENABLED": "false",
        }
    )


def cached_model() -> Path:
    """The trained model for the current data, never training (a 20-minute job, not this one's)."""
    name = stack.model_hash()
    if (
        not (stack.MODELS_DIR / f"{name}.tar.gz").exists()
        and not (stack.CACHE_DIR / "models" / f"{name}.tar.gz").exists()
    ):
        fail(f"no trained model {name} (models/ or {stack.CACHE_DIR}/models/): run `make train` first.")
    return stack.ensure_model(stack.load_settings())


class LoggedProcess:
    """A child whose output goes to its own log file, in a session of its own (GroupProcess)."""

    def __init__(self, command: list[str], env: dict[str, str], log_path: Path) -> None:
        self.command, self.env, self.log_path = command, env, log_path

    def start(self) -> GroupProcess:
        with self.log_path.open("a") as out:
            popen = subprocess.Popen(
                self.command,
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return GroupProcess(popen)


def process_specs(
    model: Path, ports: Ports, haproxy: str, logs: Path, webhook_retries: bool
) -> list[ProcessSpec]:
    settings = stack.load_settings()
    python = str(stack.VENV_BIN / "python")

    def spec(name: str, command: list[str], ready_url: str | None, doors=(), **env: str) -> ProcessSpec:
        child = LoggedProcess(command, {**stack.child_env(settings, doors), **env}, logs / f"{name}.log")
        return ProcessSpec(
            name, child.start, (lambda: stack.answers(ready_url)) if ready_url else (lambda: True)
        )

    config = logs / "haproxy.cfg"
    config.write_text(haproxy_config(ports, logs / "haproxy.sock", webhook_retries))
    check = subprocess.run([haproxy, "-c", "-f", str(config)], capture_output=True, text=True)
    if check.returncode != 0:
        fail(f"HAProxy refused its configuration ({config}):\n{check.stdout}{check.stderr}")
    specs = [
        spec("haproxy", [haproxy, "-db", "-f", str(config)], None),
        *(
            spec(f"actions-{n}", [python, "-m", "connectors.action_server"],
                 f"http://127.0.0.1:{port}/health", ACTION_PORT=str(port))
            for n, port in enumerate(ports.actions, start=1)
        ),
        spec("outbox-worker", [python, "-m", "connectors.outbox_worker"], f"http://127.0.0.1:{ports.worker}/ready"),
    ]  # fmt: skip
    for n, port in enumerate(ports.rasa, start=1):
        command = [*stack.SERVING_RASA, *stack.rasa_run_arguments(model, port, API_TOKEN)]
        # ACTION_PORT: where endpoints.yml sends this replica's action calls, HAProxy's frontend.
        specs.append(
            spec(f"rasa-{n}", command, f"http://127.0.0.1:{port}/webhooks/twilio/ready",
                 stack.RASA_SERVER_DOORS, RASA_PORT=str(port), ACTION_PORT=str(ports.lb_actions),
                 **stack.rasa_thread_env())
        )  # fmt: skip
    specs.append(
        spec(
            "console",
            stack.console_server(settings),
            f"http://127.0.0.1:{ports.console}/ready",
            stack.CONSOLE_DOORS,
        )
    )
    return specs


class SupervisorThread:
    """scripts/supervisor.py watching every process on a thread of its own, restarting the dead."""

    def __init__(self, specs: list[ProcessSpec]) -> None:
        self.supervisor = Supervisor(specs, clock=time.monotonic, sleep=time.sleep, log=lambda m: log(m))
        self._stopping = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.supervisor.start_all()
        not_ready = self.supervisor.wait_all_ready(STARTUP_TIMEOUT_S)
        if not_ready:
            self.stop()
            fail(f"{', '.join(not_ready)} not ready within {STARTUP_TIMEOUT_S:.0f} s (logs in {KEPT_LOGS}).")
        self._thread = threading.Thread(
            target=self.supervisor.run, args=(lambda: self._stopping,), daemon=True
        )
        self._thread.start()

    def child(self, name: str):
        return next(child for child in self.supervisor.children if child.name == name)

    def stop(self) -> None:
        self._stopping = True
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.supervisor.stop_all()


# --- traffic and accounting ------------------------------------------------------------------


@dataclass
class Endpoint:
    """What chaos.Driver reads of a stack: where to POST, and the database to account in."""

    base: str
    database_url: str


class ScaleDriver(Driver):
    """chaos.Driver's accounting (lost, doubled, out of order) over open-loop traffic at a fixed
    rate, through the load balancer, with the second of every refused or failed delivery."""

    def __init__(self, endpoint: Endpoint, fake: FakeTwilio, customers: int, seed: int) -> None:
        super().__init__(endpoint, fake, customers, seed)
        # Numbers of this run's own (the database is shared with earlier runs).
        base = random.Random(uuid.uuid4().int).randrange(10_000_000, 90_000_000 - customers)
        self.phones = [f"+5255{base + n:08d}" for n in range(customers)]
        self.started = time.monotonic()
        self.failed_seconds: set[int] = set()
        self.failures: list[str] = []

    def deliver(self, message: Inbound, deadline: float) -> None:
        form = inbound_form(message.phone, message.text, sid=message.sid)
        headers = {"X-Twilio-Signature": self.fake.sign(PUBLIC_URL + WEBHOOK, form)}
        while time.monotonic() < deadline:
            with self._lock:
                message.deliveries += 1
            try:
                reply = requests.post(
                    f"{self.stack.base}{WEBHOOK}", data=form, headers=headers, timeout=DELIVERY_TIMEOUT_S
                )
                if 200 <= reply.status_code < 300:
                    message.accepted = True
                    return
                problem = f"HTTP {reply.status_code}"
            except requests.RequestException as error:
                problem = type(error).__name__
            with self._lock:
                self.failed_seconds.add(int(time.monotonic() - self.started))
                self.failures.append(f"{time.monotonic() - self.started:.1f} s: {problem}")
            time.sleep(1.0)

    def customer_at_rate(self, number: int, rate: float, seconds: float, deadline: float) -> None:
        customers = len(self.phones)
        phone = self.phones[number]
        for index in range(math.ceil(seconds * rate / customers) + 1):
            due = (index * customers + number) / rate
            if due >= seconds:
                return
            wait = self.started + due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            message = Inbound(PHASE, phone, index, CONVERSATION[index % len(CONVERSATION)])
            with self._lock:
                self.messages.append(message)
            self.deliver(message, deadline)
            if self.random.random() < DUPLICATE_SHARE:
                threading.Thread(target=self.deliver, args=(message, deadline), daemon=True).start()

    def traffic(self, rate: float, seconds: float) -> list[threading.Thread]:
        self.started = time.monotonic()
        deadline = self.started + seconds + 60
        threads = [
            threading.Thread(target=self.customer_at_rate, args=(n, rate, seconds, deadline), daemon=True)
            for n in range(len(self.phones))
        ]
        for thread in threads:
            thread.start()
        return threads

    def leased_by(self, pid: int) -> list[str]:
        """MessageSids of this run's journal rows a process holds the lease of, unfinished."""
        engine = sa.create_engine(self.stack.database_url, future=True)
        try:
            with engine.begin() as conn:
                rows = conn.execute(
                    sa.text(
                        "SELECT message_sid, phone FROM inbound_journal WHERE status = 'accepted' "
                        "AND claimed_by LIKE :holder"
                    ),
                    {"holder": f"%:{pid}:%"},
                )
                mine = set(self.phones)
                return [row.message_sid for row in rows if row.phone in mine]
        finally:
            engine.dispose()


@dataclass
class Outcome:
    tally: Tally
    customers: int
    customers_in_order: int
    failed_seconds: list[int]
    failed_deliveries: int
    leased_at_kill: int
    leased_answered: int
    out_of_rotation_after_s: float | None
    back_in_rotation_after_s: float | None
    servers: dict[str, dict[str, str]]
    answered_s: float

    @property
    def clean(self) -> bool:
        return (
            self.tally.clean
            and self.tally.accepted == self.tally.sent
            and not self.failed_seconds
            and self.leased_answered == self.leased_at_kill
        )


class RotationWatch:
    """HAProxy's own view, through its stats socket: when rasa1 left and rejoined the rotation,
    and per server the requests sent, retried and redispatched (`show stat`)."""

    def __init__(self, stats_socket: Path) -> None:
        self.stats_socket = stats_socket
        self.changes: list[tuple[float, str]] = []  # (monotonic time, rasa1's new status)
        self._stopping = False
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def stats(self) -> dict[str, dict[str, str]]:
        """`show stat` as {"backend/server": {column: value}}; empty if HAProxy does not answer."""
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
                conn.settimeout(2)
                conn.connect(str(self.stats_socket))
                conn.sendall(b"show stat\n")
                data = b""
                while chunk := conn.recv(65536):
                    data += chunk
        except OSError:
            return {}
        lines = data.decode().splitlines()
        if not lines or not lines[0].startswith("# "):
            return {}
        rows = csv.DictReader([lines[0][2:], *lines[1:]])
        return {f"{row['pxname']}/{row['svname']}": row for row in rows if row.get("pxname")}

    def start(self) -> RotationWatch:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping = True
        self._thread.join(timeout=5)

    def _watch(self) -> None:
        last = None
        while not self._stopping:
            status = self.stats().get("rasa/rasa1", {}).get("status")
            if status and status.split()[0] != last:
                last = status.split()[0]
                self.changes.append((time.monotonic(), last))
            time.sleep(0.1)

    def out_and_back(self, killed_at: float) -> tuple[float | None, float | None]:
        """Seconds from the kill until HAProxy took rasa1 out, and until it put it back."""
        out = next((t for t, status in self.changes if t >= killed_at and status != "UP"), None)
        back = next((t for t, status in self.changes if out is not None and t > out and status == "UP"), None)
        return (out - killed_at if out else None, back - killed_at if back else None)


def wait_in_rotation(watch: RotationWatch, timeout_s: float = 30) -> None:
    """Wait until HAProxy has every server of its backends UP. A replica answering its readiness
    URL is not yet one HAProxy sends to: it takes it back only after `rise` (2) checks in a row
    passed, about 2 s. Traffic started in between met a backend with no server and got 503
    (HAProxy's own, <NOSRV>, not retried) though every process was ready."""
    deadline = time.monotonic() + timeout_s
    while True:
        servers = {
            name: row.get("status", "")
            for name, row in watch.stats().items()
            if not name.endswith(("/BACKEND", "/FRONTEND"))
        }
        waiting = sorted(name for name, status in servers.items() if status != "UP")
        if servers and not waiting:
            return
        if time.monotonic() >= deadline:
            late = ", ".join(waiting) or "its servers"
            fail(f"HAProxy has not put {late} in rotation within {timeout_s:g} s.")
        time.sleep(0.2)


def wait_for_lease(driver: ScaleDriver, pid: int, timeout_s: float = 20) -> list[str]:
    """Wait until the replica holds a journal row: the kill must land on work in progress."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        leased = driver.leased_by(pid)
        if leased:
            return leased
        time.sleep(0.05)
    return []


def replica_states(ports: Ports) -> str:
    return ", ".join(
        f"rasa-{n} {'ready' if stack.answers(f'http://127.0.0.1:{port}/webhooks/twilio/ready') else 'DOWN'}"
        for n, port in enumerate(ports.rasa, start=1)
    )


def progress(driver: ScaleDriver, ports: Ports) -> None:
    messages = driver.phase_messages(PHASE)
    answered = driver.answered()
    log(
        f"  t={time.monotonic() - driver.started:4.0f} s: {len(messages)} sent, "
        f"{sum(m.accepted for m in messages)} accepted, {sum(m.sid in answered for m in messages)} answered, "
        f"{len(driver.failures)} failed deliveries; {replica_states(ports)}"
    )


def drive(
    driver: ScaleDriver,
    supervisor: SupervisorThread,
    ports: Ports,
    watch: RotationWatch,
    args: argparse.Namespace,
) -> Outcome:
    log(f"{args.customers} customers, {args.rate:g} messages/s for {args.seconds:g} s through HAProxy")
    threads = driver.traffic(args.rate, args.seconds)
    rasa_1 = supervisor.child("rasa-1")
    kill_at = driver.started + args.kill_at
    leased: list[str] = []
    killed_at = None
    while any(thread.is_alive() for thread in threads):
        if killed_at is None and time.monotonic() >= kill_at:
            pid = rasa_1.process.pid
            leased = wait_for_lease(driver, pid)
            os.kill(pid, signal.SIGKILL)
            killed_at = time.monotonic()
            log(f"kill -9 rasa-1 (pid {pid}) holding the lease of {len(leased)} journal row(s); "
                "its supervisor restarts it")  # fmt: skip
        progress(driver, ports)
        time.sleep(min(5.0, max(0.2, kill_at - time.monotonic())) if killed_at is None else 5.0)
    traffic_end = time.monotonic()
    log("every message delivered; waiting for the answers")
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while time.monotonic() < deadline and not driver.settled(PHASE):
        progress(driver, ports)
        time.sleep(3)
    answered_s = time.monotonic() - traffic_end
    time.sleep(3)  # a double would arrive now
    if killed_at is not None and args.rejoin_timeout > 0 and watch.out_and_back(killed_at)[1] is None:
        log(f"waiting up to {args.rejoin_timeout:g} s for HAProxy to put the restarted rasa-1 back")
        deadline = time.monotonic() + args.rejoin_timeout
        while time.monotonic() < deadline and watch.out_and_back(killed_at)[1] is None:
            time.sleep(1)
    out_after, back_after = watch.out_and_back(killed_at) if killed_at is not None else (None, None)
    tally = driver.tally(PHASE)
    answered = driver.answered()
    phase_messages = {m.sid: m for m in driver.phase_messages(PHASE)}
    by_phone: dict[str, list[int]] = {}
    for phone, inbound, _ in driver.attributed():
        if inbound in phase_messages:
            by_phone.setdefault(phone, []).append(phase_messages[inbound].index)
    in_order = sum(1 for phone in driver.phones if by_phone.get(phone, []) == sorted(by_phone.get(phone, [])))
    return Outcome(
        tally=tally,
        customers=len(driver.phones),
        customers_in_order=in_order,
        failed_seconds=sorted(driver.failed_seconds),
        failed_deliveries=len(driver.failures),
        leased_at_kill=len(leased),
        leased_answered=sum(1 for sid in leased if sid in answered),
        out_of_rotation_after_s=out_after,
        back_in_rotation_after_s=back_after,
        servers=watch.stats(),
        answered_s=answered_s,
    )


def report(outcome: Outcome, args: argparse.Namespace) -> None:
    tally = outcome.tally
    order = 100.0 * outcome.customers_in_order / max(1, outcome.customers)
    out = f"{outcome.out_of_rotation_after_s:.1f} s" if outcome.out_of_rotation_after_s is not None else "?"
    back = (
        f"{outcome.back_in_rotation_after_s:.0f} s"
        if outcome.back_in_rotation_after_s is not None
        else "not within the run"
    )
    servers = "; ".join(
        f"{name.split('/')[1]} {row['status']}, {row['stot']} requests, {row['wretr']} retried, "
        f"{row['wredis']} redispatched"
        for name, row in outcome.servers.items()
        if name.startswith("rasa/") and name != "rasa/BACKEND"
    )
    failed = ", ".join(str(s) for s in outcome.failed_seconds) or "none"
    lb = "health check only" if args.health_check_only else "health check + webhook retries"
    print(
        f"""
  make scale-test: {args.customers} customers, {args.rate:g} msg/s for {args.seconds:g} s, 2 Rasa + 2 action
  servers behind HAProxy ({lb}),
  PostgreSQL + Redis shared; rasa-1 killed (kill -9) at {args.kill_at:g} s
    sent / deliveries / accepted     {tally.sent} / {tally.deliveries} / {tally.accepted}
    lost                             {tally.lost}
    double replies                   {tally.doubled}
    out of order                     {tally.out_of_order} customers
    per-customer order               {order:.0f}% ({outcome.customers_in_order} of {outcome.customers})
    refused or failed webhooks       {outcome.failed_deliveries} in {len(outcome.failed_seconds)} s ({failed})
    journal rows the killed replica
      held, answered                 {outcome.leased_at_kill}, {outcome.leased_answered}
    taken again from the journal     {tally.retried}
    rasa-1 out of HAProxy's rotation {out} after the kill; back in it after {back}
    HAProxy's Rasa servers           {servers or "(stats socket did not answer)"}
    answers done after traffic in    {outcome.answered_s:.0f} s
""",
        flush=True,
    )
    verdict = "PASS: 0 lost, 0 doubled, order 100%, 0 s refused" if outcome.clean else "FAIL"
    print(f"  {verdict}\n", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scale_test.py", description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=60.0, help="of traffic")
    parser.add_argument("--rate", type=float, default=10.0, help="messages per second, all customers")
    parser.add_argument("--kill-at", type=float, help="seconds into the traffic (default: a third)")
    parser.add_argument(
        "--rejoin-timeout",
        type=float,
        default=150.0,
        help="after the answers, seconds to wait for the killed replica to be back in rotation (0: not)",
    )
    parser.add_argument(
        "--health-check-only",
        action="store_true",
        help="for comparison: no webhook retries in HAProxy, only its health check takes a dead replica out",
    )
    parser.add_argument("--seed", type=int, default=20)
    args = parser.parse_args(argv)
    if args.kill_at is None:
        args.kill_at = args.seconds / 3
    database_url, redis_url = shared_stores("SCALE")
    haproxy = haproxy_binary()
    model = cached_model()
    KEPT_LOGS.mkdir(parents=True, exist_ok=True)
    fake = FakeTwilio().start()
    ports = Ports()
    supervisor = None
    with tempfile.TemporaryDirectory(prefix="scale-") as directory:
        logs = Path(directory)
        try:
            stack_environment(database_url, redis_url, fake, ports)
            settings = stack.load_settings()
            stack.migrate(settings)
            stack.load_demo(settings)
            specs = process_specs(model, ports, haproxy, logs, not args.health_check_only)
            log(
                f"starting HAProxy (Rasa on :{ports.lb_rasa}), 2 action servers, the outbox worker, "
                f"2 Rasa replicas and the console on {database_url.rsplit('/', 1)[-1]} (20-90 s)…"
            )
            started = time.monotonic()
            supervisor = SupervisorThread(specs)
            supervisor.start()
            watch = RotationWatch(logs / "haproxy.sock")
            wait_in_rotation(watch)
            took = time.monotonic() - started
            log(f"all ready and in HAProxy's rotation in {took:.0f} s; {replica_states(ports)}")
            driver = ScaleDriver(
                Endpoint(f"http://127.0.0.1:{ports.lb_rasa}", database_url), fake, args.customers, args.seed
            )
            watch.start()
            try:
                outcome = drive(driver, supervisor, ports, watch, args)
            finally:
                watch.stop()
            for line in driver.failures[:20]:
                log(f"  failed delivery at {line}")
        finally:
            if supervisor is not None:
                supervisor.stop()
            fake.stop()
            for path in logs.glob("*.log"):
                shutil.copy(path, KEPT_LOGS / path.name)
            if (logs / "haproxy.cfg").exists():
                shutil.copy(logs / "haproxy.cfg", KEPT_LOGS / "haproxy.cfg")
            log(f"the processes' logs are kept in {KEPT_LOGS.relative_to(ROOT)}/")
    report(outcome, args)
    return 0 if outcome.clean else 1


if __name__ == "__main__":
    sys.exit(main())
