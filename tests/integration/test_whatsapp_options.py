"""The sender's WhatsApp buttons and lists over real HTTP: contents made once at the local Content
API, messages sent with ContentSid, the cache in SQLite and PostgreSQL, and the fallbacks."""

import asyncio
import json
import socket

import pytest
import sqlalchemy as sa

from bot.messaging.buttons import Option, button_id
from bot.messaging.inbound import Channel
from bot.messaging.sender import MessageSender, OutboundMessage, transport_for
from bot.messaging.store import MessagingStore, whatsapp_contents
from bot.settings import Settings
from tests.conftest import CLOCK
from tests.fake_twilio import FakeTwilio

pytestmark = pytest.mark.integration

MARIANA, JULIAN = "+525512345678", "+5491123456789"
QUESTION = "¿Confirmo el cambio al viernes 27 de noviembre entre 14:00 y 18:00?"
YES_NO = (Option("Sí, confirmar", "/affirm"), Option("No, otro horario", "/deny"))
MENU = (
    Option("Mi pedido", "/order_status"),
    Option("Cambiar la entrega", "/reschedule_delivery"),
    Option("Pagar / mi saldo", "/check_balance"),
    Option("Ya pagué", "/report_payment"),
    Option("Hablar con persona", "/human_handoff"),
)


@pytest.fixture
def fake():
    server = FakeTwilio().start()
    yield server
    server.stop()


@pytest.fixture
def messaging(store) -> MessagingStore:
    messaging_store = MessagingStore(store, CLOCK)
    messaging_store.record_inbound(MARIANA, Channel.WHATSAPP)
    messaging_store.record_inbound(JULIAN, Channel.WHATSAPP)
    yield messaging_store
    messaging_store.drop_schema()


def settings_for(fake: FakeTwilio, **overrides: str) -> Settings:
    return Settings.from_env(
        {
            "TWILIO_ACCOUNT_SID": fake.account_sid,
            "TWILIO_AUTH_TOKEN": fake.auth_token,
            "TWILIO_API_BASE": fake.url,
            "TWILIO_WHATSAPP_NUMBER": "+14155238886",
            "TWILIO_SMS_NUMBER": "+15005550006",
            **overrides,
        }
    )


def send_all(settings, messaging, *messages, senders: int = 1, **kwargs):
    """Send each message through its own sender (a process of its own), all at once."""

    async def scenario():
        built = [
            MessageSender(settings, messaging, transport_for(settings), clock=CLOCK) for _ in range(senders)
        ]
        try:
            return await asyncio.gather(
                *(built[i % senders].send(message, **kwargs) for i, message in enumerate(messages))
            )
        finally:
            for sender in built:
                await sender.transport.close()

    return asyncio.run(scenario())


def stored_contents(messaging_store: MessagingStore) -> list:
    with messaging_store._store.connect() as conn:
        return conn.execute(sa.select(whatsapp_contents)).all()


def test_up_to_three_options_go_as_a_quick_reply_with_the_text_as_its_variable(fake, messaging):
    [result] = send_all(
        settings_for(fake), messaging, OutboundMessage(MARIANA, Channel.WHATSAPP, QUESTION, options=YES_NO)
    )
    [sent] = fake.received
    assert result.status == "queued" and sent.content_sid in fake.contents
    assert json.loads(sent.content_variables) == {"1": QUESTION}
    assert fake.options_of(sent) == (
        "twilio/quick-reply",
        [("Sí, confirmar", button_id("/affirm")), ("No, otro horario", button_id("/deny"))],
    )
    # Where buttons cannot be shown, the text is today's numbered one.
    assert sent.body == f"{QUESTION}\n\n1. Sí, confirmar\n2. No, otro horario"
    [record] = messaging.outbound(MARIANA)
    assert (record.content_sid, record.body) == (sent.content_sid, sent.body)  # as Twilio lists it


def test_four_to_ten_options_go_as_a_list(fake, messaging):
    send_all(
        settings_for(fake),
        messaging,
        OutboundMessage(MARIANA, Channel.WHATSAPP, "¿Qué necesitas?", options=MENU),
    )
    [sent] = fake.received
    kind, shown = fake.options_of(sent)
    assert kind == "twilio/list-picker" and [title for title, _ in shown] == [o.title for o in MENU]
    assert fake.content_of(sent)["types"]["twilio/list-picker"]["button"] == "Ver opciones"


def test_sms_options_stay_numbered_text(fake, messaging):
    send_all(settings_for(fake), messaging, OutboundMessage(MARIANA, Channel.SMS, QUESTION, options=YES_NO))
    [sent] = fake.received
    assert sent.content_sid is None and fake.contents == {}
    assert sent.body == f"{QUESTION}\n\n1. Sí, confirmar\n2. No, otro horario"


def test_a_content_is_created_once_for_every_customer_and_after_a_restart(fake, messaging):
    settings = settings_for(fake)
    send_all(settings, messaging, OutboundMessage(MARIANA, Channel.WHATSAPP, QUESTION, options=YES_NO))
    other_question = "¿Lo dejo para el lunes 30 de noviembre?"
    send_all(settings, messaging, OutboundMessage(JULIAN, Channel.WHATSAPP, other_question, options=YES_NO))
    first, second = fake.received
    assert fake.content_creations == 1 and first.content_sid == second.content_sid
    assert json.loads(second.content_variables) == {"1": other_question}
    [row] = stored_contents(messaging)
    assert (row.content_sid, row.kind) == (first.content_sid, "twilio/quick-reply")
    # Other options are another content.
    send_all(settings, messaging, OutboundMessage(JULIAN, Channel.WHATSAPP, "¿Qué necesitas?", options=MENU))
    assert fake.content_creations == 2 and len(stored_contents(messaging)) == 2


def test_a_content_deleted_at_twilio_is_made_again_on_the_next_start(fake, messaging):
    settings = settings_for(fake)
    send_all(settings, messaging, OutboundMessage(MARIANA, Channel.WHATSAPP, QUESTION, options=YES_NO))
    gone = fake.received[0].content_sid
    fake.contents.clear()  # someone deleted it in Twilio's console
    [result] = send_all(
        settings, messaging, OutboundMessage(JULIAN, Channel.WHATSAPP, QUESTION, options=YES_NO)
    )
    again = fake.received[-1].content_sid
    assert result.status == "queued" and again != gone and again in fake.contents
    [row] = stored_contents(messaging)
    assert row.content_sid == again


def test_two_processes_making_the_same_content_at_once_end_up_with_one(fake, messaging):
    messages = [
        OutboundMessage(phone, Channel.WHATSAPP, QUESTION, options=YES_NO) for phone in (MARIANA, JULIAN)
    ]
    results = send_all(settings_for(fake), messaging, *messages, senders=2)
    assert all(result.status == "queued" for result in results)
    assert len({message.content_sid for message in fake.received}) == 1
    [row] = stored_contents(messaging)
    # Whatever was created twice was deleted again: Twilio keeps one content for these options.
    assert list(fake.contents) == [row.content_sid] and fake.content_creations in (1, 2)


def test_when_the_content_api_cannot_be_reached_the_options_go_numbered(fake, messaging):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    settings = settings_for(fake, TWILIO_CONTENT_API_BASE=closed)
    [result] = send_all(
        settings, messaging, OutboundMessage(MARIANA, Channel.WHATSAPP, QUESTION, options=YES_NO)
    )
    [sent] = fake.received
    assert result.status == "queued" and sent.content_sid is None
    assert sent.body == f"{QUESTION}\n\n1. Sí, confirmar\n2. No, otro horario"
    assert stored_contents(messaging) == []


def test_buttons_are_free_form_text_for_the_24_hour_window(fake, messaging):
    stranger = "+525599998888"  # never wrote on WhatsApp
    [result] = send_all(
        settings_for(fake),
        messaging,
        OutboundMessage(stranger, Channel.WHATSAPP, QUESTION, options=YES_NO),
    )
    # Held with its options, to be shown when they write (no buttons made for it meanwhile).
    assert result.status == "held" and fake.contents == {}
    assert fake.received == []  # the fake knows none of the shipped templates' SIDs
    [held] = messaging.held(stranger)
    assert held.options == [
        {"title": "Sí, confirmar", "payload": "/affirm"},
        {"title": "No, otro horario", "payload": "/deny"},
    ]


def test_a_reply_with_buttons_is_sent_once_under_its_key(fake, messaging):
    settings = settings_for(fake)
    message = OutboundMessage(MARIANA, Channel.WHATSAPP, QUESTION, options=YES_NO)
    [first] = send_all(settings, messaging, message, key="SMinbound:0")
    [again] = send_all(settings, messaging, message, key="SMinbound:0")  # a replay
    assert (first.status, again.status) == ("queued", "duplicate") and len(fake.received) == 1


def test_without_a_twilio_account_the_outbox_shows_numbered_text(messaging, capsys):
    settings = Settings.from_env({})
    send_all(settings, messaging, OutboundMessage(MARIANA, Channel.WHATSAPP, QUESTION, options=YES_NO))
    assert "1. Sí, confirmar\n2. No, otro horario" in capsys.readouterr().out
