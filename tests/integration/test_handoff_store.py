"""Handoffs, agents and the desk webhook over SQL (SQLite and PostgreSQL) and real Redis and HTTP."""

import hashlib
import hmac
import json
import threading
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bot.handoff.agents import AgentError, authenticate, create_agent, hash_password, verify_password
from bot.handoff.announce import CHANNEL, Announcer
from bot.handoff.desk import SIGNATURE_HEADER, TIMESTAMP_HEADER, deliver_due, retry_delay, verify
from bot.handoff.store import HandoffStore, new_handoff_id
from tests.conftest import CLOCK, REDIS_URL

NOW = datetime(2026, 11, 26, 16, 0, tzinfo=timezone.utc)


@pytest.fixture
def handoffs(store) -> HandoffStore:
    book = HandoffStore(store, CLOCK)
    yield book
    book.drop_schema()


def open_one(book: HandoffStore, conversation: str = "+525512345678", at=NOW, priority=0, desk=False):
    handoff_id = new_handoff_id()
    return book.create(
        handoff_id=handoff_id, conversation_id=conversation, phone=conversation, channel="whatsapp",
        reason="customer_request", customer_name="Mariana López", packet={"handoff_id": handoff_id},
        resume_form="reschedule_form", priority=priority, deliver_to_desk=desk, now=at,
    )  # fmt: skip


def test_a_handoff_waits_is_taken_and_handed_back_once(handoffs):
    handoff = open_one(handoffs)
    assert handoffs.active_for("+525512345678").id == handoff.id and handoff.status == "waiting"
    assert handoffs.accept(handoff.id, "ana") and not handoffs.accept(handoff.id, "luis")
    assert handoffs.get(handoff.id).agent == "ana"
    assert handoffs.end(handoff.id, "handed_back", "resuelto") and not handoffs.end(handoff.id, "closed")
    assert handoffs.active_for("+525512345678") is None
    ended = handoffs.latest_for("+525512345678")
    assert (ended.status, ended.resolution_note, ended.resume_form) == (
        "handed_back",
        "resuelto",
        "reschedule_form",
    )


def test_closing_settles_the_matter_and_forgets_the_interrupted_form(handoffs):
    handoff = open_one(handoffs)
    assert handoffs.end(handoff.id, "closed", "reembolso hecho")
    assert handoffs.get(handoff.id).resume_form is None


def test_the_satisfaction_answer_is_recorded_after_the_hand_back_only(handoffs):
    handoff = open_one(handoffs)
    assert not handoffs.record_satisfaction(handoff.id, 5)  # still with the agent
    handoffs.end(handoff.id, "handed_back")
    assert handoffs.record_satisfaction(handoff.id, 4) and handoffs.get(handoff.id).satisfaction == 4
    with pytest.raises(ValueError):
        handoffs.record_satisfaction(handoff.id, 9)


def test_the_queue_is_vip_first_then_oldest_first_and_shows_the_messages(handoffs):
    late = open_one(handoffs, "+51987654321", NOW)
    early = open_one(handoffs, "+56987654321", NOW - timedelta(minutes=10))
    vip = open_one(handoffs, "+5491123456789", NOW + timedelta(minutes=5), priority=1)
    assert [h.id for h in handoffs.queue()] == [vip.id, early.id, late.id]
    assert handoffs.waiting_count() == 3
    first = handoffs.add_message(
        late.id, "customer", "hola?", attachments=[{"url": "https://x/1", "content_type": "image/png"}]
    )
    handoffs.add_message(late.id, "agent", "Hola, soy Ana", agent="ana")
    assert [(m.sender, m.text) for m in handoffs.messages(late.id)] == [
        ("customer", "hola?"),
        ("agent", "Hola, soy Ana"),
    ]
    assert [m.text for m in handoffs.messages(late.id, after_id=first)] == ["Hola, soy Ana"]


def test_agents_log_in_with_a_salted_scrypt_hash(handoffs):
    create_agent(handoffs, "ana", "una clave larga")
    stored = handoffs.agent_password_hash("ana")
    assert stored.startswith("scrypt$") and "una clave larga" not in stored
    assert hash_password("una clave larga") != hash_password("una clave larga")  # a salt each time
    assert authenticate(handoffs, "ana", "una clave larga") and authenticate(
        handoffs, " ANA ", "una clave larga"
    )
    assert not authenticate(handoffs, "ana", "otra clave larga") and not authenticate(
        handoffs, "nadie", "x" * 12
    )
    assert not verify_password("x", "md5$abc")
    with pytest.raises(AgentError):
        create_agent(handoffs, "ana", "corta")
    with pytest.raises(AgentError):
        create_agent(handoffs, "<b>ana</b>", "una clave larga")


class Desk:
    """A local external desk that answers 503 while `down`, and records what it accepted."""

    def __init__(self) -> None:
        self.down = True
        self.accepted: list[tuple[dict, dict]] = []
        self.attempts = 0
        desk = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_):
                pass

            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                desk.attempts += 1
                if desk.down:
                    self.send_response(503)
                else:
                    desk.accepted.append((dict(self.headers), json.loads(body), body))
                    self.send_response(200)
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/handoffs"

    def stop(self):
        self.server.shutdown()


def test_logging_out_and_a_new_password_end_the_agents_sessions(handoffs):
    assert not handoffs.agent_session_valid("nadie", NOW)  # no such agent
    handoffs.save_agent("ana", hash_password("una-clave-larga"), now=NOW)
    assert handoffs.agent_session_valid("ana", NOW + timedelta(minutes=1))
    handoffs.end_agent_sessions("ana", now=NOW + timedelta(hours=1))
    assert not handoffs.agent_session_valid("ana", NOW + timedelta(minutes=59))
    assert handoffs.agent_session_valid("ana", NOW + timedelta(hours=1, microseconds=1))
    handoffs.save_agent("ana", hash_password("otra-clave-larga"), now=NOW + timedelta(hours=2))
    assert not handoffs.agent_session_valid("ana", NOW + timedelta(hours=1, minutes=30))


@pytest.fixture
def desk():
    server = Desk()
    yield server
    server.stop()


def test_a_desk_that_is_down_then_up_gets_the_handoff_once_and_signed(handoffs, desk):
    handoff = open_one(handoffs, desk=True)
    assert deliver_due(handoffs, desk.url, "s3cret", now=NOW) == 0  # down
    assert handoffs.delivery(handoff.id)["attempts"] == 1 and desk.attempts == 1
    assert deliver_due(handoffs, desk.url, "s3cret", now=NOW + timedelta(seconds=1)) == 0  # backing off
    assert desk.attempts == 1
    desk.down = False
    assert deliver_due(handoffs, desk.url, "s3cret", now=NOW + retry_delay(1)) == 1
    assert deliver_due(handoffs, desk.url, "s3cret", now=NOW + timedelta(hours=1)) == 0  # never twice
    assert len(desk.accepted) == 1
    headers, packet, body = desk.accepted[0]
    assert packet == {"handoff_id": handoff.id} and headers["X-Handoff-Id"] == handoff.id
    sent_at = int((NOW + retry_delay(1)).timestamp())
    assert headers[TIMESTAMP_HEADER] == str(sent_at)  # the attempt's own moment, not the first's
    expected = "sha256=" + hmac.new(b"s3cret", f"{sent_at}.".encode() + body, hashlib.sha256).hexdigest()
    assert headers[SIGNATURE_HEADER] == expected
    assert verify(body, headers[TIMESTAMP_HEADER], headers[SIGNATURE_HEADER], "s3cret", NOW + retry_delay(1))
    assert handoffs.delivery(handoff.id)["status"] == "delivered"


def test_an_unreachable_desk_loses_nothing(handoffs):
    handoff = open_one(handoffs, desk=True)
    assert deliver_due(handoffs, "http://127.0.0.1:9/none", None, now=NOW, timeout_s=1) == 0
    pending = handoffs.delivery(handoff.id)
    assert pending["status"] == "pending" and "unreachable" in pending["last_error"]


def test_a_leased_delivery_is_not_sent_by_a_second_process(handoffs):
    handoff = open_one(handoffs, desk=True)
    assert handoffs.claim_due_deliveries(NOW) == [handoff.id]
    assert handoffs.claim_due_deliveries(NOW) == []  # the other process finds it leased


def test_retries_back_off_up_to_ten_minutes():
    assert [retry_delay(n).total_seconds() for n in (1, 2, 3)] == [5, 10, 20]
    assert retry_delay(30) == timedelta(minutes=10)


def test_new_handoffs_are_announced_on_redis(redis_client):
    listener = redis_client.pubsub()
    listener.subscribe(CHANNEL)
    listener.get_message(timeout=2)  # the subscription confirmation
    Announcer(REDIS_URL).announce("handoff_created", "HO-ABCDEFGH", reason="dispute")
    message = listener.get_message(timeout=5)
    assert json.loads(message["data"]) == {
        "event": "handoff_created",
        "handoff_id": "HO-ABCDEFGH",
        "reason": "dispute",
    }
    listener.close()


def test_without_redis_announcing_is_a_no_op():
    Announcer(None).announce("handoff_created", "HO-ABCDEFGH")
