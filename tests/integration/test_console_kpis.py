"""The console's KPI page: the hand-computed week of tests/analytics_helpers.py, charts drawn on
the server as SVG (no script), texts escaped, and only for a logged-in supervisor: an agent
without the role gets a 403 in Spanish and no link to it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta

import pytest
import requests
import sqlalchemy as sa

from bot.adapters.sql import from_db_time
from bot.analytics.alert_book import AlertBook, Firing
from bot.analytics.alerts import last_complete_week
from bot.analytics.schema import kpi_alerts
from bot.analytics.store import AnalyticsStore
from bot.clock import FixedClock
from bot.handoff.agents import AgentError, create_agent
from bot.handoff.service import build_services
from bot.settings import Settings
from bot.wiring import Wiring
from connectors.console.__main__ import main as console_cli
from tests.analytics_helpers import (
    NOW,
    Conversation,
    at,
    delivered_events,
    notification_taps,
    write_handoffs_and_cases,
    write_notifications,
)
from tests.console_helpers import RunningConsole

pytestmark = pytest.mark.integration
AGENT, PASSWORD = "sofia", "contraseña-larga-2"  # a supervisor
PLAIN = "beto"  # an agent: the queue, not the KPIs


@pytest.fixture
def console(sql_store) -> Iterator[RunningConsole]:
    write_handoffs_and_cases(sql_store)
    odd = Conversation("+525544444444")
    odd.session(at(28, 12)).says("<script>alert(1)</script>", "nlu_fallback", 0.1)
    odd.answers("action_default_fallback", "utter_default")
    AnalyticsStore(sql_store).record(delivered_events() + odd.delivered(), NOW)
    AnalyticsStore(sql_store).sync_handoffs_and_cases(at(20, 0), NOW)
    settings = Settings.from_env({"BOT_ENV": "development", "BOT_TIMEZONE": "America/Mexico_City"})
    clock = FixedClock(NOW)
    graph = Wiring.of(settings, clock, handoff=build_services(settings, sql_store, clock))
    create_agent(graph.handoff.store, AGENT, PASSWORD, role="supervisor")
    create_agent(graph.handoff.store, PLAIN, PASSWORD)
    running = RunningConsole(graph)
    yield running
    running.stop()


def kpi(page: str, name: str) -> str:
    return re.search(rf'data-kpi="{name}">([^<]*)<', page).group(1)


def test_the_kpi_page_needs_a_login(console):
    page = requests.get(f"{console.url}/kpis", allow_redirects=False, timeout=10)
    assert page.status_code == 302 and page.headers["Location"] == "/login"


def test_the_kpi_page_shows_the_weeks_figures_and_server_drawn_charts(console):
    agent = console.session(AGENT, PASSWORD)
    page = agent.get(f"{console.url}/kpis?from=2026-11-23&to=2026-11-30", timeout=10)
    assert page.status_code == 200
    text = page.text
    # The hand-computed week plus one more session that fell back: 6 sessions, 1 contained.
    assert kpi(text, "sessions") == "6"
    assert kpi(text, "containment") == "16.7%"
    assert kpi(text, "csat_mean") == "3.5"
    # "¿Te sirvió?": S1 and S4 said Sí, S3 No; the variants as in tests/integration/test_kpis.py.
    assert kpi(text, "feedback_yes_rate") == "66.7%"
    assert kpi(text, "csat_share") == "60.0%"
    assert '<tr data-variant="pregunta_feedback/te_sirvio">' in text and "0.505" in text
    assert text.count("<svg") == 4 and "<rect" in text
    # CSAT per week: the week's one bar, its mean of the 1-5 answers (5 and 2) on a scale to 5.
    csat = text[text.index('aria-label="CSAT (1–5) por semana"') :]
    csat = csat[: csat.index("</svg>")]
    assert re.findall(r"<title>([^<]*)</title></rect>", csat) == ["2026-W48: 3.5"]
    assert "<script>alert(1)</script>" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "script-src 'nonce-" in page.headers["Content-Security-Policy"]
    assert '<a href="/kpis">Indicadores</a>' in text


def test_a_date_that_is_no_date_is_said_plainly(console):
    agent = console.session(AGENT, PASSWORD)
    page = agent.get(f"{console.url}/kpis?from=ayer", timeout=10)
    assert page.status_code == 200 and "Fechas no válidas" in page.text


def test_an_agent_without_the_supervisor_role_gets_a_spanish_403_and_no_link(console):
    agent = console.session(PLAIN, PASSWORD)
    page = agent.get(f"{console.url}/kpis?from=2026-11-23&to=2026-11-30", timeout=10)
    assert page.status_code == 403
    assert "Esta página es solo para supervisores" in page.text
    assert 'data-kpi="' not in page.text and "<svg" not in page.text
    queue = agent.get(f"{console.url}/", timeout=10)
    assert queue.status_code == 200 and 'href="/kpis"' not in queue.text
    supervisor = console.session(AGENT, PASSWORD)
    assert '<a href="/kpis">Indicadores</a>' in supervisor.get(f"{console.url}/", timeout=10).text


def test_a_role_change_counts_on_the_next_request(console):
    store = console.graph.handoff.store
    beto = console.session(PLAIN, PASSWORD)
    assert beto.get(f"{console.url}/kpis", timeout=10).status_code == 403
    create_agent(store, PLAIN, None, role="supervisor")  # the role alone: the password stays
    assert beto.get(f"{console.url}/kpis", timeout=10).status_code == 200
    create_agent(store, PLAIN, None, role="agent")
    assert beto.get(f"{console.url}/kpis", timeout=10).status_code == 403
    assert console.login(PLAIN, PASSWORD).status_code == 302


def test_a_new_agent_needs_a_password_and_a_known_role(console):
    store = console.graph.handoff.store
    with pytest.raises(AgentError, match="needs a password"):
        create_agent(store, "nadia", None, role="supervisor")
    with pytest.raises(AgentError, match="role"):
        create_agent(store, "nadia", PASSWORD, role="admin")
    assert not store.agent_exists("nadia")


def test_make_agent_with_role_supervisor_opens_the_dashboard(console, sql_store, monkeypatch, capsys):
    monkeypatch.setenv("BOT_ENV", "development")
    monkeypatch.setenv("DATABASE_URL", str(sql_store.engine.url))
    monkeypatch.setenv("AGENT_PASSWORD", "otra-clave-muy-larga")
    assert console_cli(["agent", "Rosa", "--role", "supervisor"]) == 0
    assert "rosa can log in to the console as supervisor" in capsys.readouterr().out
    rosa = console.session("rosa", "otra-clave-muy-larga")
    assert rosa.get(f"{console.url}/kpis", timeout=10).status_code == 200
    monkeypatch.delenv("AGENT_PASSWORD")
    monkeypatch.setattr("getpass.getpass", lambda prompt: "")  # Enter: keep the password
    assert console_cli(["agent", "rosa", "--role", "agent"]) == 0
    assert rosa.get(f"{console.url}/kpis", timeout=10).status_code == 403
    assert console.login("rosa", "otra-clave-muy-larga").status_code == 302


def test_the_default_period_is_the_four_weeks_before_the_clocks_day(console):
    page = console.session(AGENT, PASSWORD).get(f"{console.url}/kpis", timeout=10).text
    # NOW is 2 Dec: 4 Nov to 2 Dec holds S0–S6 and the odd one (D never wrote).
    assert 'name="from" value="2026-11-04"' in page and 'name="to" value="2026-12-02"' in page
    assert kpi(page, "sessions") == "8"


def test_the_filters_pick_the_sessions_and_stay_chosen(console):
    agent = console.session(AGENT, PASSWORD)
    week = f"{console.url}/kpis?from=2026-11-23&to=2026-11-30"
    page = agent.get(f"{week}&channel=sms", timeout=10).text
    # The hand-computed week's SMS sessions: S3 unresolved, S5 handed over (CSAT 2, 10 min).
    assert (kpi(page, "sessions"), kpi(page, "containment"), kpi(page, "handoff_rate")) == (
        "2",
        "0.0%",
        "50.0%",
    )
    assert (kpi(page, "csat_mean"), kpi(page, "aht_minutes")) == ("2.0", "10.0")
    assert '<option value="sms" selected>SMS</option>' in page and 'id="kpi-filtered"' in page
    assert re.search(r'<tr data-intent="check_balance">', page) and 'data-intent="order_status"' not in page
    page = agent.get(f"{week}&intent=order_status&customer=returning", timeout=10).text
    assert (kpi(page, "sessions"), kpi(page, "containment"), kpi(page, "csat_mean")) == ("2", "50.0%", "5.0")
    assert '<option value="returning" selected>' in page
    assert '<option value="order_status" selected>' in page
    page = agent.get(f"{week}&country=pe", timeout=10).text
    assert kpi(page, "sessions") == "2" and '<option value="PE" selected>PE</option>' in page


def test_a_hand_written_filter_is_refused_and_never_echoed_raw(console):
    agent = console.session(AGENT, PASSWORD)
    for query in (
        "intent=%3Cscript%3Ealert(1)%3C/script%3E",
        "channel=telegram",
        "country=%22%3E%3Cb%3E",
        "customer=vip",
    ):
        page = agent.get(f"{console.url}/kpis?{query}", timeout=10)
        assert page.status_code == 200 and "Filtro no válido" in page.text, query
        assert "<script>alert(1)" not in page.text and '"><b>' not in page.text
        assert 'data-kpi="' not in page.text


def test_a_fired_alert_shows_on_the_dashboard_in_spanish(console):
    week, _, name = last_complete_week(NOW, "America/Mexico_City")
    AlertBook(console.graph.handoff.store.sql).record(
        [
            Firing("contencion", "containment_drop", "order_status", name, week, 0.4, 1.0, 10, 5),
            Firing("csat", "csat_below", "", name, week, 3.5, None, 4, 2),
        ],
        NOW,
        deliver=False,
    )
    page = console.session(AGENT, PASSWORD).get(f"{console.url}/kpis", timeout=10).text
    banner = page[page.index('id="kpi-alerts"') : page.index("</section>", page.index('id="kpi-alerts"'))]
    assert "Semana 2026-W48" in banner
    assert "bajó de 100.0% a 40.0% (más de 10 puntos; 5 sesiones o más por semana)" in banner
    assert "el CSAT del total fue 3.5, bajo el mínimo de 4 (2 respuestas)" in banner
    assert 'data-alert="containment_drop" data-intent="order_status"' in banner


def test_the_notifications_of_the_week_show_by_kind_and_channel(console, sql_store):
    ids = write_notifications(sql_store)
    AnalyticsStore(sql_store).record(notification_taps(ids), NOW)
    AnalyticsStore(sql_store).sync_handoffs_and_cases(at(20, 0), NOW)
    agent = console.session(AGENT, PASSWORD)
    page = agent.get(f"{console.url}/kpis?from=2026-11-23&to=2026-11-30", timeout=10).text

    def row(key: str) -> list[str]:
        found = re.search(rf'<tr data-notification="{re.escape(key)}">(.*?)</tr>', page, re.S).group(1)
        return [re.sub(r"<[^>]+>", "", cell) for cell in re.findall(r"<td>(.*?)</td>", found, re.S)]

    # The hand-computed figures of tests/integration/test_kpi_notifications.py.
    assert row("total/") == [
        "Total",
        "",
        "9",
        "4",
        "1",
        "1",
        "1",
        "1",
        "1",
        "1",
        "1",
        "1/4 (25.0%)",
        "1/4 (25.0%)",
    ]
    assert row("delivery_tomorrow/WhatsApp")[:4] == ["Entrega mañana", "WhatsApp", "4", "3"]
    assert row("delivery_tomorrow/WhatsApp")[-2:] == ["1/3 (33.3%)", "0/3 (0.0%)"]
    assert row("invoice_due_soon/SMS")[-2:] == ["0/1 (0.0%)", "1/1 (100.0%)"]

    sms = agent.get(f"{console.url}/kpis?from=2026-11-23&to=2026-11-30&channel=sms", timeout=10).text
    assert 'data-notification="delivery_tomorrow/WhatsApp"' not in sms
    assert 'data-notification="order_shipped/SMS"' in sms


def test_a_supervisor_acknowledges_an_alert_it_leaves_the_list_and_its_webhook_is_not_sent(console):
    week, _, name = last_complete_week(NOW, "America/Mexico_City")
    book = AlertBook(console.graph.handoff.store.sql)
    seen, other = book.record(
        [
            Firing("contencion", "containment_drop", "order_status", name, week, 0.4, 1.0, 10, 5),
            Firing("csat", "csat_below", "", name, week, 3.5, None, 4, 2),
        ],
        NOW,
        deliver=True,  # both wait for the webhook
    )
    supervisor = console.session(AGENT, PASSWORD)
    page = supervisor.get(f"{console.url}/kpis", timeout=10).text
    assert f'data-ack="{seen.id}"' in page and f'data-ack="{other.id}"' in page
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)

    # An agent without the role cannot, nor can a form without the session's token.
    plain = console.session(PLAIN, PASSWORD)
    refused = plain.post(f"{console.url}/kpis/alerts/{seen.id}/ack", data={"csrf": csrf}, timeout=10)
    assert refused.status_code == 403
    forged = supervisor.post(f"{console.url}/kpis/alerts/{seen.id}/ack", data={"csrf": "x"}, timeout=10)
    assert forged.status_code == 403
    assert {alert.id for alert in book.recent(NOW - timedelta(days=14))} == {seen.id, other.id}

    done = supervisor.post(f"{console.url}/kpis/alerts/{seen.id}/ack", data={"csrf": csrf}, timeout=10)
    assert done.status_code == 200 and done.url.endswith("/kpis")  # back on the page
    assert f'data-ack="{seen.id}"' not in done.text and f'data-ack="{other.id}"' in done.text
    [left] = book.recent(NOW - timedelta(days=14))
    assert left.id == other.id
    # Who and when, on the project clock; its webhook is no longer due, the other's still is.
    with console.graph.handoff.store.sql.connect() as conn:
        row = conn.execute(sa.select(kpi_alerts).where(kpi_alerts.c.id == seen.id)).one()
    assert (row.acknowledged_by, row.status) == (AGENT, "acknowledged")
    assert from_db_time(row.acknowledged_at) == NOW
    assert [alert.id for alert in book.claim_due(NOW + timedelta(minutes=1))] == [other.id]
    # A second acknowledgement changes nothing: the first one's who and when stay.
    assert not book.acknowledge(seen.id, "otra", NOW + timedelta(hours=1))
