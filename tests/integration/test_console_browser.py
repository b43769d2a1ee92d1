"""The agent console in headless Chromium (Debian's package, driven by Playwright; no download).

An agent logs in, sees the queue, opens a handoff whose customer sent HTML with a <script> and a
photo, sees the packet at a glance and the script shown as text (never run), replies, searches
the knowledge base beside the reply box, inserts an article into a draft and sends it, attaches a
PDF that reaches the fake Twilio as media at a signed, expiring URL the stack serves, and hands
back; and works a case the bot opened, from the Cases view to the customer's 1-5 rating.
Screenshots of the queue, the conversation, the knowledge base search, the attachment sent and
the cases go to results/console/; with UPDATE_SCREENSHOTS=1 they replace the README's in
docs/img/ (so a test run leaves the tree clean).

The KPI dashboard over the demo generator's four weeks (scripts/kpi_demo.py, a fixed seed and
clock): an agent has no link to it and is refused (403); a supervisor opens it from the header,
sees every section filled (summary, the three charts, alerts, intents, "¿Te sirvió?" per flow,
the A/B variants with their p-values, misunderstood messages), and the period, intent and channel
filters change the figures (screenshot console-kpis.png, narrowed to SMS). It needs no trained
model: a console served in the test process.
"""

from __future__ import annotations

import os
import re
import time
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from playwright.sync_api import sync_playwright

from bot.analytics.alert_book import AlertBook
from bot.analytics.alerts import AlertRule, check_alerts
from bot.analytics.store import AnalyticsStore
from bot.clock import FixedClock
from bot.handoff.agents import create_agent
from bot.media_links import MEDIA_PATH, UPLOAD, ExpiredMediaLink, MediaLinkSigner
from bot.settings import Settings
from tests.analytics_helpers import NOW, ZONE, _load
from tests.conftest import JULIAN_AR, MARIANA_MX, PUBLIC_URL, STACK_MEDIA_LINK_SECRET
from tests.conftest import NOW as STACK_NOW
from tests.console_helpers import RunningConsole, console_graph
from tests.handoff_helpers import AGENT, PASSWORD, ensure_agent, release, wait_for_handoff, wait_for_messages
from tests.harness import is_response
from tests.stack_helpers import write

pytestmark = pytest.mark.integration

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = (
    ROOT / "docs" / "img" if os.environ.get("UPDATE_SCREENSHOTS") == "1" else ROOT / "results" / "console"
)
# A small valid PDF: the console accepts an upload by its bytes (bot/messaging/attachments.py).
LABEL_PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
INJECTED = '<script>window.injected = true; alert("xss")</script><b>hola?</b>'


@pytest.fixture
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make browser` installs Debian's chromium package")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield chromium
        chromium.close()


def test_an_agent_logs_in_sees_the_context_replies_and_hands_back(stack, fake_twilio, browser):
    fake_twilio.reset()
    phone = JULIAN_AR
    try:
        write(stack, fake_twilio, phone, "y mis compras cuando llegan?")
        write(stack, fake_twilio, phone, "me llego roto el pedido, pasame con una persona")
        fake_twilio.wait_for(phone, 2, timeout_s=60)
        handoff = wait_for_handoff(stack, phone)
        photo = {
            "NumMedia": "1",
            "MediaUrl0": "https://api.twilio.com/media/ME42",
            "MediaContentType0": "image/jpeg",
        }
        write(stack, fake_twilio, phone, INJECTED, **photo)
        wait_for_messages(stack, handoff.id, 1)
        ensure_agent(stack)

        page = browser.new_page(viewport={"width": 1200, "height": 900})
        dialogs: list[str] = []
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        page.goto(f"{stack.console}/")
        assert page.url.endswith("/login")
        page.fill("input[name=name]", AGENT)
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")

        row = page.locator(f"tr[data-id='{handoff.id}']")
        row.wait_for()
        assert "Julián Pereyra" in row.inner_text() and "VIP" in row.inner_text()
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "console-queue.png"), full_page=True)

        row.get_by_role("link", name="Abrir").click()
        page.locator("#packet").wait_for()
        packet = page.locator("#packet").inner_text()
        assert "Julián Pereyra" in packet and "+5491123456789" in packet and "Lo pidió el cliente" in packet
        assert "Consultó el estado del pedido" in page.content()  # what the bot already did, in Spanish
        assert "PED-" in page.locator("#customer-orders").inner_text()  # the customer's orders
        assert (
            page.locator("#attachments a").first.get_attribute("href") == "https://api.twilio.com/media/ME42"
        )
        transcript = page.locator("#transcript").inner_text()
        assert INJECTED in transcript  # shown as text...
        assert page.evaluate("window.injected === undefined") and dialogs == []  # ...never run
        assert page.locator("#transcript b").count() == 0

        # A canned reply is pasted with the customer's and the agent's names (by the script,
        # without reloading), then edited before sending.
        page.click("#canned summary")
        page.get_by_role("link", name="Saludo al tomar la conversación").click()
        assert page.input_value("#reply").startswith(f"Hola Julián, soy {AGENT}.")
        page.fill("textarea[name=text]", "Hola Julián, soy Ana. Vi la foto: te cambiamos el producto.")
        page.click("form[action$='/reply'] button")
        page.get_by_text("Respuesta enviada.").wait_for()
        replies = fake_twilio.wait_for(phone, 3, timeout_s=30)
        assert replies[-1].body == "Hola Julián, soy Ana. Vi la foto: te cambiamos el producto."
        page.get_by_text("Hola Julián, soy Ana").first.wait_for()
        page.screenshot(path=str(SCREENSHOTS / "console-conversation.png"), full_page=True)

        # The knowledge base beside the reply box: the agent searches, adds the article to a
        # draft (Julián writes from Argentina on WhatsApp: the Argentine variant, with its steps),
        # and sends it.
        page.fill("#reply", "Julián, te paso cómo pagar:")
        page.fill("#kb-q", "con qué puedo pagar")
        page.click("#kb-form button")
        hit = page.locator("#kb-hits .kb-hit[data-id='medios-de-pago']")
        hit.wait_for(timeout=90_000)  # a cold console loads the KB and its sentence model first
        hit.get_by_role("link", name="Insertar en la respuesta").click()
        draft = page.input_value("#reply")
        assert draft.startswith("Julián, te paso cómo pagar:\n\nEn Argentina podés pagar")
        assert "\n1. " in draft and draft.endswith("https://ayuda.tienda.example/medios-de-pago")
        page.screenshot(path=str(SCREENSHOTS / "console-kb.png"), full_page=True)
        page.click("form[action$='/reply'] button")
        replies = fake_twilio.wait_for(phone, 4, timeout_s=30)
        assert replies[-1].body == draft

        # A file: the agent attaches the shipping label's PDF to a reply. On WhatsApp the text
        # goes, then the file as media at a signed, expiring URL under PUBLIC_URL that the
        # assistant's Twilio channel serves (Twilio fetches it there; here the test does).
        page.fill("#reply", "Julián, te mando la etiqueta para el cambio.")
        page.set_input_files(
            "#reply-file",
            files=[{"name": "etiqueta cambio.pdf", "mimeType": "application/pdf", "buffer": LABEL_PDF}],
        )
        page.click("form[action$='/reply'] button")
        page.get_by_text("Respuesta enviada.").wait_for()
        sent = fake_twilio.wait_for(phone, 6, timeout_s=30)
        assert (sent[4].body, sent[4].media_urls) == ("Julián, te mando la etiqueta para el cambio.", [])
        [url] = sent[5].media_urls
        media = f"{PUBLIC_URL}{MEDIA_PATH}/"
        assert url.startswith(media) and url.endswith("/etiqueta_cambio.pdf"), url
        served = requests.get(stack.base + url[len(PUBLIC_URL) :], timeout=10)
        assert served.status_code == 200 and served.content == LABEL_PDF
        assert served.headers["Content-Type"] == "application/pdf"
        token = url[len(media) :].split("/")[0]
        # One character of the signed payload changed (the signature's last character may carry
        # only padding bits, so changing it can leave the same bytes: not a forgery).
        altered = ("f" if token[0] != "f" else "e") + token[1:]
        refused = requests.get(f"{stack.base}{MEDIA_PATH}/{altered}/etiqueta_cambio.pdf", timeout=10)
        assert refused.status_code == 403
        # It names this file for this number, and expires MEDIA_LINK_TTL (60 min) after sending
        # (the stack's clock starts at STACK_NOW): within a day, unlike a link that never expires.
        signer = MediaLinkSigner(STACK_MEDIA_LINK_SECRET, PUBLIC_URL, timedelta(minutes=60))
        grant = signer.verify(token, STACK_NOW)
        assert (grant.kind, grant.owner) == (UPLOAD, phone)
        assert STACK_NOW + timedelta(minutes=60) <= grant.expires_at < STACK_NOW + timedelta(days=1)
        with pytest.raises(ExpiredMediaLink):
            signer.verify(token, grant.expires_at + timedelta(seconds=1))
        shown = page.locator("#transcript a", has_text="[etiqueta_cambio.pdf, application/pdf]")
        assert shown.count() == 1 and shown.get_attribute("href") == url
        assert page.locator("#attachments a").last.inner_text() == "etiqueta_cambio.pdf · application/pdf"
        page.screenshot(path=str(SCREENSHOTS / "console-attachment.png"), full_page=True)

        page.fill("#handback-note", "cambio coordinado")
        page.click("#handback")
        page.get_by_text("Conversación devuelta al bot.").wait_for()
        back = fake_twilio.wait_for(phone, 8, timeout_s=60)
        assert is_response(back[6].body, "utter_bot_back")
        assert is_response(back[7].body.split("\n")[0], "utter_ask_satisfaction")
        assert dialogs == []
    finally:
        release(stack, phone)


# Rules for the demo's figures (the shipped ones, tuned for real volumes, stay quiet on them).
DEMO_RULES = [
    AlertRule("csat-minimo", "csat_below", 4.2, 10),
    AlertRule("fallback-maximo", "fallback_above", 10, 100),
]


def charts_drawn(page) -> list[tuple[int, float]]:
    """Per chart on the page: its bars with a height, and its drawn width in pixels."""
    return page.evaluate(
        """() => Array.from(document.querySelectorAll('svg.chart')).map(svg => [
            Array.from(svg.querySelectorAll('rect')).filter(r => r.getBBox().height > 0).length,
            svg.getBoundingClientRect().width])"""
    )


def kpi(page, name: str) -> str:
    return page.locator(f"[data-kpi={name}]").inner_text()


def table_rows(page, table: str) -> list[list[str]]:
    """The cells of each row of the table `#<table>` below its header."""
    return page.evaluate(
        """(id) => Array.from(document.querySelectorAll('#' + id + ' tr')).slice(1).map(
            tr => Array.from(tr.querySelectorAll('td')).map(td => td.innerText.trim()))""",
        table,
    )


def sessions_of(rows: list[list[str]]) -> dict[str, int]:
    """The "Por intención" table: sessions per intent label."""
    return {cells[0]: int(cells[1]) for cells in rows}


def test_a_supervisor_opens_the_dashboard_filters_it_and_sees_the_charts(sql_store, browser):
    settings = Settings.from_env(
        {"BOT_ENV": "development", "BOT_TIMEZONE": ZONE, "DATABASE_URL": str(sql_store.engine.url)}
    )
    _load("kpi_demo").generate(settings, NOW, conversations=1500, seed=19)
    fired = check_alerts(
        AnalyticsStore(sql_store), AlertBook(sql_store), DEMO_RULES, NOW, ZONE, deliver=False
    )
    assert {alert.rule for alert in fired} == {"csat-minimo", "fallback-maximo"}
    graph = console_graph(settings, sql_store, FixedClock(NOW))
    create_agent(graph.handoff.store, "sofia", PASSWORD, role="supervisor")
    create_agent(graph.handoff.store, "beto", PASSWORD)
    console = RunningConsole(graph)
    try:
        # An agent without the supervisor role: no link in the header, and the address refused.
        agent = browser.new_context(viewport={"width": 1200, "height": 900}).new_page()
        agent.goto(f"{console.url}/login")
        agent.fill("input[name=name]", "beto")
        agent.fill("input[name=password]", PASSWORD)
        agent.click("button[type=submit]")
        agent.wait_for_url(f"{console.url}/")
        assert agent.get_by_role("link", name="Indicadores").count() == 0
        refused = agent.goto(f"{console.url}/kpis?channel=sms")
        assert refused is not None and refused.status == 403
        assert agent.get_by_text("Esta página es solo para supervisores").is_visible()
        assert agent.locator("svg.chart").count() == 0 and agent.locator("[data-kpi]").count() == 0

        page = browser.new_context(viewport={"width": 1200, "height": 900}).new_page()
        page.goto(f"{console.url}/login")
        page.fill("input[name=name]", "sofia")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.get_by_role("link", name="Indicadores").click()
        page.locator("svg.chart").first.wait_for()
        assert page.input_value("input[name=from]") == "2026-11-04"  # four weeks before the clock's day
        assert page.input_value("input[name=to]") == "2026-12-02"
        everyone = int(kpi(page, "sessions"))
        drawn = charts_drawn(page)
        assert len(drawn) == 4 and all(bars > 0 and width > 300 for bars, width in drawn), drawn
        assert drawn[0][0] == 28  # a bar per day of the four weeks: every day had sessions

        # Every section, with the demo's figures in it.
        alerts = page.locator("#kpi-alerts")
        assert alerts.is_visible() and "el CSAT del total fue 4.0" in alerts.inner_text()
        assert {a.get_attribute("data-alert") for a in alerts.locator("li").all()} == {
            "csat_below",
            "fallback_above",
        }
        by_intent = sessions_of(table_rows(page, "kpi-intents"))
        assert by_intent["Estado de pedido"] > 0 and sum(by_intent.values()) <= everyone
        # "¿Te sirvió?" per flow, in Spanish; its answers add up to the summary's.
        feedback = table_rows(page, "kpi-feedback")
        assert len(feedback) >= 3 and all(re.fullmatch(r"\d+\.\d%", cells[2]) for cells in feedback)
        assert "Estado de pedido" in [cells[0] for cells in feedback]
        answers = sum(int(cells[1]) for cells in feedback)
        assert answers == int(kpi(page, "feedback_answers")) > 0
        assert re.fullmatch(r"\d+\.\d%", kpi(page, "feedback_yes_rate"))
        # The A/B test of the question's wording: both variants, the second with its p-values
        # against the first, and every answer counted under the variant the customer saw.
        variants = table_rows(page, "kpi-experiments")
        assert [cells[:2] for cells in variants] == [
            ["pregunta_feedback", "resolvimos"],
            ["pregunta_feedback", "te_sirvio"],
        ]
        assert variants[0][4] == "—" and variants[0][7] == "—"
        assert all(0 <= float(variants[1][column]) <= 1 for column in (4, 7)), variants
        assert sum(int(cells[5]) for cells in variants) == answers
        assert page.locator("#kpi-misunderstood li").count() > 3
        # The notifications: the total first, then by kind and channel; some sent, some of their
        # deep links opened (the demo's notifications, docs/kpis.md "Notifications").
        notifications = table_rows(page, "kpi-notifications")
        assert notifications[0][0] == "Total" and len(notifications) > 4
        total_sent = int(notifications[0][3])
        assert 0 < total_sent == sum(int(cells[3]) for cells in notifications[1:])
        assert re.fullmatch(r"[1-9]\d*/\d+ \(\d+\.\d%\)", notifications[0][11]), notifications[0]
        # Each alert has its "Vista" button (acknowledging is tests/integration/test_console_kpis.py's).
        assert alerts.locator("button[data-ack]").count() == 2

        # The period: one week has fewer sessions than four, a bar per day of it, and the week's
        # chart one bar.
        page.fill("input[name=from]", "2026-11-25")
        page.fill("input[name=to]", "2026-12-02")
        page.click("#kpi-filters button[type=submit]")
        page.wait_for_url("**from=2026-11-25**")
        week = int(kpi(page, "sessions"))
        assert 0 < week < everyone
        assert [bars for bars, _ in charts_drawn(page)][0] == 7

        # The intent: the figures become the intent's row of the whole period's table.
        page.goto(f"{console.url}/kpis")
        page.select_option("select[name=intent]", "order_status")
        page.click("#kpi-filters button[type=submit]")
        page.wait_for_url("**intent=order_status**")
        page.locator("#kpi-filtered").wait_for()
        assert int(kpi(page, "sessions")) == by_intent["Estado de pedido"]
        assert list(sessions_of(table_rows(page, "kpi-intents"))) == ["Estado de pedido"]

        # The channel: SMS alone, kept in the form, with its charts (the README's screenshot).
        page.click("#kpi-filtered a")  # "Quitar filtros"
        page.wait_for_url(re.compile(r".*/kpis\?from=[^&]*&to=[^&]*$"))
        assert int(kpi(page, "sessions")) == everyone
        page.select_option("select[name=channel]", "sms")
        page.click("#kpi-filters button[type=submit]")
        page.wait_for_url("**channel=sms**")
        page.locator("#kpi-filtered").wait_for()
        sms = int(kpi(page, "sessions"))
        assert 0 < sms < everyone
        assert page.locator("select[name=channel]").input_value() == "sms"
        assert sum(sessions_of(table_rows(page, "kpi-intents")).values()) <= sms
        drawn = charts_drawn(page)
        assert len(drawn) == 4 and all(bars > 0 and width > 300 for bars, width in drawn), drawn
        assert table_rows(page, "kpi-experiments") and table_rows(page, "kpi-feedback")
        sms_notifications = table_rows(page, "kpi-notifications")
        assert len(sms_notifications) > 1 and {cells[1] for cells in sms_notifications[1:]} == {"SMS"}
        assert int(sms_notifications[0][3]) < total_sent
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "console-kpis.png"), full_page=True)
    finally:
        console.stop()


CASE_ID = re.compile(r"GES-[2-9A-HJKMNP-Z]{8}")


def test_an_agent_works_a_case_the_bot_opened_from_start_to_the_customers_rating(stack, fake_twilio, browser):
    """The customer asks on WhatsApp to return a product and answers the guided return (the
    order, the reason, a refund, "si"); the bot opens a case; the agent finds it in the Cases
    view, takes it, notes, writes to the customer and closes it; the customer rates 1-5. (A
    cancellation is self-service now when the order has not left: no case to work.)"""
    fake_twilio.reset()
    phone = MARIANA_MX
    try:
        # Her delivered order first among the options, then "ya no lo quiero", a refund, yes.
        for text in ("quiero devolver un producto que compre <b>ya</b>", "1", "3", "1"):
            before = len(fake_twilio.messages_to(phone))
            write(stack, fake_twilio, phone, text)
            fake_twilio.wait_for(phone, before + 1, timeout_s=60)
        write(stack, fake_twilio, phone, "si")
        deadline = time.monotonic() + 60
        while not (found := CASE_ID.search("\n".join(m.body or "" for m in fake_twilio.messages_to(phone)))):
            assert time.monotonic() < deadline, [m.body for m in fake_twilio.messages_to(phone)]
            time.sleep(0.3)
        case_id = found.group()
        sent = len(fake_twilio.messages_to(phone))
        ensure_agent(stack)

        page = browser.new_page(viewport={"width": 1200, "height": 900})
        dialogs: list[str] = []
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        page.goto(f"{stack.console}/cases")
        assert page.url.endswith("/login")
        page.fill("input[name=name]", AGENT)
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.get_by_role("link", name="Casos").click()
        page.select_option("select[name=type]", "return")
        page.click("#case-filters button")
        row = page.locator(f"tr[data-id='{case_id}']")
        row.wait_for()
        assert "Devolución" in row.inner_text() and "Abierto" in row.inner_text()
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "console-cases.png"), full_page=True)

        row.get_by_role("link", name="Abrir").click()
        page.locator("#case-summary").wait_for()
        assert (
            "quiero devolver un producto que compre <b>ya</b>" in page.locator("#case-details").inner_text()
        )
        assert page.locator("#case-details b").count() == 0  # the customer's markup is text

        page.click("form[action$='/assign'] button")
        page.get_by_text("Caso asignado.").wait_for()
        assert page.locator("#case-assignee").inner_text() == AGENT
        page.select_option("#new-status", "in_progress")
        page.click("form[action$='/status'] button")
        page.get_by_text("Estado actualizado; se le avisó al cliente.").wait_for()
        update = fake_twilio.wait_for(phone, sent + 1, timeout_s=30)[-1]  # the catalogue's words
        assert update.body.startswith(f"Ya estamos trabajando en tu gestión {case_id} (Devolución).")
        page.fill("#note-text", "El almacén espera el producto.")
        page.click("form[action$='/note'] button")
        page.get_by_text("Nota interna guardada.").wait_for()
        page.fill("#message-text", "Hola Mariana, pasamos a retirar el producto el lunes.")
        page.click("form[action$='/message'] button")
        page.get_by_text("Mensaje enviado al cliente.").wait_for()
        messages = fake_twilio.wait_for(phone, sent + 2, timeout_s=30)
        assert messages[-1].body == "Hola Mariana, pasamos a retirar el producto el lunes."
        assert all("El almacén" not in (m.body or "") for m in fake_twilio.messages_to(phone))

        page.select_option("#new-status", "closed")
        page.click("form[action$='/status'] button")
        page.get_by_text("Caso cerrado; se pidió al cliente").wait_for()
        question = fake_twilio.wait_for(phone, sent + 3, timeout_s=30)[-1]
        assert is_response(question.body.split("\n")[0], "utter_ask_satisfaction")
        history = page.locator("#case-history").inner_text()
        for line in (
            "Asignado",
            "Cambio de estado",
            "Nota interna",
            "Mensaje al cliente",
            "Se pidió calificación",
        ):
            assert line in history
        page.screenshot(path=str(SCREENSHOTS / "console-case.png"), full_page=True)

        # The customer taps "🙂 Bien" in the list: the bot thanks and the case keeps the 4.
        options = fake_twilio.options_of(question)
        payload = dict(options[1])["🙂 Bien"] if options else '/rate_handoff{"satisfaction_score":"4"}'
        write(stack, fake_twilio, phone, "🙂 Bien", ListId=payload, ListTitle="🙂 Bien")
        thanks = fake_twilio.wait_for(phone, sent + 4, timeout_s=60)[-1]
        assert is_response(thanks.body, "utter_satisfaction_thanks")
        page.reload()
        assert "4/5" in page.locator("#case-history").inner_text()
        assert dialogs == []
    finally:
        release(stack, phone)
