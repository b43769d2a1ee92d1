"""Notifications from business events, end to end on PostgreSQL and the fake Twilio: an event
POSTed to the intake is stored, decided and sent through the one MessageSender, once."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from bot.clock import FixedClock
from bot.messaging.inbound import Channel
from bot.messaging.templates import parse_templates
from bot.notifications.events import EventKind, parse_event
from bot.notifications.rules import check_templates, parse_rules
from bot.notifications.store import NotificationStore, notifications
from tests.conftest import CLOCK, MARIANA_MX, PUBLIC_URL, ROSA_PE
from tests.notification_helpers import RunningIntake, approved_templates, build_worker, event, twilio_settings

pytestmark = pytest.mark.parametrize("store", ["postgresql"], indirect=True)

ROOT = Path(__file__).parents[2]
MORNING = datetime.fromisoformat("2026-11-26T10:00:00-06:00")  # a Thursday in Mexico City


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(MORNING)


@pytest.fixture
def loop():
    running = asyncio.new_event_loop()
    yield running
    running.close()


@pytest.fixture
def twilio(fake_twilio):
    fake_twilio.reset()
    return fake_twilio


@pytest.fixture
def intake(store, clock):
    running = RunningIntake(NotificationStore(store), clock)
    yield running
    running.stop()


@pytest.fixture
def worker(store, demo, clock, twilio, loop):
    templates = approved_templates(twilio)
    built, messaging = build_worker(twilio_settings(twilio), store, demo.crm, clock, templates=templates)
    yield built, messaging
    loop.run_until_complete(built.sender.transport.close())


def rows(store) -> list:
    return NotificationStore(store).all()


def deferred(store) -> list[str | None]:
    """The reasons each notification was ever deferred for, in the order received."""
    with store.connect() as conn:
        return list(conn.execute(sa.select(notifications.c.deferred).order_by(notifications.c.id)).scalars())


def test_a_posted_event_is_stored_then_sent_with_the_rules_text(intake, worker, twilio, store, loop):
    answer = intake.post(event("ship-1", MARIANA_MX))
    assert answer.status_code == 202, answer.text
    assert answer.json()["status"] == "accepted"
    [row] = rows(store)
    assert row.status == "pending"  # stored before the answer; sending is the worker's

    handled = loop.run_until_complete(worker[0].run_once())

    assert handled == 1
    [message] = twilio.wait_for(MARIANA_MX)
    assert message.body.startswith("¡Hola Mariana! Tu pedido PED-1001 ya salió y va en camino.")
    assert message.to == MARIANA_MX and message.from_ == "+15005550006"  # SMS, as the event said
    [row] = rows(store)
    assert (row.status, row.message_sid, row.attempts, row.phone) == ("sent", message.sid, 1, MARIANA_MX)


def test_unsigned_forged_stale_or_oversized_events_are_refused_before_anything_is_stored(
    intake, store, clock
):
    import requests

    body = event("ship-2", MARIANA_MX)
    unsigned = requests.post(intake.url, json=body, timeout=10)
    forged = intake.post(body, secret="not-the-secret")
    stale = intake.post(body, at=clock.now() - timedelta(minutes=10))
    oversized = intake.post(b"{" + b" " * 20_000 + b"}")
    malformed = intake.post(b"not json")
    wrong_kind = intake.post(event("ship-2", MARIANA_MX, kind="order_lost"))
    missing = intake.post(event("ship-2", MARIANA_MX, variables={}))

    assert [unsigned.status_code, forged.status_code, stale.status_code] == [401, 401, 401]
    assert oversized.status_code == 413
    assert malformed.status_code == 400
    assert (wrong_kind.status_code, missing.status_code) == (422, 422)
    assert "order_id" in missing.json()["message"]
    assert rows(store) == []


def test_the_same_event_twice_is_stored_once_and_sent_once(intake, worker, twilio, store, loop):
    first = intake.post(event("ship-3", MARIANA_MX))
    again = intake.post(event("ship-3", MARIANA_MX))
    assert (first.status_code, again.status_code) == (202, 200)
    assert again.json() == {"id": first.json()["id"], "status": "duplicate"}

    loop.run_until_complete(worker[0].run_once())
    third = intake.post(event("ship-3", MARIANA_MX))  # a retry after it was sent
    loop.run_until_complete(worker[0].run_once())

    assert third.status_code == 200
    assert len(twilio.wait_quietly(MARIANA_MX, 2, timeout_s=1)) == 1
    assert [row.status for row in rows(store)] == ["sent"]


def test_quiet_hours_defer_the_notification_until_the_customers_morning(
    intake, worker, twilio, store, clock, loop
):
    clock.set(datetime.fromisoformat("2026-11-26T22:30:00-06:00"))
    assert (
        intake.post(event("ship-4", MARIANA_MX, occurred_at="2026-11-26T22:29:00-06:00")).status_code == 202
    )

    loop.run_until_complete(worker[0].run_once())
    [row] = rows(store)
    assert (row.status, row.reason) == ("pending", "quiet_hours")
    assert row.due_at == datetime.fromisoformat("2026-11-27T08:00:00-06:00")
    clock.set(datetime.fromisoformat("2026-11-27T07:59:00-06:00"))
    assert loop.run_until_complete(worker[0].run_once()) == 0  # not due yet
    assert twilio.messages_to(MARIANA_MX) == []

    clock.set(datetime.fromisoformat("2026-11-27T08:00:00-06:00"))
    loop.run_until_complete(worker[0].run_once())

    assert len(twilio.wait_for(MARIANA_MX)) == 1
    assert rows(store)[0].status == "sent"
    # Analytics still learns it waited for the morning (the reason itself is cleared when sent).
    assert deferred(store) == ["quiet_hours"]


def test_the_daily_cap_holds_the_fourth_notification_until_the_next_day(
    intake, worker, twilio, store, clock, loop
):
    for number in range(4):  # the shipped rules allow 3 per customer per day
        assert intake.post(event(f"ship-5-{number}", MARIANA_MX)).status_code == 202

    loop.run_until_complete(worker[0].run_once())

    assert len(twilio.wait_quietly(MARIANA_MX, 4, timeout_s=1)) == 3
    last = rows(store)[-1]
    assert (last.status, last.reason) == ("pending", "daily_cap")
    assert last.due_at == datetime.fromisoformat("2026-11-27T08:00:00-06:00")
    clock.set(datetime.fromisoformat("2026-11-27T08:00:00-06:00"))
    loop.run_until_complete(worker[0].run_once())
    assert len(twilio.wait_for(MARIANA_MX, 4)) == 4
    assert deferred(store) == [None, None, None, "daily_cap"]


def test_an_opted_out_number_is_not_sent_and_the_record_says_why(intake, worker, twilio, store, loop):
    worker[1].opt_out(ROSA_PE, Channel.SMS)
    assert intake.post(event("ship-6", ROSA_PE)).status_code == 202

    loop.run_until_complete(worker[0].run_once())

    [row] = rows(store)
    assert (row.status, row.reason) == ("skipped", "opted_out")
    assert twilio.wait_quietly(ROSA_PE, 1, timeout_s=0.5) == []


def test_whatsapp_outside_the_24_hour_window_is_held_with_the_reason_not_dropped(
    intake, worker, twilio, store, loop
):
    assert intake.post(event("ship-7", MARIANA_MX, channel="whatsapp")).status_code == 202

    loop.run_until_complete(worker[0].run_once())

    [row] = rows(store)
    assert row.status == "held"
    assert row.reason.startswith(
        "outside_session_window: template novedades_cuenta sent; the message is held"
    )
    [generic] = twilio.messages_to(MARIANA_MX)  # order_shipped has no template of its own
    assert generic.body == "Tienes novedades sobre tu cuenta. Responde este mensaje para verlas."
    [held] = worker[1].held(MARIANA_MX)
    assert (
        held.source == "notification"
        and "PED-1001" in held.body
        and row.reason.endswith(f"held as #{held.id} and delivered when the customer writes")
    )


def test_a_whatsapp_template_is_used_outside_the_window_when_the_rule_names_one(
    store, demo, clock, twilio, loop
):
    # An approved template, made in Twilio's console: the fake checks the SID and its variables.
    approved = twilio.add_content(
        {
            "language": "es",
            "variables": {"1": "Ana", "2": "PED-1"},
            "types": {"twilio/text": {"body": "Hola {{1}}, tu pedido {{2}} salió"}},
        }
    )
    rules = parse_rules(
        {"kinds": {"order_shipped": {"text": "Tu pedido {order_id} salió", "whatsapp_template": "envio"}}}
    )
    generic = twilio.add_content({"language": "es", "types": {"twilio/text": {"body": "Novedades"}}})
    templates = parse_templates(
        {
            "generic": "novedades",
            "templates": {
                "novedades": {"content_sid": generic, "language": "es", "text": "Novedades"},
                "envio": {
                    "content_sid": approved, "language": "es", "text": "Hola {{1}}, tu pedido {{2}} salió",
                    "variables": ["customer_name", "order_id"], "complete": True,
                }
            },
        }
    )  # fmt: skip
    check_templates(rules, templates)
    worker, _ = build_worker(
        twilio_settings(twilio), store, demo.crm, clock, rules=rules, templates=templates
    )
    NotificationStore(store).receive(
        parse_event(event("ship-8", MARIANA_MX, channel="whatsapp")), clock.now()
    )
    try:
        loop.run_until_complete(worker.run_once())
    finally:
        loop.run_until_complete(worker.sender.transport.close())

    [message] = twilio.wait_for(MARIANA_MX)
    assert message.content_sid == approved
    assert message.content_variables == '{"1": "Mariana", "2": "PED-1001"}'
    assert rows(store)[0].status == "sent"


def test_an_unknown_customer_id_is_skipped(store, worker, clock, loop):
    NotificationStore(store).receive(
        parse_event({**event("ship-9", MARIANA_MX), "phone": None, "customer_id": "NOPE"}), clock.now()
    )
    loop.run_until_complete(worker[0].run_once())
    [row] = rows(store)
    assert (row.status, row.reason, row.event.kind) == (
        "skipped",
        "unknown_customer",
        EventKind.ORDER_SHIPPED,
    )


def test_a_worker_killed_mid_campaign_loses_nothing_and_sends_each_once(store, pg_url, twilio):
    """60 notifications at 20 per second; the worker is killed -9 after some went out; a new one
    sends the rest, and every customer got exactly one message."""
    notifications = NotificationStore(store)
    phones = [f"+5255100000{number:02d}" for number in range(60)]
    for number, phone in enumerate(phones):
        notifications.receive(
            parse_event(event(f"campaign-{number}", phone)), CLOCK.now()
        )  # the worker's clock
    env = {
        **os.environ,
        "BOT_ENV": "development",
        "DATABASE_URL": pg_url,
        "TWILIO_ACCOUNT_SID": twilio.account_sid,
        "TWILIO_AUTH_TOKEN": twilio.auth_token,
        "TWILIO_API_BASE": twilio.url,
        "TWILIO_SMS_NUMBER": "+15005550006",
        "PUBLIC_URL": PUBLIC_URL,
        "NOTIFY_RATE_PER_S": "20",
        "NOTIFY_LEASE_S": "2",
        "PYTHONPATH": str(ROOT),
    }
    env.pop("REDIS_URL", None)
    command = [sys.executable, "-m", "connectors.notification_worker", "--poll", "0.2"]

    first = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while len(twilio.received) < 15 and time.monotonic() < deadline:
            time.sleep(0.02)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        killed_after = len(twilio.received)
        assert 15 <= killed_after < 60, killed_after

        second = subprocess.Popen(
            command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                if all(row.status == "sent" for row in notifications.all()):
                    break
                time.sleep(0.2)
        finally:
            second.terminate()
            second.wait(10)
    finally:
        if first.poll() is None:
            first.kill()

    assert [row.status for row in notifications.all()] == ["sent"] * 60
    assert sorted(message.to for message in twilio.received) == sorted(phones)  # each exactly once


def test_the_pull_job_turns_the_erps_orders_and_invoices_into_events_once(
    store, demo, worker, twilio, clock, loop
):
    """The SQL ERP and the REST one (the reference server over the same data) see the same events;
    a second poll adds nothing, and the worker then sends what the rules allow."""
    from bot.notifications.pull import SOURCE, pull_once, pulled_events
    from tests.rest_fixtures import rest_backends, start_server

    notifications = NotificationStore(store)
    server = start_server(store)
    try:
        rest_erp = rest_backends(server.url).erp
        pulled = pulled_events(
            rest_erp.orders_in_progress(),
            rest_erp.open_invoices(),
            now=clock.now(),
            zone="America/Mexico_City",
        )
        expected = {(event.kind, event.event_id) for event in pulled}
    finally:
        server.stop()
    new = pull_once(demo.erp, notifications, clock.now(), "America/Mexico_City")
    again = pull_once(demo.erp, notifications, clock.now(), "America/Mexico_City")

    stored = {(row.event.kind, row.event.event_id) for row in notifications.all()}
    assert new == len(stored) > 0 and again == 0
    assert stored == expected  # the REST contract lists what the SQL adapter does
    assert all(row.event.source == SOURCE and row.event.customer_id for row in notifications.all())
    kinds = {kind for kind, _ in stored}
    assert {EventKind.ORDER_SHIPPED, EventKind.DELIVERY_TOMORROW} <= kinds

    loop.run_until_complete(worker[0].run_once())
    for row in notifications.all():  # each decided: none left pending without a reason
        assert row.status in ("sent", "held", "skipped") or row.reason in ("quiet_hours", "daily_cap"), row
    # Mariana's order in transit arriving tomorrow: WhatsApp by default, never written. Its shipping
    # news goes as the generic template and is held; "arrives tomorrow" as its own template.
    mariana = {row.event.kind: row for row in notifications.all() if row.phone == MARIANA_MX}
    assert mariana and all(row.status in ("held", "pending", "sent") for row in mariana.values())
    tomorrow = mariana.get(EventKind.DELIVERY_TOMORROW)
    assert tomorrow is None or tomorrow.status in ("sent", "pending")


def test_a_notification_sent_before_a_crash_is_not_sent_again_when_retried(
    intake, worker, twilio, store, loop
):
    """The worker died after Twilio took the message and before the row said so: the row is
    leased again, and the sender's key finds the message already sent."""
    from bot.notifications.store import notifications

    assert intake.post(event("ship-10", MARIANA_MX)).status_code == 202
    loop.run_until_complete(worker[0].run_once())
    [sent] = twilio.wait_for(MARIANA_MX)
    with store.connect() as conn:  # as if the result had never been recorded
        conn.execute(notifications.update().values(status="pending", message_sid=None, finished_at=None))

    loop.run_until_complete(worker[0].run_once())

    assert len(twilio.wait_quietly(MARIANA_MX, 2, timeout_s=1)) == 1
    [row] = rows(store)
    assert (row.status, row.message_sid, row.attempts) == ("sent", sent.sid, 2)  # tried twice, sent once


def test_a_campaign_is_paced_at_the_configured_rate(store, demo, clock, twilio, loop):
    """30 notifications at 10 per second (a burst of 10 first): about two seconds, all sent."""
    worker, _ = build_worker(twilio_settings(twilio), store, demo.crm, clock, rate_per_s=10)
    notifications = NotificationStore(store)
    for number in range(30):
        notifications.receive(parse_event(event(f"paced-{number}", f"+5255200000{number:02d}")), clock.now())
    started = time.monotonic()
    try:
        while loop.run_until_complete(worker.run_once()):
            pass
    finally:
        loop.run_until_complete(worker.sender.transport.close())
    elapsed = time.monotonic() - started

    assert len(twilio.received) == 30
    assert 1.9 <= elapsed < 10, elapsed


def test_quick_replies_are_numbered_lines_the_channel_reads_back(store, demo, clock, twilio, loop):
    """On SMS the quick replies are numbered lines, remembered as the channel's own options, so
    the customer's "1" reads back as the reply's payload (bot/messaging/inbound_rules.py); one
    that opens a flow carries its plain payload when the worker has no key to sign a link."""
    from bot.messaging.memory import InProcessMemory

    memory = InProcessMemory()
    worker, _ = build_worker(twilio_settings(twilio), store, demo.crm, clock, memory=memory)
    variables = {"order_id": "PED-1001", "delivery_date": "2026-11-27", "window": "14:00 y 18:00"}
    tomorrow = event("tomorrow-1", MARIANA_MX, kind="delivery_tomorrow", variables=variables)
    NotificationStore(store).receive(parse_event(tomorrow), clock.now())
    try:
        loop.run_until_complete(worker.run_once())
    finally:
        loop.run_until_complete(worker.sender.transport.close())

    [message] = twilio.wait_for(MARIANA_MX)
    assert message.body == (
        "Hola Mariana, tu pedido PED-1001 llega mañana viernes 27 de noviembre entre 14:00 y 18:00. "
        "Si no vas a estar, responde y lo cambiamos.\n\n1. Cambiar fecha\n2. Está bien"
    )
    assert memory.pending_buttons(MARIANA_MX) == [
        {"title": "Cambiar fecha", "payload": "/reschedule_delivery"},
        {"title": "Está bien", "payload": "/notice_ok"},
    ]
