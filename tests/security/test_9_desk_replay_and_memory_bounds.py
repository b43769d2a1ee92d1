"""Finding 9 (the parts this suite guards): the desk webhook's HMAC had no timestamp, so a
captured POST could be replayed to the desk at any later time; and the in-process claim and
attempt (OTP, console login) memories grew forever. Both were still open on main at the audit:
there `bot.handoff.desk.verify` and the timestamp header do not exist and the memories have no
capacity, so this file fails on main.

The desk here is a real HTTP server on loopback that checks each POST with `verify` against
its own clock, which the test moves. (Sends retried after a Twilio timeout and blocking calls on
the event loop, the rest of finding 9, belong to the inbound journal's work, not this file.)
"""

from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from bot.adapters.sql import SqlStore
from bot.clock import FixedClock
from bot.handoff.desk import SIGNATURE_HEADER, TIMESTAMP_HEADER, deliver_due, verify
from bot.handoff.logins import LoginLimits
from bot.handoff.store import HandoffStore, new_handoff_id
from bot.messaging.memory import InProcessMemory
from bot.migrations import target_metadata
from bot.verification import AttemptStoreFull, MemoryAttemptStore

NOW = datetime(2026, 11, 26, 16, 0, tzinfo=timezone.utc)
SECRET = "desk-secret"
KEYS = 100_000


class Desk:
    """An external help desk that accepts only POSTs `verify` accepts on its own clock."""

    def __init__(self) -> None:
        self.now = NOW
        self.accepted: list[dict] = []
        self.captured: list[tuple[dict[str, str], bytes]] = []
        desk = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_):
                pass

            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                headers = dict(self.headers)
                desk.captured.append((headers, body))
                ok = verify(
                    body, headers.get(TIMESTAMP_HEADER), headers.get(SIGNATURE_HEADER), SECRET, desk.now
                )
                if ok:
                    desk.accepted.append(json.loads(body))
                self.send_response(200 if ok else 401)
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/handoffs"


@pytest.fixture
def desk():
    server = Desk()
    yield server
    server.server.shutdown()


@pytest.fixture
def handoffs(tmp_path):
    store = SqlStore(f"sqlite:///{tmp_path / 'bot.db'}")
    with store.connect() as conn:
        for tables in target_metadata():
            tables.create_all(conn)
    yield HandoffStore(store, FixedClock(NOW))
    store.dispose()


def test_a_desk_post_replayed_later_is_refused(handoffs, desk):
    handoff_id = new_handoff_id()
    handoffs.create(
        handoff_id=handoff_id, conversation_id="+525512345678", phone="+525512345678", channel="whatsapp",
        reason="customer_request", customer_name="Mariana", packet={"handoff_id": handoff_id},
        resume_form=None, deliver_to_desk=True, now=NOW,
    )  # fmt: skip
    desk.now = NOW + timedelta(seconds=2)  # network time and the two clocks' difference
    assert deliver_due(handoffs, desk.url, SECRET, now=NOW) == 1
    assert desk.accepted == [{"handoff_id": handoff_id}]
    [(headers, body)] = desk.captured

    def replay() -> int:
        sent = {
            name: headers[name]
            for name in ("Content-Type", "X-Handoff-Id", TIMESTAMP_HEADER, SIGNATURE_HEADER)
        }
        return requests.post(desk.url, data=body, headers=sent, timeout=10).status_code

    desk.now = NOW + timedelta(minutes=6)  # a captured POST, replayed later
    assert replay() == 401
    desk.now = NOW + timedelta(days=3)
    assert replay() == 401
    # Moving the timestamp forward breaks the signature instead.
    headers[TIMESTAMP_HEADER] = str(int(desk.now.timestamp()))
    assert replay() == 401
    assert len(desk.accepted) == 1


def test_the_in_process_attempt_store_stays_bounded_and_never_unlocks_early():
    clock = FixedClock(NOW)
    attempts = MemoryAttemptStore(clock)
    limits = LoginLimits(attempts, per_account=5, per_address=20, window=timedelta(minutes=15))
    for _ in range(5):
        limits.failed("ana", None)
    assert not limits.allows("ana", None)
    full = 0
    for number in range(KEYS):
        try:
            attempts.hit(f"otp:wrong:C-{number:06d}", timedelta(minutes=15))
        except AttemptStoreFull:
            full += 1
    assert len(attempts) < KEYS and full > 0
    assert not limits.allows("ana", None)  # the lock was never evicted to make room
    assert not limits.allows("luis", None)  # and nobody is let in uncounted while full
    clock.advance(timedelta(minutes=15))
    assert limits.allows("ana", None) and len(attempts) == 0


def test_the_in_process_conversation_memory_stays_bounded():
    memory = InProcessMemory()
    for number in range(KEYS):
        memory.remember_card(f"+52155{number:08d}", True, "4111 1111")
    assert len(memory) < KEYS
