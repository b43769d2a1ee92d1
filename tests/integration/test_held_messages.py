"""Outside WhatsApp's 24-hour window nothing is dropped: whatever a sender must send (the outbox
worker's confirmation, an agent's console reply, a bot reply, a notification) goes out as the
template meant for it, or the generic one, and the message is kept in held_messages until the
customer writes; then the channel delivers it, in order and once, before answering them.

SQLite and PostgreSQL (the `store` fixture), a FixedClock, and the fake Twilio over real HTTP: the
templates of bot/whatsapp_templates.yml are approved in its Content API (their SIDs replaced by the
fake's), which refuses a ContentSid it does not know or ContentVariables that do not fit.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from datetime import timedelta

import pytest
import requests
from rasa.core.channels.channel import UserMessage

from bot.adapters.outbox_sql import Outbox
from bot.adapters.sql import SqlCaseBook, SqlCrm, SqlErp
from bot.backends import Backends
from bot.cases import request_case
from bot.clock import FixedClock
from bot.handoff.agents import create_agent
from bot.handoff.service import build_services
from bot.messaging.inbound import Channel, InboundMessage
from bot.messaging.journal import DuplicateMessage, InboundJournal
from bot.messaging.memory import memory_for
from bot.messaging.sender import MessageSender, OutboundMessage, TwilioTransport
from bot.messaging.store import MessagingStore
from bot.messaging.templates import TemplateCatalog
from bot.notifications.events import parse_event
from bot.notifications.rules import check_templates, load_rules
from bot.notifications.store import NotificationStore
from bot.outbox import WriteStatus
from bot.outbox_worker import OutboxWorker, sender_notify
from bot.records import CaseKind
from bot.settings import Settings
from bot.wiring import Wiring
from connectors.console.app import create_app
from connectors.console.rasa_api import RasaApi
from connectors.twilio_channel import TwilioInput
from tests.conftest import MARIANA_MX, NOW
from tests.fake_twilio import FakeTwilio
from tests.harness import free_port
from tests.notification_helpers import approved_templates, build_worker, event, twilio_settings
from tests.rest_fixtures import rest_backends
from tests.served_app import ServedApp

pytestmark = pytest.mark.integration

ADDRESS = "whatsapp:+5215512345678"  # where WhatsApp delivers to Mariana (her +521 form)


@pytest.fixture
def fake() -> Iterator[FakeTwilio]:
    server = FakeTwilio().start()
    yield server
    server.stop()


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
def messaging(store, clock) -> MessagingStore:
    return MessagingStore(store, clock)


@pytest.fixture
def templates(fake) -> TemplateCatalog:
    return approved_templates(fake)


def settings_for(fake: FakeTwilio) -> Settings:
    return twilio_settings(fake, TWILIO_CONTENT_API_BASE=fake.url)


def sender_for(fake, messaging, clock, templates) -> MessageSender:
    settings = settings_for(fake)
    transport = TwilioTransport(
        settings.twilio_account_sid, settings.twilio_auth_token, fake.url, content_api_base=fake.url
    )
    return MessageSender(settings, messaging, transport, (0.01,), clock=clock, templates=templates)


def channel_for(store, messaging, clock, sender) -> TwilioInput:
    settings = sender._settings  # the channel and its sender share one configuration
    return TwilioInput(
        settings,
        store=messaging,
        handoff=build_services(settings, store, clock),
        clock=clock,
        sender=sender,
        memory=memory_for(None),
        journal=InboundJournal(store, clock),
    )


def inbound(text: str, sid: str, phone: str = MARIANA_MX, channel: Channel = Channel.WHATSAPP):
    return InboundMessage(sid=sid, phone=phone, channel=channel, text=text, profile_name="Mariana")


class Bot:
    """Stands for Rasa behind the channel: records what reached it and answers each message."""

    def __init__(self) -> None:
        self.heard: list[str] = []

    async def __call__(self, message: UserMessage) -> None:
        self.heard.append(message.text)
        await message.output_channel.send_text_message(message.sender_id, f"respuesta a {message.text}")


def wrote(messaging: MessagingStore, clock: FixedClock, hours_ago: float, phone: str = MARIANA_MX) -> None:
    messaging.record_inbound(phone, Channel.WHATSAPP, ADDRESS, at=clock.now() - timedelta(hours=hours_ago))


def test_an_outbox_confirmation_a_day_later_is_a_template_then_the_held_text_once_she_writes(
    fake, store, messaging, clock, templates
):
    wrote(messaging, clock, hours_ago=0)
    outbox = Outbox(store)
    # The CRM is down when she asks: the case waits in the outbox (the REST adapter, no server).
    down = rest_backends(f"http://127.0.0.1:{free_port()}/v1", outbox=outbox)
    queued = request_case(
        down.cases, outbox, MARIANA_MX, CaseKind.HUMAN_HANDOFF, {"text": "asesor"}, MARIANA_MX, now=NOW
    )
    assert queued.status is WriteStatus.QUEUED
    management_id = queued.management_id
    clock.advance(timedelta(hours=26))  # the CRM came back the next day: the window has closed

    async def scenario() -> None:
        sender = sender_for(fake, messaging, clock, templates)
        backends = Backends(crm=SqlCrm(store), erp=SqlErp(store), cases=SqlCaseBook(store), outbox=outbox)
        worker = OutboxWorker(
            outbox, backends, SqlCaseBook(store), sender_notify(sender, messaging), clock.now,
            max_age=timedelta(hours=48),
        )  # fmt: skip
        assert await worker.run_once() == 1
        [template] = fake.received
        assert (
            template.to == ADDRESS and template.content_sid == templates.get("gestion_novedades").content_sid
        )
        assert json.loads(template.content_variables) == {"1": management_id}
        assert (
            template.body
            == f"Hay novedades sobre tu gestión {management_id}. Responde este mensaje para ver el detalle."
        )
        [held] = messaging.held(MARIANA_MX)
        assert (held.source, held.template, held.template_status) == ("outbox", "gestion_novedades", "queued")
        assert management_id in held.body and "registrada" in held.body

        # She answers the template: the confirmation first, then the bot's answer to her.
        clock.advance(timedelta(hours=3))
        bot = Bot()
        channel = channel_for(store, messaging, clock, sender)
        message = inbound("hola, que novedades?", "SMreply1")
        await channel.handle(message, ADDRESS, bot)
        confirmation, answer = fake.received[1:]
        assert confirmation.content_sid is None and confirmation.body == held.body
        assert answer.body == "respuesta a hola, que novedades?" and bot.heard == ["hola, que novedades?"]
        [delivered] = messaging.held(MARIANA_MX, status=None)
        assert (delivered.status, delivered.delivered_after) == ("delivered", "SMreply1")
        assert delivered.delivered_at == clock.now()

        # Twilio delivers the same message again: the journal refuses it…
        journal = InboundJournal(store, clock)
        journal.accept(inbound("otra", "SMdup"), ADDRESS)
        with pytest.raises(DuplicateMessage):
            journal.accept(inbound("otra", "SMdup"), ADDRESS)
        # …and a replay of a message already handled (a crash after it) sends no held text again.
        await channel.handle(message, ADDRESS, bot)
        await channel.handle(inbound("gracias", "SMreply2"), ADDRESS, bot)
        bodies = [m.body for m in fake.received]
        assert bodies.count(held.body) == 1
        await sender.transport.close()

    asyncio.run(scenario())


def test_a_bot_turn_outside_the_window_sends_one_generic_template_and_its_replies_in_order(
    fake, store, messaging, clock, templates
):
    wrote(messaging, clock, hours_ago=30)

    async def scenario() -> None:
        sender = sender_for(fake, messaging, clock, templates)
        first = await sender.send(
            OutboundMessage(MARIANA_MX, Channel.WHATSAPP, "¿Cómo calificarías la atención?"), key="SMold:0"
        )
        second = await sender.send(
            OutboundMessage(MARIANA_MX, Channel.WHATSAPP, "Responde del 1 al 5."), key="SMold:1"
        )
        again = await sender.send(
            OutboundMessage(MARIANA_MX, Channel.WHATSAPP, "¿Cómo calificarías la atención?"), key="SMold:0"
        )
        assert (first.status, second.status, again.status) == ("held", "held", "held")
        assert again.held_id == first.held_id  # a replayed reply is not held twice
        # One "you have news" per absence, with no variables: the generic template.
        [generic] = fake.received
        assert generic.content_sid == templates.fallback.content_sid and generic.content_variables is None
        assert generic.body == "Tienes novedades sobre tu cuenta. Responde este mensaje para verlas."
        rows = messaging.held(MARIANA_MX)
        assert [(row.template, row.template_status) for row in rows] == [
            ("novedades_cuenta", "queued"),
            (None, f"not sent: template novedades_cuenta sent for held #{first.held_id}"),
        ]

        channel = channel_for(store, messaging, clock, sender)
        await channel.handle(inbound("1", "SMnew"), ADDRESS, Bot())
        assert [m.body for m in fake.received[1:]] == [
            "¿Cómo calificarías la atención?",
            "Responde del 1 al 5.",
            "respuesta a 1",
        ]
        assert messaging.held(MARIANA_MX) == []
        await sender.transport.close()

    asyncio.run(scenario())


class RecordingRasa(RasaApi):
    """Rasa's console door as the console sees it: the events appended, kept here."""

    def __init__(self) -> None:
        super().__init__("http://127.0.0.1:9", None)
        self.appended: list[tuple[str, list]] = []

    async def append_events(self, conversation_id: str, events: list) -> None:
        self.appended.append((conversation_id, events))


def test_a_console_reply_outside_the_window_goes_as_the_console_template_and_waits_for_her(
    fake, store, messaging, clock, templates
):
    wrote(messaging, clock, hours_ago=25)
    settings = settings_for(fake)
    services = build_services(settings, store, clock)
    create_agent(services.store, "ana", "contraseña-larga-1")
    services.store.create(
        handoff_id="HO-LATE0001", conversation_id=MARIANA_MX, phone=MARIANA_MX, channel="whatsapp",
        reason="customer_request", customer_name="Mariana López", packet={}, resume_form=None,
        now=clock.now(),
    )  # fmt: skip
    backends = Backends(crm=SqlCrm(store), erp=SqlErp(store), cases=SqlCaseBook(store), outbox=Outbox(store))
    graph = Wiring.of(
        settings, clock, handoff=services, messaging=messaging, templates=templates, backends=backends
    )
    rasa = RecordingRasa()
    console = ServedApp(create_app(graph, "test-secret", rasa, name="held_console"), "console")
    try:
        browser = requests.Session()
        url = f"http://127.0.0.1:{console.port}"
        login = browser.get(f"{url}/login", timeout=10).text
        csrf = re.search(r'name="csrf" value="([^"]+)"', login).group(1)
        browser.post(
            f"{url}/login", data={"csrf": csrf, "name": "ana", "password": "contraseña-larga-1"}, timeout=10
        )
        page = browser.get(f"{url}/handoffs/HO-LATE0001", timeout=10).text
        csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
        text = "Mariana, ya revisé tu pedido: llega el viernes."
        answer = browser.post(
            f"{url}/handoffs/HO-LATE0001/reply",
            data={"csrf": csrf, "text": text},
            allow_redirects=False,
            timeout=10,
        )
        assert answer.status_code == 302 and answer.headers["Location"].endswith("notice=held")
        shown = browser.get(f"{url}{answer.headers['Location']}", timeout=10).text
        assert "tu respuesta le llega en cuanto vuelva a escribir" in shown
    finally:
        console.stop()
    [template] = fake.received
    assert template.content_sid == templates.get("respuesta_asesor").content_sid
    [held] = messaging.held(MARIANA_MX)
    assert (held.source, held.body, held.template) == ("console", text, "respuesta_asesor")
    assert rasa.appended[0][1][0]["text"] == text  # in the tracker as said, as any reply

    async def she_writes() -> None:
        sender = sender_for(fake, messaging, clock, templates)
        await channel_for(store, messaging, clock, sender).handle(inbound("hola?", "SMback"), ADDRESS, Bot())
        await sender.transport.close()

    clock.advance(timedelta(hours=1))
    asyncio.run(she_writes())
    # While a person has the conversation, her message goes to the agent, not to the bot; the
    # agent's reply reaches her first all the same.
    assert fake.received[1].body == text and fake.received[1].content_sid is None
    assert messaging.held(MARIANA_MX, status=None)[0].status == "delivered"


def test_a_notification_without_its_own_template_goes_generic_and_is_held(
    fake, store, demo, clock, templates
):
    messaging = MessagingStore(store, clock)
    wrote(messaging, clock, hours_ago=48)
    rules = load_rules()
    check_templates(rules, templates)
    assert (
        rules.rule_for(parse_event(event("ev-1", MARIANA_MX)).kind).whatsapp_template is None
    )  # order_shipped
    notifications = NotificationStore(store)
    notifications.receive(parse_event(event("ev-1", MARIANA_MX, channel="whatsapp")), clock.now())

    async def scenario() -> None:
        worker, _ = build_worker(settings_for(fake), store, demo.crm, clock, rules, templates=templates)
        assert await worker.run_once() == 1
        await worker.sender.transport.close()

    asyncio.run(scenario())
    [template] = fake.received
    assert template.content_sid == templates.fallback.content_sid
    [row] = notifications.all()
    assert row.status == "held" and "template novedades_cuenta sent" in row.reason
    [held] = messaging.held(MARIANA_MX)
    assert held.source == "notification" and "PED-1001" in held.body


def test_a_notification_with_a_complete_template_is_sent_as_that_template_and_not_held(
    fake, store, demo, clock, templates
):
    messaging = MessagingStore(store, clock)
    wrote(messaging, clock, hours_ago=48)
    notifications = NotificationStore(store)
    tomorrow = {"order_id": "PED-1001", "delivery_date": "2026-11-27", "window": "14:00 y 18:00"}
    news = event("ev-2", MARIANA_MX, kind="delivery_tomorrow", channel="whatsapp", variables=tomorrow)
    notifications.receive(parse_event(news), clock.now())

    async def scenario() -> None:
        worker, _ = build_worker(
            settings_for(fake), store, demo.crm, clock, load_rules(), templates=templates
        )
        assert await worker.run_once() == 1
        await worker.sender.transport.close()

    asyncio.run(scenario())
    [sent] = fake.received
    assert sent.content_sid == templates.get("entrega_manana").content_sid
    # No IDENTITY_SECRET for this worker: the button that opens the reschedule form carries its
    # plain payload in its id variable (test_consents.py has the signed link there).
    assert json.loads(sent.content_variables) == {
        "1": "Mariana", "2": "PED-1001", "3": "viernes 27 de noviembre", "4": "14:00 y 18:00",
        "5": "/reschedule_delivery",
    }  # fmt: skip
    assert fake.options_of(sent)[1] == [
        ("Cambiar la entrega", "/reschedule_delivery"),
        ("Ver mi pedido", "/order_status"),
    ]
    assert notifications.all()[0].status == "sent" and messaging.held(MARIANA_MX, status=None) == []


def test_an_sms_number_has_no_window_and_nothing_is_held(fake, store, messaging, clock, templates):
    phone = "+51987654321"
    messaging.record_inbound(phone, Channel.SMS, at=clock.now() - timedelta(days=30))

    async def scenario() -> None:
        sender = sender_for(fake, messaging, clock, templates)
        message = OutboundMessage(phone, Channel.SMS, "Tu gestión quedó registrada.", source="outbox")
        result = await sender.send(message)
        assert result.status == "queued"
        # Writing by SMS does not open the WhatsApp window: nothing is delivered, nothing breaks.
        assert await sender.deliver_held(phone, "SMsms") == []
        await sender.transport.close()

    asyncio.run(scenario())
    [sms] = fake.received
    assert (sms.to, sms.body, sms.content_sid) == (phone, "Tu gestión quedó registrada.", None)
    assert messaging.held(phone, status=None) == []


def test_a_held_message_to_a_number_that_opted_out_meanwhile_is_recorded_blocked(
    fake, store, messaging, clock, templates
):
    wrote(messaging, clock, hours_ago=30)

    async def scenario() -> None:
        sender = sender_for(fake, messaging, clock, templates)
        await sender.send(OutboundMessage(MARIANA_MX, Channel.WHATSAPP, "Tu cambio quedó hecho."))
        messaging.opt_out(MARIANA_MX, Channel.WHATSAPP)
        wrote(messaging, clock, hours_ago=0)
        [(held, result)] = await sender.deliver_held(MARIANA_MX, "SMlater")
        assert result.status == "blocked"
        await sender.transport.close()

    asyncio.run(scenario())
    assert len(fake.received) == 1  # the template only
    assert messaging.held(MARIANA_MX, status=None)[0].status == "blocked"


def test_a_held_notification_whose_news_went_stale_is_recorded_expired_not_sent_late(
    fake, store, demo, clock, templates
):
    messaging = MessagingStore(store, clock)
    wrote(messaging, clock, hours_ago=48)
    NotificationStore(store).receive(parse_event(event("ev-3", MARIANA_MX, channel="whatsapp")), clock.now())

    async def scenario() -> None:
        worker, _ = build_worker(
            settings_for(fake), store, demo.crm, clock, load_rules(), templates=templates
        )
        assert await worker.run_once() == 1
        await worker.sender.transport.close()
        # order_shipped news lasts 48 hours from the event (09:00): she writes three days later.
        clock.advance(timedelta(days=3))
        sender = sender_for(fake, messaging, clock, templates)
        await channel_for(store, messaging, clock, sender).handle(inbound("hola", "SMlate"), ADDRESS, Bot())
        await sender.transport.close()

    asyncio.run(scenario())
    assert [m.body for m in fake.received] == [
        "Tienes novedades sobre tu cuenta. Responde este mensaje para verlas.",
        "respuesta a hola",
    ]
    [held] = messaging.held(MARIANA_MX, status=None)
    assert (held.status, held.delivered_after) == ("expired", "SMlate")


def test_baja_keeps_what_was_held_and_alta_delivers_it_after_the_confirmation(
    fake, store, messaging, clock, templates
):
    wrote(messaging, clock, hours_ago=30)

    async def scenario() -> None:
        sender = sender_for(fake, messaging, clock, templates)
        await sender.send(
            OutboundMessage(MARIANA_MX, Channel.WHATSAPP, "Tu cambio quedó hecho.", source="outbox")
        )
        channel = channel_for(store, messaging, clock, sender)
        bot = Bot()
        await channel.handle(inbound("BAJA", "SMbaja"), ADDRESS, bot)
        assert [row.status for row in messaging.held(MARIANA_MX, status=None)] == ["held"]
        await channel.handle(inbound("ALTA", "SMalta"), ADDRESS, bot)
        assert bot.heard == []  # both words are the channel's, not the bot's
        await sender.transport.close()

    asyncio.run(scenario())
    template, opted_out, opted_in, held = fake.received
    assert template.content_sid == templates.fallback.content_sid
    assert opted_out.body != held.body and opted_in.body != held.body
    assert held.body == "Tu cambio quedó hecho." and held.content_sid is None
    assert messaging.held(MARIANA_MX, status=None)[0].delivered_after == "SMalta"
