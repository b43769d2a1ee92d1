"""The knowledge base in the agent console: its page and the search beside a conversation's reply.

The console runs for real on a loopback port over a SQLite store, on a FixedClock, and is driven
with a real HTTP client; the knowledge base is the real engine (bot/kb) over articles this test
writes, one of them with HTML in its title, one past its review date at NOW, one with a variant
for Argentina, one for WhatsApp only.
"""

from __future__ import annotations

import html
import re
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
import requests

from bot.clock import FixedClock
from bot.handoff.agents import create_agent
from bot.kb import KnowledgeBase
from bot.settings import Settings
from tests.conftest import NOW
from tests.console_helpers import RunningConsole, console_graph

pytestmark = pytest.mark.integration

AGENT, PASSWORD = "ana", "contraseña-larga-1"
SCRIPT_TITLE = '<script>alert("kb")</script> La garantía cubre el cargador'

ARTICLES = {
    "pagos/medios-de-pago.md": """---
id: medios-de-pago
title: Pagar con tarjeta, transferencia o efectivo
short: >-
  Aceptamos tarjeta de crédito y débito, transferencia y efectivo en puntos de pago.
countries: [all]
channels: [all]
tags: [pagos]
synonyms: [formas de pago, como pago, con que puedo pagar]
owner: Equipo de Pagos
last_reviewed: 2026-11-15
review_days: 90
link: https://ayuda.tienda.example/medios-de-pago
---
## Pasos
1. Agrega tus productos al carrito y ve a «Pagar».
2. Elige tarjeta, transferencia o efectivo.
""",
    "pagos/medios-de-pago.ar.md": """---
id: medios-de-pago
title: Pagar con tarjeta, Mercado Pago o Rapipago
short: >-
  En Argentina podés pagar con tarjeta, con Mercado Pago o en efectivo en Rapipago.
countries: [AR]
channels: [all]
owner: Equipo de Pagos
last_reviewed: 2026-11-15
review_days: 90
link: https://ayuda.tienda.example/medios-de-pago
---
## Pasos
1. En «Pagar», elegí tarjeta, Mercado Pago o efectivo.
2. Con efectivo te damos un cupón para Rapipago.
""",
    "garantia/garantia-cargador.md": f"""---
id: garantia-cargador
title: '{SCRIPT_TITLE}'
short: >-
  Sí, la garantía cubre el cargador original por 12 meses desde la entrega.
countries: [all]
channels: [all]
tags: [garantia]
synonyms: [garantia del cargador, cargador roto, cargador no funciona]
owner: Equipo de Posventa
last_reviewed: 2026-08-01
review_days: 60
link: https://ayuda.tienda.example/garantia
---
## Pasos
1. Escribe «garantía» y manda una foto del cargador.
""",
    "envios/seguimiento-whatsapp.md": """---
id: seguimiento-whatsapp
title: Seguir tu envío en el mapa de WhatsApp
short: >-
  Toca «Ver mapa» en el mensaje de envío y ves dónde va tu paquete.
countries: [all]
channels: [whatsapp]
tags: [envios]
synonyms: [donde esta mi paquete en el mapa, mapa del envio]
owner: Equipo de Logística
last_reviewed: 2026-11-01
review_days: 90
link: https://ayuda.tienda.example/mapa
---
## Pasos
1. Abre el mensaje «Tu pedido va en camino».
2. Toca «Ver mapa».
""",
}


@pytest.fixture
def kb_dir(tmp_path) -> Path:
    root = tmp_path / "kb"
    for name, text in ARTICLES.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
def console(sql_store, kb_dir, clock) -> Iterator[RunningConsole]:
    settings = Settings.from_env({"BOT_ENV": "development"})
    graph = console_graph(settings, sql_store, clock)
    create_agent(graph.handoff.store, AGENT, PASSWORD)
    knowledge = KnowledgeBase.load(kb_dir)
    running = RunningConsole(graph, kb=lambda: knowledge)
    yield running
    running.stop()


@pytest.fixture
def agent(console):
    return console.session(AGENT, PASSWORD)


def handoff(console: RunningConsole, channel: str, country: str | None) -> str:
    handoff_id = f"HO-{channel}-{country or 'xx'}"
    phone = "+5491123456789"
    console.graph.handoff.store.create(
        handoff_id=handoff_id,
        conversation_id=phone,
        phone=phone,
        channel=channel,
        reason="customer_request",
        customer_name="Julián Pereyra",
        packet={"channel": channel, "customer": {"name": "Julián Pereyra", "country": country}},
        resume_form=None,
    )
    return handoff_id


def textarea(page: str) -> str:
    return html.unescape(re.search(r'<textarea id="reply"[^>]*>(.*?)</textarea>', page, re.S).group(1))


def titles(page: str) -> list[str]:
    return [html.unescape(t) for t in re.findall(r'<h3 class="kb-title">(.*?)</h3>', page, re.S)]


def test_the_knowledge_base_needs_a_login(console):
    page = requests.get(f"{console.url}/kb?q=pago", allow_redirects=False, timeout=10)
    assert page.status_code == 302 and page.headers["Location"] == "/login"
    answer = requests.get(f"{console.url}/api/handoffs/HO-x/kb?q=pago", timeout=10)
    assert answer.status_code == 401


def test_the_navigation_links_the_knowledge_base(agent, console):
    queue = agent.get(f"{console.url}/", timeout=10).text
    assert '<a href="/kb">Base de conocimiento</a>' in queue


def test_a_search_shows_title_short_answer_steps_owner_review_date_link_and_tags(agent, console):
    page = agent.get(f"{console.url}/kb", params={"q": "con que puedo pagar"}, timeout=10)
    assert page.status_code == 200
    assert titles(page.text)[0] == "Pagar con tarjeta, transferencia o efectivo"
    first = page.text.split('<article class="card kb-article"')[1]
    assert "Aceptamos tarjeta de crédito y débito" in first
    assert "<li>Elige tarjeta, transferencia o efectivo.</li>" in first
    assert "Equipo de Pagos · revisado el 2026-11-15" in first and "próxima revisión 2027-02-13" in first
    assert 'href="https://ayuda.tienda.example/medios-de-pago"' in first
    assert 'href="/kb#tag-pagos">pagos</a>' in first
    assert "kb-due" not in first
    assert 'value="con que puedo pagar"' in page.text  # the query stays in the box (GET, in the URL)


def test_an_article_with_html_in_its_title_is_shown_as_text(agent, console):
    page = agent.get(f"{console.url}/kb", params={"q": "cargador roto"}, timeout=10).text
    assert SCRIPT_TITLE in titles(page)
    assert "&lt;script&gt;alert(&#34;kb&#34;)&lt;/script&gt;" in page
    assert '<script>alert("kb")' not in page
    # and a query with HTML comes back as text too
    echoed = agent.get(f"{console.url}/kb", params={"q": "<img src=x onerror=alert(1)>"}, timeout=10).text
    assert "<img src=x" not in echoed and "&lt;img src=x onerror=alert(1)&gt;" in echoed


def test_an_empty_query_lists_every_article_by_tag_with_counts(agent, console):
    page = agent.get(f"{console.url}/kb", timeout=10).text
    tags = re.findall(
        r'<section id="tag-([^"]+)" class="kb-group">\s*<h2[^>]*>\S+ <span class="badge">(\d+)</span>', page
    )
    assert tags == [("envios", "1"), ("garantia", "1"), ("pagos", "1")]
    assert 'href="#tag-pagos">pagos (1)</a>' in page


def test_the_country_filter_shows_that_countrys_variant(agent, console):
    argentina = agent.get(f"{console.url}/kb", params={"q": "como pago", "country": "AR"}, timeout=10).text
    assert titles(argentina)[0] == "Pagar con tarjeta, Mercado Pago o Rapipago"
    assert "Pagar con tarjeta, transferencia o efectivo" not in titles(argentina)
    assert '<option value="AR" selected>AR</option>' in argentina
    anywhere = agent.get(f"{console.url}/kb", params={"q": "como pago"}, timeout=10).text
    assert titles(anywhere)[0] == "Pagar con tarjeta, transferencia o efectivo"
    listed = agent.get(f"{console.url}/kb", params={"country": "AR"}, timeout=10).text
    assert "Pagar con tarjeta, Mercado Pago o Rapipago" in titles(listed)


def test_the_channel_filter_leaves_out_articles_for_the_other_channel(agent, console):
    whatsapp = agent.get(f"{console.url}/kb", params={"channel": "whatsapp"}, timeout=10).text
    assert "Seguir tu envío en el mapa de WhatsApp" in titles(whatsapp)
    sms = agent.get(f"{console.url}/kb", params={"channel": "sms"}, timeout=10).text
    assert "Seguir tu envío en el mapa de WhatsApp" not in titles(sms)
    assert "Pagar con tarjeta, transferencia o efectivo" in titles(sms)
    searched = agent.get(
        f"{console.url}/kb", params={"q": "mapa del envio", "channel": "sms"}, timeout=10
    ).text
    assert "Seguir tu envío en el mapa de WhatsApp" not in titles(searched)


def test_articles_past_their_review_date_are_listed_and_marked_by_the_consoles_clock(agent, console, clock):
    due = agent.get(f"{console.url}/kb", params={"review": "1"}, timeout=10).text
    assert titles(due) == [SCRIPT_TITLE]  # reviewed 2026-08-01, 60 days: due since 2026-09-30
    assert "Por revisar desde el 2026-09-30" in due and "Por revisar (1)" in due
    searched = agent.get(f"{console.url}/kb", params={"q": "cargador roto"}, timeout=10).text
    assert "kb-due" in searched
    # The day is the console's clock's, not the machine's: 90 days after 2026-11-15 the payment
    # articles (base and Argentine variant) are due too.
    clock.set(datetime.fromisoformat("2027-02-14T12:00:00-06:00"))
    later = agent.get(f"{console.url}/kb", params={"review": "1"}, timeout=10).text
    assert "Pagar con tarjeta, transferencia o efectivo" in titles(later)
    assert "Pagar con tarjeta, Mercado Pago o Rapipago" in titles(later)


def test_the_reply_box_searches_and_insert_prefills_the_text_for_the_customers_channel_and_country(
    agent, console
):
    whatsapp_ar = handoff(console, "whatsapp", "AR")
    page = agent.get(f"{console.url}/handoffs/{whatsapp_ar}", params={"kb": "como pago"}, timeout=10).text
    assert textarea(page) == ""
    hits = re.findall(r'<div class="kb-hit" data-id="([^"]+)">', page)
    assert hits[0] == "medios-de-pago" and len(hits) <= 3
    insert = re.search(r'<a class="kb-insert" href="([^"]+)"', page).group(1)
    inserted = agent.get(f"{console.url}{html.unescape(insert)}", timeout=10).text
    text = textarea(inserted)
    assert text.startswith("En Argentina podés pagar con tarjeta")  # the country's variant
    assert "elegí tarjeta, Mercado Pago o efectivo" in text  # WhatsApp gets the steps
    assert "https://ayuda.tienda.example/medios-de-pago" in text
    assert "revísalo y edítalo antes de enviar" in inserted

    sms_mx = handoff(console, "sms", "MX")
    short = textarea(
        agent.get(f"{console.url}/handoffs/{sms_mx}", params={"insert": "medios-de-pago"}, timeout=10).text
    )
    assert short == (
        "Aceptamos tarjeta de crédito y débito, transferencia y efectivo en puntos de pago.\n"
        "https://ayuda.tienda.example/medios-de-pago"
    )  # SMS: the short answer and the link only


def test_an_inserted_article_with_html_stays_text_in_the_reply_box(agent, console):
    whatsapp = handoff(console, "whatsapp", None)
    page = agent.get(
        f"{console.url}/handoffs/{whatsapp}",
        params={"kb": "cargador roto", "insert": "garantia-cargador"},
        timeout=10,
    ).text
    assert "&lt;script&gt;" in page and '<script>alert("kb")' not in page
    assert textarea(page).startswith("Sí, la garantía cubre el cargador")
    unknown = agent.get(f"{console.url}/handoffs/{whatsapp}", params={"insert": "no-existe"}, timeout=10)
    assert unknown.status_code == 200 and textarea(unknown.text) == ""


def test_the_reply_box_search_answers_json_with_the_text_for_the_conversation(agent, console):
    sms_ar = handoff(console, "sms", "AR")
    answer = agent.get(f"{console.url}/api/handoffs/{sms_ar}/kb", params={"q": "como pago"}, timeout=10)
    assert answer.status_code == 200
    first = answer.json()["hits"][0]
    assert first["id"] == "medios-de-pago" and first["title"] == "Pagar con tarjeta, Mercado Pago o Rapipago"
    assert first["text"].startswith("En Argentina") and first["text"].endswith("/medios-de-pago")
    assert "\n1." not in first["text"]  # SMS: no steps
    missing = agent.get(f"{console.url}/api/handoffs/HO-none/kb", params={"q": "pago"}, timeout=10)
    assert missing.status_code == 404


def test_the_console_reads_kb_dir_and_shows_an_edit_without_a_restart(sql_store, kb_dir, clock):
    settings = Settings.from_env({"BOT_ENV": "development", "KB_DIR": str(kb_dir)})
    graph = console_graph(settings, sql_store, clock)
    create_agent(graph.handoff.store, AGENT, PASSWORD)
    running = RunningConsole(graph)  # no kb given: the process-wide one of settings.kb_dir
    try:
        agent = running.session(AGENT, PASSWORD)
        assert "Pagar con tarjeta, transferencia o efectivo" in titles(
            agent.get(f"{running.url}/kb", timeout=10).text
        )
        path = kb_dir / "pagos" / "medios-de-pago.md"
        path.write_text(
            path.read_text(encoding="utf-8").replace(
                "title: Pagar con tarjeta, transferencia o efectivo", "title: Pagar con tarjeta o efectivo"
            ),
            encoding="utf-8",
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if "Pagar con tarjeta o efectivo" in titles(agent.get(f"{running.url}/kb", timeout=10).text):
                break
            time.sleep(0.3)
        else:
            raise AssertionError("the edited title never showed")
    finally:
        running.stop()


def test_a_knowledge_base_that_does_not_load_says_so_instead_of_failing(sql_store, tmp_path, clock):
    broken = tmp_path / "broken-kb"
    broken.mkdir()
    (broken / "sin-titulo.md").write_text("---\nid: sin-titulo\n---\n## Pasos\n1. Nada.\n", encoding="utf-8")
    settings = Settings.from_env({"BOT_ENV": "development", "KB_DIR": str(broken)})
    graph = console_graph(settings, sql_store, clock)
    create_agent(graph.handoff.store, AGENT, PASSWORD)
    running = RunningConsole(graph)
    try:
        agent = running.session(AGENT, PASSWORD)
        page = agent.get(f"{running.url}/kb", params={"q": "pago"}, timeout=10)
        assert page.status_code == 200 and "La base de conocimiento no se pudo cargar" in page.text
        handoff_id = handoff(running, "whatsapp", "MX")
        beside = agent.get(f"{running.url}/handoffs/{handoff_id}", params={"kb": "pago"}, timeout=10)
        assert beside.status_code == 200 and "La base de conocimiento no se pudo cargar" in beside.text
        assert "Responder al cliente" in beside.text  # the reply box still works
        api = agent.get(f"{running.url}/api/handoffs/{handoff_id}/kb", params={"q": "pago"}, timeout=10)
        assert api.status_code == 503
    finally:
        running.stop()
