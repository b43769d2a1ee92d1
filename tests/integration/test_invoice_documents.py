"""Invoices as PDF documents (issue 18): "mandame la factura de noviembre" after the code.

The real action (ActionCompleteFlow) runs over the demo fixture on SQLite and PostgreSQL; its
messages go through the Twilio channel's output (TwilioOutput, as the Rasa server hands them
over) and the one MessageSender to the fake Twilio's Messages API; the media route the Twilio
channel serves (connectors/media.py) runs for real on a loopback port, and the test fetches the
MediaUrl from it as Twilio would. The REST ERP gets the same PDF from the reference server.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from datetime import timedelta

import pytest
import requests
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.payments import ActionCompleteFlow
from bot.adapters.rest.errors import BackendProtocolError
from bot.adapters.sql import SqlCaseBook, SqlCrm, SqlErp
from bot.backends import Backends
from bot.clock import local_day
from bot.demo import load_demo
from bot.media_links import INVOICE, MediaLinkSigner
from bot.messaging.attachments import AttachmentStore
from bot.messaging.inbound import Channel
from bot.messaging.memory import memory_for
from bot.messaging.sender import MessageSender, TwilioTransport
from bot.messaging.store import MessagingStore
from bot.settings import DEFAULT_DEMO_DATA, Settings
from connectors.twilio_channel import TwilioOutput
from tests.action_helpers import DOMAIN, verified_identity
from tests.conftest import CLOCK, JULIAN_AR, MARIANA_MX, TEST_IDENTITY_SECRET
from tests.rest_fixtures import client_for, start_server
from tests.served_app import ServedApp, served_media_route

pytestmark = pytest.mark.integration

MEDIA_SECRET = "invoice-media-secret"


@pytest.fixture
def media_app() -> Iterator[ServedApp]:
    served = served_media_route(CLOCK)
    yield served
    served.stop()


@pytest.fixture
def world(wire, store, fake_twilio, media_app):
    fake_twilio.reset()
    settings = Settings.from_env(
        {
            "BOT_ENV": "development",
            "IDENTITY_SECRET": TEST_IDENTITY_SECRET,
            "TWILIO_ACCOUNT_SID": fake_twilio.account_sid,
            "TWILIO_AUTH_TOKEN": fake_twilio.auth_token,
            "TWILIO_API_BASE": fake_twilio.url,
            "TWILIO_WHATSAPP_NUMBER": "+14155238886",
            "TWILIO_SMS_NUMBER": "+15005550006",
        }
    )
    load_demo(
        store, DEFAULT_DEMO_DATA, settings, today=local_day(CLOCK.now(), settings.bot_timezone), force=True
    )
    messages = MessagingStore(store, CLOCK)
    messages.record_inbound(MARIANA_MX, Channel.WHATSAPP, at=CLOCK.now())  # inside the window
    transport = TwilioTransport(fake_twilio.account_sid, fake_twilio.auth_token, fake_twilio.url)
    sender = MessageSender(settings, messages, transport, clock=CLOCK)
    signer = MediaLinkSigner(MEDIA_SECRET, f"http://127.0.0.1:{media_app.port}", timedelta(minutes=60))
    wire(
        backends=Backends(crm=SqlCrm(store), erp=SqlErp(store), cases=SqlCaseBook(store)),
        messaging=messages,
        message_sender=sender,
        media_signer=signer,
        attachments=AttachmentStore(store, CLOCK, 5 * 1024 * 1024),
    )
    return messages, sender, fake_twilio


def asked(phone: str, customer_id: str, request: str, channel: str) -> Tracker:
    """The tracker right after the one-time code, for a request_invoice flow."""
    slots = {
        "pending_flow": "invoice",
        "payment_request": request,
        "verification_status": "ok",
        "verified_identity": verified_identity(phone, customer_id),
    }
    return Tracker(
        sender_id=phone,
        slots=slots,
        latest_message={"text": "123456", "intent": {"name": "inform"}, "metadata": {"channel": channel}},
        events=[],
        paused=False,
        followup_action=None,
        active_loop={},
        latest_action_name="action_listen",
    )


def answer(phone: str, customer_id: str, request: str, channel: str) -> list[dict]:
    dispatcher = CollectingDispatcher()
    asyncio.run(ActionCompleteFlow().run(dispatcher, asked(phone, customer_id, request, channel), DOMAIN))
    return dispatcher.messages


def answer_then_feedback(phone: str, customer_id: str, request: str, channel: str) -> list[dict]:
    """The invoice messages, checked to be followed by "¿Te sirvió?" (issue 19), which is left out."""
    *said, question = answer(phone, customer_id, request, channel)
    assert question.get("response") == "utter_ask_feedback"
    return said


def deliver(messages: MessagingStore, sender: MessageSender, phone: str, said: list[dict], channel: Channel):
    """What the Rasa server does with the action's messages on the Twilio channel."""

    async def send_all() -> None:
        output = TwilioOutput(sender, messages, channel, memory_for(None))
        for message in said:
            await output.send_response(phone, dict(message))
        await sender.transport.close()

    asyncio.run(send_all())


def test_whatsapp_gets_the_invoice_as_a_pdf_document_that_twilio_can_download(world):
    messages, sender, twilio = world
    said = answer_then_feedback(MARIANA_MX, "C-001", "mandame la factura de noviembre", "whatsapp")
    # Mariana's two November invoices, newest first, each with its document.
    assert [re.search(r"F-\d+", m["text"]).group(0) for m in said] == ["F-2001", "F-2002"]
    assert [m["attachment"].rsplit("/", 1)[1] for m in said] == ["factura-F-2001.pdf", "factura-F-2002.pdf"]
    deliver(messages, sender, MARIANA_MX, said, Channel.WHATSAPP)

    sent = twilio.wait_for(MARIANA_MX, 4)
    texts, documents = [m for m in sent if m.body], [m for m in sent if m.media_urls]
    assert "F-2001" in texts[0].body and "$1,234.50" in texts[0].body
    assert [m.to for m in documents] == ["whatsapp:+525512345678"] * 2
    assert [m.media_urls for m in documents] == [[said[0]["attachment"]], [said[1]["attachment"]]]
    # Twilio fetches the MediaUrl: a PDF of that invoice.
    fetched = requests.get(documents[0].media_urls[0], timeout=10)
    assert fetched.status_code == 200 and fetched.headers["Content-Type"] == "application/pdf"
    assert fetched.headers["Content-Disposition"] == 'inline; filename="factura-F-2001.pdf"'
    assert "no-store" in fetched.headers["Cache-Control"]
    assert fetched.content.startswith(b"%PDF-") and fetched.content.rstrip().endswith(b"%%EOF")
    assert b"/Title (Factura F-2001)" in fetched.content
    # The one sender recorded the document like any message.
    assert [record.media_urls for record in messages.outbound(MARIANA_MX) if record.media_urls] == [
        [said[0]["attachment"]],
        [said[1]["attachment"]],
    ]


def test_sms_gets_the_expiring_link_in_the_text_and_no_media(world):
    messages, sender, twilio = world
    said = answer_then_feedback(JULIAN_AR, "C-002", "me pasas la factura F-2004?", "sms")
    assert len(said) == 1 and said[0].get("attachment") is None
    deliver(messages, sender, JULIAN_AR, said, Channel.SMS)
    [sms] = twilio.wait_for(JULIAN_AR)
    assert sms.to == JULIAN_AR and sms.media_urls == []
    link = next(word for word in sms.body.split() if word.startswith("http://"))
    assert "F-2004" in sms.body and "vence" in sms.body
    fetched = requests.get(link, timeout=10)
    assert fetched.status_code == 200 and b"/Title (Factura F-2004)" in fetched.content
    # After the link's hour, on the project's clock, it is gone.
    signer = MediaLinkSigner(MEDIA_SECRET, "http://x", timedelta(minutes=60))
    grant = signer.verify(link.split("/media/")[1].split("/")[0], CLOCK.now())
    assert (grant.kind, grant.ref, grant.owner) == (INVOICE, "F-2004", "C-002")
    assert grant.expires_at - CLOCK.now() <= timedelta(minutes=60)


def test_a_month_without_an_invoice_says_so_and_lists_the_ones_there_are(world):
    said = answer(MARIANA_MX, "C-001", "mandame la factura de marzo", "whatsapp")
    [message] = said  # not found: no "¿Te sirvió?" either
    assert message.get("attachment") is None
    assert "No encuentro una factura de marzo" in message["text"]
    assert (
        "• F-2001: noviembre de 2026" in message["text"] and "• F-2002: noviembre de 2026" in message["text"]
    )
    assert "«la factura de noviembre»" in message["text"]


def test_someone_elses_invoice_number_is_answered_like_one_that_does_not_exist(world):
    # F-2004 is Julián's: Mariana asking for it gets her own list, no link.
    [message] = answer(MARIANA_MX, "C-001", "mandame la factura F-2004", "whatsapp")
    assert message["text"].startswith("No encuentro la factura F-2004 a tu nombre")
    assert "F-2004" not in message["text"].split("\n", 1)[1] and "http" not in message["text"]
    assert message.get("attachment") is None


def test_a_request_naming_no_month_lists_the_invoices_as_before(world):
    said = answer(MARIANA_MX, "C-001", "me mandas mis facturas?", "whatsapp")
    assert [m["response"] for m in said] == ["utter_invoice_list", "utter_ask_feedback"]


def test_the_rest_erp_gets_the_pdf_from_the_reference_server(crm_store):
    from bot.adapters.rest import RestErp

    server = start_server(crm_store)
    try:
        erp = RestErp(client_for(server.url))
        document = erp.invoice_pdf("F-2003")
        assert document.startswith(b"%PDF-") and b"/Title (Factura F-2003)" in document
        assert erp.invoice_pdf("F-0000") is None
        answered = requests.get(
            f"{server.url}/invoices/F-2003/pdf",
            headers={"Authorization": "Bearer crm-test-token"},
            timeout=10,
        )
        assert answered.headers["Content-Type"] == "application/pdf"
        assert requests.get(f"{server.url}/invoices/F-2003/pdf", timeout=10).status_code == 401
    finally:
        server.stop()


def test_an_erp_answering_something_else_than_a_pdf_is_a_protocol_error(crm_store, monkeypatch):
    from bot.adapters.rest import RestErp
    from reference import operations

    server = start_server(crm_store)
    monkeypatch.setattr(operations, "invoice_pdf_in", lambda conn, invoice_id: b"<html>not a pdf</html>")
    try:
        with pytest.raises(BackendProtocolError):
            RestErp(client_for(server.url)).invoice_pdf("F-2003")
    finally:
        server.stop()
