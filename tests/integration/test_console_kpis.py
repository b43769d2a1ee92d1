"""The console's KPI page: the hand-computed week of tests/analytics_helpers.py, charts drawn on
the server as SVG (no script), texts escaped, and only for a logged-in agent."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import requests

from bot.analytics.store import AnalyticsStore
from bot.clock import FixedClock
from bot.handoff.agents import create_agent
from bot.handoff.service import build_services
from bot.settings import Settings
from bot.wiring import Wiring
from tests.analytics_helpers import NOW, Conversation, at, delivered_events, write_handoffs_and_cases
from tests.console_helpers import RunningConsole

pytestmark = pytest.mark.integration
AGENT, PASSWORD = "sofia", "contraseña-larga-2"


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
    create_agent(graph.handoff.store, AGENT, PASSWORD)
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
    assert text.count("<svg") == 2 and "<rect" in text
    assert "<script>alert(1)</script>" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "script-src 'nonce-" in page.headers["Content-Security-Policy"]
    assert '<a href="/kpis">Indicadores</a>' in text


def test_a_date_that_is_no_date_is_said_plainly(console):
    agent = console.session(AGENT, PASSWORD)
    page = agent.get(f"{console.url}/kpis?from=ayer", timeout=10)
    assert page.status_code == 200 and "Fechas no válidas" in page.text
