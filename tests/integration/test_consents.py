"""Consents on PostgreSQL: what a customer receives per topic and channel, the append-only log
(BAJA / ALTA included, once per message), the worker that skips what the customer said no to
and says why, the CSV export, and a notification's quick reply that opens its flow through a
signed link while it lives (and is refused after)."""

from __future__ import annotations

import asyncio
import csv
import importlib.util
import io
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from rasa.core.channels.channel import UserMessage

from bot.adapters.sql import from_db_time
from bot.clock import FixedClock
from bot.consents.export import write_csv
from bot.consents.store import ConsentBook, ConsentChange
from bot.deep_links import LINK_METADATA, DeepLinks, Flow, Link, link_token
from bot.handoff.service import build_services
from bot.messaging.buttons import button_id
from bot.messaging.inbound import Channel, InboundMessage
from bot.messaging.journal import InboundJournal
from bot.messaging.memory import memory_for
from bot.messaging.store import MessagingStore
from bot.notifications.events import parse_event
from bot.notifications.store import NotificationStore
from bot.notifications.store import notifications as notification_rows
from connectors.twilio_channel import TwilioInput
from tests.conftest import MARIANA_MX, NOW, ROSA_PE
from tests.notification_helpers import approved_templates, build_worker, event, twilio_settings

pytestmark = [pytest.mark.integration, pytest.mark.parametrize("store", ["postgresql"], indirect=True)]

_spec = importlib.util.spec_from_file_location(
    "consents_export", Path(__file__).parents[2] / "scripts" / "consents_export.py"
)
consents_export = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(consents_export)

SECRET = "consent-test-links"
ADDRESS = "whatsapp:+5215512345678"
TOMORROW = {"order_id": "PED-1001", "delivery_date": "2026-11-27", "window": "14:00 y 18:00"}


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
def book(store, clock) -> ConsentBook:
    return ConsentBook(store, clock)


class Bot:
    """Stands for Rasa behind the channel: records what reached it."""

    def __init__(self) -> None:
        self.heard: list[str] = []
        self.metadata: list[dict] = []

    async def __call__(self, message: UserMessage) -> None:
        self.heard.append(message.text)
        self.metadata.append(message.metadata or {})


def said(phone: str, topic: str, channel: Channel, granted: bool, sid: str | None = None) -> ConsentChange:
    return ConsentChange(
        phone, topic, channel, granted, via="whatsapp", source="preferences", message_id=sid,
        message_text=f"/manage_preferences {topic}",
    )  # fmt: skip


def run_worker(fake, store, demo, clock, book, memory=None, links=None) -> None:
    async def scenario() -> None:
        worker, _ = build_worker(
            twilio_settings(fake, TWILIO_CONTENT_API_BASE=fake.url), store, demo.crm, clock,
            templates=approved_templates(fake), consents=book, links=links, memory=memory,
        )  # fmt: skip
        await worker.run_once()
        await worker.sender.transport.close()

    asyncio.run(scenario())


def test_a_change_is_in_the_table_and_in_the_log_once_per_message(book, clock):
    assert book.change(said(MARIANA_MX, "promotions", Channel.WHATSAPP, True, "SMp1"))
    clock.advance(timedelta(minutes=5))
    assert book.change(said(MARIANA_MX, "promotions", Channel.WHATSAPP, False, "SMp2"))
    # The same message processed again (a replay after a crash) changes and logs nothing more.
    assert not book.change(said(MARIANA_MX, "promotions", Channel.WHATSAPP, True, "SMp1"))

    assert book.choices(MARIANA_MX) == {("promotions", "whatsapp"): False}
    log = book.log_for(MARIANA_MX)
    assert [(entry.granted, entry.message_id) for entry in log] == [(True, "SMp1"), (False, "SMp2")]
    assert log[1].at == NOW + timedelta(minutes=5)  # the project clock, not the machine's
    assert (log[0].topic, log[0].channel, log[0].via, log[0].source) == (
        "promotions", "whatsapp", "whatsapp", "preferences"
    )  # fmt: skip
    assert book.choices(ROSA_PE) == {}  # another number's choices are its own


def test_the_logged_message_is_masked(book):
    change = ConsentChange(
        MARIANA_MX, "promotions", Channel.SMS, False, via="sms", source="preferences",
        message_id="SMcard", message_text="no promos, mi tarjeta 4111 1111 1111 1111",
    )  # fmt: skip
    book.change(change)
    [entry] = book.log_for(MARIANA_MX)
    assert "4111 1111 1111 1111" not in entry.message_text and "no promos" in entry.message_text


def test_a_notification_on_a_topic_the_customer_said_no_to_is_not_sent_and_says_why(
    fake_twilio, store, demo, clock, book
):
    fake_twilio.reset()
    book.change(said(MARIANA_MX, "order_updates", Channel.SMS, False, "SMno"))
    notifications = NotificationStore(store)
    notifications.receive(parse_event(event("ship-1", MARIANA_MX, channel="sms")), clock.now())
    due = {"invoice_id": "FAC-1", "amount": "1500", "currency": "MXN", "due_date": "2026-11-29"}
    notifications.receive(
        parse_event(event("due-1", MARIANA_MX, kind="invoice_due_soon", channel="sms", variables=due)),
        clock.now(),
    )

    run_worker(fake_twilio, store, demo, clock, book)

    by_event = {row.event.event_id: row for row in notifications.all()}
    assert by_event["ship-1"].status == "skipped"
    assert by_event["ship-1"].reason == "no_consent:order_updates/sms"
    # Another topic, which she did not refuse, still goes.
    assert by_event["due-1"].status == "sent"
    [sent] = fake_twilio.received
    assert "FAC-1" in sent.body and "PED-1001" not in sent.body


def test_baja_and_alta_are_logged_once_each_with_their_message(store, clock, book, fake_twilio):
    fake_twilio.reset()
    settings = twilio_settings(fake_twilio)
    messaging = MessagingStore(store, clock)
    channel = TwilioInput(
        settings, store=messaging, handoff=build_services(settings, store, clock), clock=clock,
        memory=memory_for(None), journal=InboundJournal(store, clock), consents=book,
    )  # fmt: skip
    baja = InboundMessage(sid="SMbaja", phone=ROSA_PE, channel=Channel.SMS, text="BAJA")
    alta = InboundMessage(sid="SMalta", phone=ROSA_PE, channel=Channel.SMS, text="Alta!")

    async def scenario() -> None:
        bot = Bot()
        await channel.handle(baja, ROSA_PE, bot)
        await channel.handle(baja, ROSA_PE, bot)  # processed again after a crash: logged once
        clock.advance(timedelta(hours=2))
        await channel.handle(alta, ROSA_PE, bot)
        assert bot.heard == []  # keywords never reach the bot
        await channel.sender.transport.close()

    asyncio.run(scenario())
    log = book.log_for(ROSA_PE)
    assert [(e.topic, e.channel, e.granted, e.via, e.source, e.message_id, e.message_text) for e in log] == [
        ("*", "sms", False, "sms", "keyword", "SMbaja", "BAJA"),
        ("*", "sms", True, "sms", "keyword", "SMalta", "Alta!"),
    ]
    assert log[1].at - log[0].at == timedelta(hours=2)
    assert not messaging.contact(ROSA_PE).opted_out


def test_the_log_exports_as_csv_for_the_days_asked(store, clock, book, monkeypatch, tmp_path):
    book.change(said(MARIANA_MX, "promotions", Channel.WHATSAPP, True, "SMd1"))  # 2026-11-26
    clock.advance(timedelta(days=2))
    book.change(said(ROSA_PE, "=cmd", Channel.SMS, False, "SMd2"))  # 2026-11-28: a hostile topic
    clock.advance(timedelta(days=5))
    book.change(said(MARIANA_MX, "promotions", Channel.WHATSAPP, False, "SMd3"))  # 2026-12-03

    monkeypatch.setenv("DATABASE_URL", store.engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("BOT_TIMEZONE", "America/Mexico_City")
    out = tmp_path / "consents.csv"
    assert consents_export.main(["--from", "2026-11-26", "--to", "2026-12-01", "--out", str(out)]) == 0

    rows = list(csv.DictReader(out.read_text(encoding="utf-8").splitlines()))
    assert [row["message_id"] for row in rows] == ["SMd1", "SMd2"]  # the 3rd is after TO
    assert rows[0]["granted"] == "yes" and rows[0]["phone"] == MARIANA_MX
    assert rows[0]["at_utc"].startswith("2026-11-26T16:00:00")
    assert rows[1]["topic"] == "=cmd"  # data as it is; only free text is made inert
    stream = io.StringIO()
    write_csv(book.log_for(ROSA_PE), stream)
    assert "=cmd" in stream.getvalue()


def test_a_tapped_link_opens_the_reschedule_flow_for_its_order_and_an_old_one_is_refused(
    fake_twilio, store, demo, clock, book
):
    fake_twilio.reset()
    settings = twilio_settings(fake_twilio, TWILIO_CONTENT_API_BASE=fake_twilio.url)
    messaging = MessagingStore(store, clock)
    messaging.record_inbound(MARIANA_MX, Channel.WHATSAPP, ADDRESS, at=clock.now() - timedelta(hours=1))
    memory = memory_for(None)  # the worker's offered options, as the channel reads them
    links = DeepLinks(SECRET)
    notifications = NotificationStore(store)
    news = event("tomorrow-1", MARIANA_MX, kind="delivery_tomorrow", channel="whatsapp", variables=TOMORROW)
    notifications.receive(parse_event(news), clock.now())

    run_worker(fake_twilio, store, demo, clock, book, memory=memory, links=links)

    [sent] = fake_twilio.received
    assert "PED-1001 llega mañana" in sent.body
    kind, shown = fake_twilio.options_of(sent)
    assert kind == "twilio/quick-reply" and [title for title, _ in shown] == ["Cambiar fecha", "Está bien"]
    change_date = shown[0][1]
    offered = memory.pending_buttons(MARIANA_MX)
    assert change_date == button_id(offered[0]["payload"])
    assert offered[0]["payload"].startswith('/follow_link{"link_token": ')  # not the flow itself

    channel = TwilioInput(
        twilio_settings(fake_twilio, IDENTITY_SECRET=SECRET), store=messaging,
        handoff=build_services(settings, store, clock), clock=clock, memory=memory,
        journal=InboundJournal(store, clock), consents=book,
    )  # fmt: skip
    tap = InboundMessage(
        sid="SMtap", phone=MARIANA_MX, channel=Channel.WHATSAPP, text="Cambiar fecha", tapped_id=change_date
    )
    bot = Bot()

    async def tap_now() -> None:
        await channel.handle(tap, ADDRESS, bot)
        await channel.sender.transport.close()

    asyncio.run(tap_now())
    assert bot.heard == ['/reschedule_delivery{"order_id": "PED-1001"}']
    # The tap names the notification whose link it opened (analytics counts it, docs/kpis.md),
    # and the notification's row says the channel it went on and until when its links worked.
    [row] = notifications.all()
    assert bot.metadata[0]["notification"] == row.id
    assert notifications.get(row.id).status == "sent"
    with store.connect() as conn:
        stored = conn.execute(
            sa.select(notification_rows.c.channel, notification_rows.c.link_expires_at)
        ).one()
    assert stored.channel == "whatsapp"
    assert from_db_time(stored.link_expires_at) == parse_event(news).occurred_at + timedelta(hours=20)

    # The same offer answered after the news expired (delivery_tomorrow: 20 hours) is refused.
    memory.set_pending_buttons(MARIANA_MX, offered)
    clock.advance(timedelta(hours=21))
    late = InboundMessage(sid="SMlate", phone=MARIANA_MX, channel=Channel.WHATSAPP, text="1")

    async def answer_late() -> None:
        await channel.handle(late, ADDRESS, bot)
        await channel.sender.transport.close()

    asyncio.run(answer_late())
    assert bot.heard[-1] == "/link_expired"
    assert "notification" not in bot.metadata[-1]  # an expired link opened nothing


def test_a_channel_without_the_key_refuses_every_link_instead_of_opening_it(store, clock, book, fake_twilio):
    fake_twilio.reset()
    settings = twilio_settings(fake_twilio)  # no IDENTITY_SECRET: no link can be checked here
    memory = memory_for(None)
    payload = DeepLinks(SECRET).payload(
        Link(ROSA_PE, Flow.RESCHEDULE, "PED-1007", clock.now() + timedelta(hours=5))
    )
    memory.set_pending_buttons(ROSA_PE, [{"title": "Cambiar fecha", "payload": payload}])
    channel = TwilioInput(
        settings, store=MessagingStore(store, clock), handoff=build_services(settings, store, clock),
        clock=clock, memory=memory, journal=InboundJournal(store, clock), consents=book,
    )  # fmt: skip
    bot = Bot()

    async def answer() -> None:
        await channel.handle(
            InboundMessage(sid="SMone", phone=ROSA_PE, channel=Channel.SMS, text="1"), ROSA_PE, bot
        )
        await channel.sender.transport.close()

    asyncio.run(answer())
    assert bot.heard == ["/link_expired"]


def tap_template_button(store, clock, book, fake_twilio, title: str, tapped: str, sid: str) -> Bot:
    """A tap on a template's button, through the inbound journal (as the webhook stores it) and
    the channel, with nothing on screen; what reached the bot."""
    settings = twilio_settings(fake_twilio, IDENTITY_SECRET=SECRET)
    journal = InboundJournal(store, clock)
    tap = InboundMessage(sid=sid, phone=MARIANA_MX, channel=Channel.WHATSAPP, text=title, tapped_id=tapped)
    journal.accept(tap, ADDRESS)
    stored = journal.take_next(MARIANA_MX, "test-worker")
    assert stored is not None and stored.message.tapped_id == tapped  # the journal kept the link
    channel = TwilioInput(
        settings, store=MessagingStore(store, clock), handoff=build_services(settings, store, clock),
        clock=clock, memory=memory_for(None), journal=journal, consents=book,
    )  # fmt: skip
    bot = Bot()

    async def handle() -> None:
        await channel.handle(stored.message, ADDRESS, bot)
        await channel.sender.transport.close()

    asyncio.run(handle())
    return bot


def test_outside_the_window_the_templates_button_carries_the_link_and_a_tap_opens_the_flow(
    fake_twilio, store, demo, clock, book
):
    fake_twilio.reset()
    messaging = MessagingStore(store, clock)
    messaging.record_inbound(MARIANA_MX, Channel.WHATSAPP, ADDRESS, at=clock.now() - timedelta(days=2))
    news = event(
        "tomorrow-late", MARIANA_MX, kind="delivery_tomorrow", channel="whatsapp", variables=TOMORROW
    )
    NotificationStore(store).receive(parse_event(news), clock.now())

    run_worker(fake_twilio, store, demo, clock, book, memory=memory_for(None), links=DeepLinks(SECRET))

    [sent] = fake_twilio.received
    assert sent.content_sid and "PED-1001 llega mañana" in sent.body  # the approved entrega_manana
    kind, shown = fake_twilio.options_of(sent)
    assert kind == "twilio/quick-reply"
    assert [title for title, _ in shown] == ["Cambiar la entrega", "Ver mi pedido"]
    (title, change), (_, order) = shown
    assert link_token(change) and order == "/order_status"  # the link in the id; the other as approved

    bot = tap_template_button(store, clock, book, fake_twilio, title, change, "SMtpl1")
    assert bot.heard == ['/reschedule_delivery{"order_id": "PED-1001"}']


def test_outside_the_window_pagar_ahora_on_the_template_opens_the_payment_for_that_invoice(
    fake_twilio, store, demo, clock, book
):
    fake_twilio.reset()
    messaging = MessagingStore(store, clock)
    messaging.record_inbound(MARIANA_MX, Channel.WHATSAPP, ADDRESS, at=clock.now() - timedelta(days=2))
    due = {"invoice_id": "F-2001", "amount": "1234.50", "currency": "MXN", "due_date": "2026-12-01"}
    news = event("due-late", MARIANA_MX, kind="invoice_due_soon", channel="whatsapp", variables=due)
    NotificationStore(store).receive(parse_event(news), clock.now())

    run_worker(fake_twilio, store, demo, clock, book, memory=memory_for(None), links=DeepLinks(SECRET))

    [sent] = fake_twilio.received
    assert sent.content_sid and "F-2001 por $1,234.50" in sent.body  # aviso_factura, all it says
    _, [(title, pay)] = fake_twilio.options_of(sent)
    assert title == "Pagar ahora" and link_token(pay)

    bot = tap_template_button(store, clock, book, fake_twilio, title, pay, "SMtpl2")
    assert bot.heard == ["/make_payment"]
    assert bot.metadata[0][LINK_METADATA] == {"flow": "pay", "target": "F-2001"}

    # The same tap once the news expired (invoice_due_soon: 72 hours) is politely refused.
    clock.advance(timedelta(hours=73))
    late = tap_template_button(store, clock, book, fake_twilio, title, pay, "SMtpl3")
    assert late.heard == ["/link_expired"] and LINK_METADATA not in late.metadata[0]


def test_a_held_notifications_buttons_delivered_when_she_writes_open_their_flow(
    fake_twilio, store, demo, clock, book
):
    fake_twilio.reset()
    messaging = MessagingStore(store, clock)
    messaging.record_inbound(MARIANA_MX, Channel.WHATSAPP, ADDRESS, at=clock.now() - timedelta(days=2))
    overdue = {"invoice_id": "F-2002", "amount": "899.00", "currency": "MXN", "due_date": "2026-11-24"}
    news = event("overdue-late", MARIANA_MX, kind="invoice_overdue", channel="whatsapp", variables=overdue)
    NotificationStore(store).receive(parse_event(news), clock.now())
    # invoice_overdue has no template of its own: the generic one goes, its text is held.
    run_worker(fake_twilio, store, demo, clock, book, memory=memory_for(None), links=DeepLinks(SECRET))
    assert [m.content_sid is not None for m in fake_twilio.received] == [True]

    settings = twilio_settings(fake_twilio, IDENTITY_SECRET=SECRET, TWILIO_CONTENT_API_BASE=fake_twilio.url)
    channel = TwilioInput(
        settings, store=messaging, handoff=build_services(settings, store, clock), clock=clock,
        memory=memory_for(None), journal=InboundJournal(store, clock), consents=book,
    )  # fmt: skip
    bot = Bot()

    async def conversation() -> None:
        hello = InboundMessage(sid="SMhola", phone=MARIANA_MX, channel=Channel.WHATSAPP, text="hola")
        await channel.handle(hello, ADDRESS, bot)  # the held notice is delivered, then "hola" to the bot
        notice = fake_twilio.received[-1]
        assert "F-2002 por $899.00 venció" in notice.body
        kind, shown = fake_twilio.options_of(notice)
        assert kind == "twilio/quick-reply" and [title for title, _ in shown] == ["Pagar ahora", "Ya pagué"]
        tap = InboundMessage(
            sid="SMpay", phone=MARIANA_MX, channel=Channel.WHATSAPP, text="Pagar ahora", tapped_id=shown[0][1]
        )
        await channel.handle(tap, ADDRESS, bot)
        await channel.sender.transport.close()

    asyncio.run(conversation())
    assert bot.heard == ["hola", "/make_payment"]
    assert bot.metadata[1][LINK_METADATA] == {"flow": "pay", "target": "F-2002"}
