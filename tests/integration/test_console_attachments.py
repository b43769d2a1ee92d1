"""An agent's attachment (issue 18): a PDF, PNG or JPEG uploaded with a handoff reply or a case
message reaches the customer through the one MessageSender as media at a signed, expiring URL
the Twilio channel serves; the file is kept in `media_files` for that number only.

The console runs for real on a loopback port over SQLite and PostgreSQL holding the demo fixture,
on a FixedClock, driven with a real HTTP client (multipart forms, as a browser sends them); the
media route runs beside it as the Rasa server mounts it; messages leave through the local outbox
transport, which records them.
"""

from __future__ import annotations

import dataclasses
import html
import re
from collections.abc import Iterator
from datetime import timedelta

import pytest
import requests

from bot.cases import request_case
from bot.clock import FixedClock
from bot.demo import load_demo
from bot.handoff.agents import create_agent
from bot.media_links import MediaLinkSigner
from bot.messaging.attachments import AttachmentStore
from bot.messaging.inbound import Channel
from bot.messaging.memory import memory_for
from bot.messaging.store import MessagingStore, media_files
from bot.records import CaseKind
from bot.settings import DEFAULT_DEMO_DATA
from bot.wiring import Wiring
from connectors.console.rasa_api import RasaApi
from tests.conftest import JULIAN_AR, MARIANA_MX, NOW, TODAY
from tests.console_helpers import RunningConsole, console_graph
from tests.served_app import ServedApp, served_media_route

pytestmark = pytest.mark.integration

AGENT, PASSWORD = "ana", "contraseña-larga-1"
LIMIT = 64 * 1024
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
def media_route(clock) -> Iterator[ServedApp]:
    served = served_media_route(clock)
    yield served
    served.stop()


@pytest.fixture
def graph(store, settings, clock, media_route, monkeypatch) -> Wiring:
    load_demo(store, DEFAULT_DEMO_DATA, settings, today=TODAY, force=True)
    messaging = MessagingStore(store, clock)
    messaging.record_inbound(MARIANA_MX, Channel.WHATSAPP, at=NOW - timedelta(hours=1))
    messaging.record_inbound(JULIAN_AR, Channel.SMS, at=NOW - timedelta(hours=1))
    graph = console_graph(
        dataclasses.replace(settings, media_max_bytes=LIMIT),
        store,
        clock,
        messaging=messaging,
        memory=memory_for(None),
        attachments=AttachmentStore(store, clock, LIMIT),
        media_signer=MediaLinkSigner(
            "console-media-secret", f"http://127.0.0.1:{media_route.port}", timedelta(hours=1)
        ),
    )
    # The media route (the Rasa server's) reads the process's graph: the same one.
    from bot import wiring as wiring_module

    monkeypatch.setattr(wiring_module, "_process", graph)
    return graph


@pytest.fixture
def console(graph, bridge) -> Iterator[RunningConsole]:
    create_agent(graph.handoff.store, AGENT, PASSWORD)
    running = RunningConsole(graph, rasa=RasaApi(bridge.url, "bridge-token"))
    yield running
    running.stop()


def open_handoff(graph, clock, phone: str = MARIANA_MX, channel: str = "whatsapp") -> str:
    graph.handoff.store.create(
        handoff_id="HO-FILE0001",
        conversation_id=phone,
        phone=phone,
        channel=channel,
        reason="customer_request",
        customer_name="Mariana López",
        packet={"channel": channel, "messages": []},
        resume_form=None,
        now=clock.now(),
    )
    return "HO-FILE0001"


def csrf_of(page: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', page).group(1)


def notice(answer: requests.Response) -> str:
    found = re.search(r'<p class="notice" role="status">(.*?)</p>', answer.text, re.S)
    return html.unescape(found.group(1)) if found else ""


def reply(session, console, handoff_id: str, text: str, file: tuple | None, csrf: str | None = None):
    page = session.get(f"{console.url}/handoffs/{handoff_id}", timeout=10).text
    files = {"file": file} if file else {"file": ("", b"", "application/octet-stream")}
    return session.post(
        f"{console.url}/handoffs/{handoff_id}/reply",
        data={"csrf": csrf if csrf is not None else csrf_of(page), "text": text},
        files=files,
        timeout=10,
    )


def stored_files(graph) -> int:
    with graph.attachments._store.connect() as conn:
        return len(conn.execute(media_files.select()).all())


def test_a_pdf_in_a_handoff_reply_reaches_the_customer_as_media_they_can_download(
    graph, console, clock, bridge
):
    handoff_id = open_handoff(graph, clock)
    session = console.session(AGENT, PASSWORD)
    page = session.get(f"{console.url}/handoffs/{handoff_id}", timeout=10).text
    assert 'enctype="multipart/form-data"' in page and 'name="file"' in page
    answer = reply(
        session,
        console,
        handoff_id,
        "Te mando la guía de devolución",
        ("guia devolucion.pdf", PDF, "application/pdf"),
    )
    assert answer.status_code == 200 and notice(answer) == "Respuesta enviada."
    sent = graph.messaging.outbound(MARIANA_MX)
    assert [record.body for record in sent] == ["Te mando la guía de devolución", ""]
    [url] = sent[1].media_urls
    assert url.endswith("/guia_devolucion.pdf") and "/webhooks/twilio/media/" in url
    fetched = requests.get(url, timeout=10)
    assert fetched.status_code == 200 and fetched.content == PDF
    assert fetched.headers["Content-Type"] == "application/pdf"
    # In the console's history with its type; it expires with the link.
    [message] = graph.handoff.store.messages(handoff_id)
    assert message.attachments == [
        {"url": url, "content_type": "application/pdf", "filename": "guia_devolucion.pdf"}
    ]
    # In the conversation's tracker too, as the bot's message with its attachment.
    [written] = bridge.events[-1]["events"]
    assert (written["text"], written["data"]["attachment"]) == ("Te mando la guía de devolución", url)
    clock.advance(timedelta(hours=1))
    assert requests.get(url, timeout=10).status_code == 410


def test_outside_the_whatsapp_window_no_file_is_sent_or_held(graph, console, clock):
    handoff_id = open_handoff(graph, clock)
    clock.advance(timedelta(hours=25))  # Mariana wrote 26 hours ago
    session = console.session(AGENT, PASSWORD)
    answer = reply(session, console, handoff_id, "la guía", ("guia.pdf", PDF, "application/pdf"))
    assert "solo se le puede enviar texto" in notice(answer)
    assert graph.messaging.outbound(MARIANA_MX) == [] and stored_files(graph) == 0


def test_a_file_alone_is_a_reply_too(graph, console, clock):
    handoff_id = open_handoff(graph, clock)
    session = console.session(AGENT, PASSWORD)
    answer = reply(session, console, handoff_id, "", ("foto.png", PNG, "image/png"))
    assert notice(answer) == "Respuesta enviada."
    [record] = graph.messaging.outbound(MARIANA_MX)
    assert record.body == "" and record.media_urls[0].endswith("/foto.png")
    # Neither text nor file: nothing is sent.
    assert notice(reply(session, console, handoff_id, "", None)) == "Escribe un mensaje."
    assert len(graph.messaging.outbound(MARIANA_MX)) == 1


@pytest.mark.parametrize(
    ("file", "said"),
    [
        (
            ("factura.pdf", b"MZ\x90\x00 this is a program", "application/pdf"),
            "Solo se pueden enviar PDF, PNG o JPEG",
        ),
        (
            ("pagina.png", b"<html><script>alert(1)</script></html>", "image/png"),
            "Solo se pueden enviar PDF, PNG o JPEG",
        ),
        (("grande.pdf", b"%PDF-1.4\n" + b"0" * LIMIT, "application/pdf"), "supera el límite de 0,0625 MB"),
    ],
)
def test_a_file_that_is_not_what_it_claims_or_too_large_is_refused_and_nothing_is_sent(
    graph, console, clock, file, said
):
    handoff_id = open_handoff(graph, clock)
    session = console.session(AGENT, PASSWORD)
    answer = reply(session, console, handoff_id, "mira esto", file)
    assert said in notice(answer)
    assert graph.messaging.outbound(MARIANA_MX) == [] and stored_files(graph) == 0
    assert graph.handoff.store.messages(handoff_id) == []


def test_a_body_over_the_limit_is_refused_before_it_is_read(graph, console, clock):
    handoff_id = open_handoff(graph, clock)
    session = console.session(AGENT, PASSWORD)
    answer = reply(
        session,
        console,
        handoff_id,
        "",
        ("enorme.pdf", b"%PDF-" + b"0" * (LIMIT + 128 * 1024), "application/pdf"),
    )
    assert answer.status_code == 413
    assert stored_files(graph) == 0


def test_only_a_logged_in_agent_with_the_pages_csrf_token_uploads(graph, console, clock):
    handoff_id = open_handoff(graph, clock)
    anonymous = requests.Session()
    answer = anonymous.post(
        f"{console.url}/handoffs/{handoff_id}/reply",
        data={"csrf": "x", "text": "hola"},
        files={"file": ("a.pdf", PDF, "application/pdf")},
        timeout=10,
    )
    assert answer.status_code == 403
    session = console.session(AGENT, PASSWORD)
    assert (
        reply(
            session, console, handoff_id, "hola", ("a.pdf", PDF, "application/pdf"), csrf="forged"
        ).status_code
        == 403
    )
    assert stored_files(graph) == 0 and graph.messaging.outbound(MARIANA_MX) == []


def test_the_file_name_is_escaped_in_the_console_and_cleaned_in_the_url(graph, console, clock):
    handoff_id = open_handoff(graph, clock)
    session = console.session(AGENT, PASSWORD)
    hostile = '<img src=x onerror="alert(1)">.pdf'
    answer = reply(session, console, handoff_id, "", (hostile, PDF, "application/pdf"))
    assert "<img src=x" not in answer.text and 'onerror="alert' not in answer.text
    [record] = graph.messaging.outbound(MARIANA_MX)
    assert re.search(r"/[A-Za-z0-9._-]+\.pdf$", record.media_urls[0])


def test_an_image_in_a_case_message_on_sms_goes_as_its_link_in_the_text(graph, console, clock):
    details = {"text": "devolver", "order_id": "PED-1004"}
    outcome = request_case(
        graph.cases, graph.outbox, JULIAN_AR, CaseKind.RETURN_REQUEST, details, JULIAN_AR, clock.now()
    )
    case_id = outcome.management_id
    session = console.session(AGENT, PASSWORD)
    page = session.get(f"{console.url}/cases/{case_id}", timeout=10).text
    assert 'name="file"' in page
    answer = session.post(
        f"{console.url}/cases/{case_id}/message",
        data={"csrf": csrf_of(page), "text": "La etiqueta de envío"},
        files={"file": ("etiqueta.png", PNG, "image/png")},
        timeout=10,
    )
    assert "Mensaje enviado" in notice(answer)
    [sms] = graph.messaging.outbound(JULIAN_AR)
    assert sms.channel == "sms" and sms.media_urls == []
    body, link = sms.body.split("\n")
    assert body == "La etiqueta de envío" and link.endswith("/etiqueta.png")
    fetched = requests.get(link, timeout=10)
    assert (
        fetched.status_code == 200
        and fetched.content == PNG
        and fetched.headers["Content-Type"] == "image/png"
    )
    # The case's history keeps what the customer got, link included.
    [event] = [e for e in graph.cases.history(case_id) if e.action == "message"]
    assert event.detail == sms.body and event.customer_visible
    # A file for Julián does not open as Mariana's.
    token = link.split("/media/")[1].split("/")[0]
    grant = graph.media_links().verify(token, clock.now())
    assert grant.owner == JULIAN_AR
    other = graph.media_links().sign(grant.kind, grant.ref, MARIANA_MX, clock.now()).url
    assert requests.get(other, timeout=10).status_code == 404
