"""`make chaos`: customers write while the Rasa server, the action server and Redis are killed,
and every accepted message must be answered once, in order.

Everything runs on loopback: its own stack (`scripts/stack.py run`, as the tests start it, which
restarts a dead child), the fake Twilio of tests/fake_twilio.py, a private redis-server on a free
port (never the machine's shared one) and an SQLite database in a temporary directory.
CUSTOMERS customers (30) each write "hola", "donde esta mi pedido", "gracias" per phase, with 10%
of the deliveries repeated with the same MessageSid (some at once, some later); a delivery that
gets no 2xx (connection refused while Rasa restarts, a 5xx) is sent again with the same
MessageSid until it does, as Twilio's connection overrides make it. During each phase one fault:
1. `kill -9` of the Rasa server (the supervisor restarts it);
2. `kill -9` of the action server (the supervisor restarts it);
3. Redis stopped and started again (locks and conversation memories lost with it).

Per phase it prints sent, accepted, lost (accepted and never answered), doubled (answered more
than once: a reply of it delivered twice, or its turn twice in the tracker) and out-of-order (a
customer's replies in another order than their messages). Each reply is attributed to its
inbound message through outbound_messages: the Twilio sid the fake returned, or for a reply whose
sid was never recorded (a kill between Twilio's answer and the database), its recipient and text.
Exits 1 unless lost, doubled and out-of-order are 0 for every phase. About 3 minutes; bounded
by the stack's start (300 s at most) and 150 s per phase.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import requests
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.phone import normalize_phone  # noqa: E402
from tests.fake_twilio import FakeTwilio, inbound_form  # noqa: E402
from tests.harness import API_TOKEN, Stack, free_port  # noqa: E402

PUBLIC_URL = "https://chaos.example.test"
WEBHOOK = "/webhooks/twilio/webhook"
CONVERSATION = ("hola", "donde esta mi pedido", "gracias")
PHASES = {"rasa": "kill -9 the Rasa server", "actions": "kill -9 the action server", "redis": "restart Redis"}
FAULT_AFTER_S = 4.0  # into the phase: traffic is flowing when the fault lands
PHASE_TIMEOUT_S = 150.0  # for every accepted message of a phase to be answered
DUPLICATE_SHARE = 0.10
KEPT_LOG = ROOT / "var" / "chaos" / "stack.log"


def log(message: str) -> None:
    print(f"[chaos {time.strftime('%H:%M:%S')}] {message}", flush=True)


@dataclass
class Inbound:
    phase: str
    phone: str
    index: int  # its place in the customer's messages of the whole run
    text: str
    sid: str = field(default_factory=lambda: "SM" + uuid.uuid4().hex)
    deliveries: int = 0
    accepted: bool = False


@dataclass
class Tally:
    sent: int = 0
    deliveries: int = 0
    accepted: int = 0
    lost: int = 0
    doubled: int = 0
    out_of_order: int = 0
    retried: int = 0  # taken from the journal more than once (replayed or retried): not a fault

    @property
    def clean(self) -> bool:
        return self.lost == self.doubled == self.out_of_order == 0


class PrivateRedis:
    """A redis-server of our own on a free loopback port: the machine's Redis is not ours to restart."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.directory = directory
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            ping = ["redis-cli", "-p", str(self.port), "ping"]
            if subprocess.call(ping, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) == 0:
                return
            time.sleep(0.1)
        raise SystemExit("the private redis-server did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def child_pid(stack: Stack, module: str) -> int | None:
    """The pid of the stack's child running `python -m <module>` (its supervisor's child)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == stack.process.pid and module.encode() in cmdline:
            return int(entry.name)
    return None


def wait_for_child(stack: Stack, module: str, timeout_s: float = 60) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        pid = child_pid(stack, module)
        if pid is not None:
            return pid
        time.sleep(0.2)
    raise SystemExit(f"no {module} process under the stack")


class Driver:
    def __init__(self, stack: Stack, fake: FakeTwilio, customers: int, seed: int) -> None:
        self.stack, self.fake = stack, fake
        self.random = random.Random(seed)
        self.phones = [f"+5255{10000000 + n:08d}" for n in range(customers)]  # not demo customers
        self.messages: list[Inbound] = []
        self._lock = threading.Lock()

    # --- delivering webhooks as Twilio does ------------------------------------------------------

    def deliver(self, message: Inbound, deadline: float) -> None:
        """POST until a 2xx (Twilio retries refused and failed deliveries), signed like Twilio."""
        form = inbound_form(message.phone, message.text, sid=message.sid)
        headers = {"X-Twilio-Signature": self.fake.sign(PUBLIC_URL + WEBHOOK, form)}
        while time.monotonic() < deadline:
            with self._lock:
                message.deliveries += 1
            try:
                reply = requests.post(f"{self.stack.base}{WEBHOOK}", data=form, headers=headers, timeout=15)
                if 200 <= reply.status_code < 300:
                    message.accepted = True
                    return
            except requests.RequestException:
                pass
            time.sleep(1.0)

    def customer(self, phase: str, phone: str, start_index: int, deadline: float) -> None:
        time.sleep(self.random.uniform(0, 3))
        for offset, text in enumerate(CONVERSATION):
            message = Inbound(phase, phone, start_index + offset, text)
            with self._lock:
                self.messages.append(message)
            duplicate = self.random.random() < DUPLICATE_SHARE
            together = duplicate and self.random.random() < 0.5
            extra = threading.Thread(target=self.deliver, args=(message, deadline)) if together else None
            if extra:
                extra.start()  # the same MessageSid twice at the same moment
            self.deliver(message, deadline)
            if extra:
                extra.join()
            elif duplicate:
                time.sleep(self.random.uniform(0.2, 1.5))
                self.deliver(message, deadline)  # the same MessageSid again, later
            time.sleep(self.random.uniform(0.5, 2.5))  # the customer types the next one

    # --- one phase --------------------------------------------------------------------------------

    def phase(self, name: str, index: int, redis: PrivateRedis) -> Tally:
        log(f"phase {name}: {PHASES[name]} while {len(self.phones)} customers write")
        deadline = time.monotonic() + PHASE_TIMEOUT_S
        start_index = index * len(CONVERSATION)
        customers = [
            threading.Thread(target=self.customer, args=(name, phone, start_index, deadline))
            for phone in self.phones
        ]
        for thread in customers:
            thread.start()
        time.sleep(FAULT_AFTER_S)
        self.fault(name, redis)
        while any(thread.is_alive() for thread in customers):
            self.progress(name)
            time.sleep(3)
        for thread in customers:
            thread.join()
        log(f"phase {name}: every message delivered; waiting for the answers")
        while time.monotonic() < deadline and not self.settled(name):
            self.progress(name)
            time.sleep(3)
        time.sleep(3)  # anything still on its way (a double would come now)
        return self.tally(name)

    def fault(self, name: str, redis: PrivateRedis) -> None:
        if name == "redis":
            log("stopping Redis (kill -9) and starting it again in 2 s")
            redis.stop()
            time.sleep(2)
            redis.start()
            log("Redis is back (empty)")
            return
        module = "connectors.rasa_launcher" if name == "rasa" else "connectors.action_server"
        pid = wait_for_child(self.stack, module)
        in_flight = self.wait_for_in_flight(name)
        os.kill(pid, signal.SIGKILL)
        log(f"{in_flight} message(s) accepted and not yet answered at the kill")
        log(f"kill -9 {pid} ({module}); the stack's supervisor restarts it")
        started = time.monotonic()
        new_pid = wait_for_child(self.stack, module, timeout_s=90)
        log(f"{module} restarted as {new_pid} after {time.monotonic() - started:.0f} s")

    def wait_for_in_flight(self, name: str, timeout_s: float = 15) -> int:
        """Wait until some accepted message is not answered yet: the kill must land mid-work."""
        deadline = time.monotonic() + timeout_s
        while True:
            answered = self.answered()
            in_flight = sum(1 for m in self.phase_messages(name) if m.accepted and m.sid not in answered)
            if in_flight or time.monotonic() > deadline:
                return in_flight
            time.sleep(0.05)

    def phase_messages(self, name: str) -> list[Inbound]:
        with self._lock:
            return [m for m in self.messages if m.phase == name]

    def progress(self, name: str) -> None:
        messages = self.phase_messages(name)
        answered = self.answered()
        done = sum(1 for m in messages if m.sid in answered)
        log(
            f"  {name}: {len(messages)} sent, {sum(m.accepted for m in messages)} accepted, "
            f"{done} answered, {len(self.fake.received)} replies at Twilio in all"
        )

    def settled(self, name: str) -> bool:
        answered = self.answered()
        return all(m.sid in answered for m in self.phase_messages(name) if m.accepted)

    # --- accounting -------------------------------------------------------------------------------

    def records(self) -> list[sa.engine.Row]:
        engine = sa.create_engine(self.stack.database_url, future=True)
        try:
            with engine.begin() as conn:
                query = "SELECT sid, to_phone, body, idempotency_key FROM outbound_messages ORDER BY id"
                return list(conn.execute(sa.text(query)))
        except sa.exc.OperationalError:
            return []
        finally:
            engine.dispose()

    def journal_attempts(self) -> dict[str, int]:
        engine = sa.create_engine(self.stack.database_url, future=True)
        try:
            with engine.begin() as conn:
                rows = conn.execute(sa.text("SELECT message_sid, attempts FROM inbound_journal"))
                return {row.message_sid: row.attempts for row in rows}
        finally:
            engine.dispose()

    def attributed(self) -> list[tuple[str, str, str | None]]:
        """(phone, inbound MessageSid or None, reply key) for each message at the fake, in arrival order."""
        records = self.records()
        by_sid = {row.sid: row.idempotency_key for row in records if row.sid}
        unmatched = defaultdict(list)  # a reply sent but its sid never recorded (killed in between)
        for row in records:
            if not row.sid and row.idempotency_key:
                unmatched[(row.to_phone, row.body)].append(row.idempotency_key)
        result = []
        with self.fake._lock:
            received = list(self.fake.received)
        for message in received:
            phone = normalize_phone(message.to)
            key = by_sid.get(message.sid)
            if key is None:
                candidates = unmatched.get((phone, message.body or ""), [])
                key = candidates.pop(0) if candidates else None
            inbound = key.split(":", 1)[0] if key else None
            result.append((phone, inbound, key))
        return result

    def answered(self) -> set[str]:
        return {inbound for _, inbound, _ in self.attributed() if inbound}

    def turns_in_trackers(self) -> dict[str, int]:
        """How many times each MessageSid is a user turn in its conversation's tracker."""
        counts: dict[str, int] = defaultdict(int)
        for phone in self.phones:
            try:
                tracker = requests.get(
                    f"{self.stack.base}/conversations/{phone}/tracker",
                    params={"token": API_TOKEN},
                    timeout=30,
                ).json()
            except (requests.RequestException, ValueError):
                continue
            for event in tracker.get("events") or []:
                if event.get("event") == "user" and event.get("message_id"):
                    counts[event["message_id"]] += 1
        return counts

    def tally(self, name: str) -> Tally:
        messages = self.phase_messages(name)
        by_sid = {m.sid: m for m in self.messages}
        replies: dict[str, list[str]] = defaultdict(list)
        order: dict[str, list[int]] = defaultdict(list)
        for _, inbound, key in self.attributed():
            if inbound in by_sid:
                replies[inbound].append(key)
                order[by_sid[inbound].phone].append(by_sid[inbound].index)
        turns = self.turns_in_trackers()
        attempts = self.journal_attempts()
        tally = Tally(sent=len(messages), deliveries=sum(m.deliveries for m in messages))
        tally.retried = sum(1 for m in messages if attempts.get(m.sid, 0) > 1)
        for message in messages:
            if not message.accepted:
                continue
            tally.accepted += 1
            keys = replies.get(message.sid, [])
            if not keys:
                tally.lost += 1
                log(f"  LOST {message.sid} {message.phone} {message.text!r}")
            elif len(keys) != len(set(keys)) or turns.get(message.sid, 0) > 1:
                tally.doubled += 1
                log(f"  DOUBLED {message.sid} {message.phone} {message.text!r}: {keys}")
        phase_indexes = {m.index for m in messages}
        for phone, indexes in order.items():
            mine = [i for i in indexes if i in phase_indexes]
            if mine != sorted(mine):
                tally.out_of_order += 1
                log(f"  OUT OF ORDER {phone}: replies to messages {mine}")
        return tally


def run(customers: int, phases: list[str], seed: int) -> dict[str, Tally]:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="chaos-") as directory:
        tmp = Path(directory)
        redis = PrivateRedis(tmp)
        redis.start()
        fake = FakeTwilio().start()
        log(f"private Redis on 127.0.0.1:{redis.port}; fake Twilio at {fake.url}; starting the stack…")
        stack = Stack(
            tmp,
            {
                "TWILIO_ACCOUNT_SID": fake.account_sid,
                "TWILIO_AUTH_TOKEN": fake.auth_token,
                "TWILIO_API_BASE": fake.url,
                "TWILIO_WHATSAPP_NUMBER": "+14155238886",
                "TWILIO_SMS_NUMBER": "+15005550006",
                "PUBLIC_URL": PUBLIC_URL,
                "REDIS_URL": redis.url,
            },
        )
        results: dict[str, Tally] = {}
        try:
            stack.wait_ready()
            log(f"stack ready in {time.monotonic() - started:.0f} s (log: {stack.log})")
            driver = Driver(stack, fake, customers, seed)
            for index, name in enumerate(phases):
                results[name] = driver.phase(name, index, redis)
                tally = results[name]
                log(
                    f"phase {name}: sent {tally.sent} (deliveries {tally.deliveries}), accepted "
                    f"{tally.accepted}, lost {tally.lost}, doubled {tally.doubled}, "
                    f"out-of-order {tally.out_of_order} ({tally.retried} taken again from the journal)"
                )
        except BaseException:
            print(stack.tail(80), flush=True)
            raise
        finally:
            stack.stop()
            fake.stop()
            redis.stop()
            KEPT_LOG.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(stack.log, KEPT_LOG)
            log(f"the stack's log is kept in {KEPT_LOG.relative_to(ROOT)}")
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="chaos.py", description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=30)
    parser.add_argument("--phases", default="rasa,actions,redis", help="some of: rasa,actions,redis")
    parser.add_argument("--seed", type=int, default=15)
    args = parser.parse_args(argv)
    phases = [name.strip() for name in args.phases.split(",") if name.strip()]
    unknown = [name for name in phases if name not in PHASES]
    if unknown:
        parser.error(f"unknown phase(s) {unknown}; choose from {list(PHASES)}")
    results = run(args.customers, phases, args.seed)
    header = f"{'sent':>6}{'accepted':>10}{'lost':>6}{'doubled':>9}{'out-of-order':>14}{'retried':>9}"
    print(f"\n  {'fault':<28}{header}")
    for name, tally in results.items():
        print(
            f"  {PHASES[name]:<28}{tally.sent:>6}{tally.accepted:>10}{tally.lost:>6}"
            f"{tally.doubled:>9}{tally.out_of_order:>14}{tally.retried:>9}"
        )
    clean = len(results) == len(phases) and all(tally.clean for tally in results.values())
    print(f"\n  {'PASS: no message lost, doubled or out of order' if clean else 'FAIL'}\n", flush=True)
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
