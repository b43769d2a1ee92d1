"""The console knows the customer (issue 18): beside a handoff, the customer's orders from the
ERP and their earlier handoffs with the rating they gave; Spanish labels instead of internal
names; canned replies with the conversation's variables; the customers' wait estimate counts
the agents whose console is open.

The console runs for real on a loopback port over a SQLite database holding the demo fixture,
on a FixedClock, driven with a real HTTP client.
"""

from __future__ import annotations

import dataclasses
import html
import re
from collections.abc import Iterator
from datetime import timedelta

import pytest

from bot.adapters.base import BackendUnavailable
from bot.adapters.sql import SqlErp
from bot.clock import FixedClock
from bot.demo import load_demo
from bot.handoff.agents import create_agent
from bot.handoff.rules import PRESENCE_WINDOW, Reason, estimate_wait
from bot.handoff.service import HandoffRequest
from bot.handoff.service import open_handoff as open_handoff_service
from bot.settings import DEFAULT_DEMO_DATA, Settings
from tests.conftest import NOW, TODAY
from tests.console_helpers import RunningConsole, console_graph

pytestmark = pytest.mark.integration

AGENT, PASSWORD = "ana", "contraseña-larga-1"
MARIANA = "+525512345678"  # C-001 in the demo fixture: one order in transit, one delivered
PACKET = {
    "channel": "whatsapp",
    "customer": {"id": "C-001", "name": "Mariana López", "phone": MARIANA, "country": "MX", "known": True},
    "intent": {"current": "order_status", "session": ["greet", "order_status", "human_handoff"]},
    "steps_completed": ["utter_greet", "action_order_status"],
    "slots": {"reschedule_order": "PED-1001"},
    "active_form": "reschedule_form",
    "requested_slot": "reschedule_window",
    "messages": [],
}


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
def settings() -> Settings:
    return Settings.from_env({"BOT_ENV": "development"})


@pytest.fixture
def graph(sql_store, settings, clock):
    load_demo(sql_store, DEFAULT_DEMO_DATA, settings, today=TODAY, force=True)
    return console_graph(settings, sql_store, clock)


@pytest.fixture
def console(graph) -> Iterator[RunningConsole]:
    create_agent(graph.handoff.store, AGENT, PASSWORD)
    running = RunningConsole(graph)
    yield running
    running.stop()


def open_handoff(graph, handoff_id: str, clock: FixedClock, packet: dict = PACKET) -> str:
    graph.handoff.store.create(
        handoff_id=handoff_id,
        conversation_id=f"whatsapp:{MARIANA}",
        phone=MARIANA,
        channel="whatsapp",
        reason="customer_request",
        customer_name="Mariana López",
        packet=packet,
        resume_form=None,
        now=clock.now(),
    )
    return handoff_id


def section(page: str, element_id: str) -> str:
    match = re.search(rf'id="{element_id}".*?</(?:ul|section)>', page, re.S)
    assert match, f"no #{element_id} on the page"
    return html.unescape(match.group(0))


def test_the_agent_sees_the_customers_orders_and_earlier_handoffs_with_their_rating(graph, console, clock):
    store = graph.handoff.store
    # An earlier handoff on SMS (same number, another conversation), closed and rated 2/5, with
    # a note holding HTML: shown as text.
    store.create(
        handoff_id="HO-EARLIER1",
        conversation_id=MARIANA,
        phone=MARIANA,
        channel="sms",
        reason="dispute",
        customer_name="Mariana López",
        packet={"customer": {"id": "C-001"}},
        resume_form=None,
        now=clock.now() - timedelta(days=3),
    )
    store.accept("HO-EARLIER1", "beto", now=clock.now() - timedelta(days=3))
    store.end("HO-EARLIER1", "closed", note="<b>reintegro</b> pedido", now=clock.now() - timedelta(days=3))
    store.record_satisfaction("HO-EARLIER1", 2, now=clock.now() - timedelta(days=3))
    # Another customer's handoff is not listed.
    store.create(
        handoff_id="HO-OTHERONE",
        conversation_id="+525598765432",
        phone="+525598765432",
        channel="whatsapp",
        reason="customer_request",
        customer_name="Otro",
        packet={},
        resume_form=None,
        now=clock.now() - timedelta(days=1),
    )
    handoff_id = open_handoff(graph, "HO-NOWOPEN1", clock)
    page = console.session(AGENT, PASSWORD).get(f"{console.url}/handoffs/{handoff_id}", timeout=10).text

    orders = section(page, "customer-orders")
    mine = graph.backends.erp.orders_of("C-001")
    assert mine and all(order.id in orders for order in mine)
    assert "en camino" in orders or "entregado" in orders  # the state in Spanish
    earlier = section(page, "earlier-handoffs")
    assert "HO-EARLIER1" in earlier and "HO-OTHERONE" not in earlier and "HO-NOWOPEN1" not in earlier
    assert "2/5" in earlier and "Disputa" in earlier and "Cerrado" in earlier and "beto" in earlier
    assert "&lt;b&gt;reintegro&lt;/b&gt;" in page and "<b>reintegro</b>" not in page


def test_internal_names_are_shown_in_spanish(graph, console, clock):
    handoff_id = open_handoff(graph, "HO-LABELS01", clock)
    page = html.unescape(
        console.session(AGENT, PASSWORD).get(f"{console.url}/handoffs/{handoff_id}", timeout=10).text
    )
    assert ">Estado de pedido<" in page  # order_status
    assert "Consultó el estado del pedido" in page  # action_order_status
    assert "Respondió: «" in page  # utter_greet: the start of its text
    assert "Trámite interrumpido: <strong>Cambio de fecha de entrega</strong>" in page
    assert "(pedía: Franja elegida)" in page
    assert "Pedido a cambiar: PED-1001" in page
    assert "en la sesión: Saludo, Estado de pedido, Pidió una persona" in page


def test_a_canned_reply_is_pasted_with_the_conversations_variables(graph, console, clock):
    handoff_id = open_handoff(graph, "HO-CANNED01", clock)
    agent = console.session(AGENT, PASSWORD)
    page = agent.get(f"{console.url}/handoffs/{handoff_id}", params={"canned": "saludo"}, timeout=10).text
    draft = html.unescape(re.search(r'<textarea id="reply"[^>]*>(.*?)</textarea>', page, re.S).group(1))
    assert draft.startswith("Hola Mariana, soy ana.")
    listed = section(page, "canned")
    assert "Dejé una gestión abierta" in listed and "HO-CANNED01" in listed  # {gestion} filled
    # An unknown reply id pastes nothing.
    page = agent.get(f"{console.url}/handoffs/{handoff_id}", params={"canned": "<x>"}, timeout=10).text
    assert re.search(r'<textarea id="reply"[^>]*></textarea>', page)


class DownErp(SqlErp):
    def orders_of(self, customer_id: str):
        raise BackendUnavailable("connection refused")


def test_an_erp_outage_says_so_instead_of_no_orders(graph, sql_store, clock):
    graph = dataclasses.replace(graph, backends=dataclasses.replace(graph.backends, erp=DownErp(sql_store)))
    create_agent(graph.handoff.store, AGENT, PASSWORD)
    running = RunningConsole(graph)
    try:
        handoff_id = open_handoff(graph, "HO-ERPDOWN1", clock)
        page = running.session(AGENT, PASSWORD).get(f"{running.url}/handoffs/{handoff_id}", timeout=10)
        assert page.status_code == 200
        assert "El sistema de pedidos no responde ahora" in page.text
    finally:
        running.stop()


def test_the_wait_estimate_counts_the_agents_with_the_console_open(graph, console, clock):
    store = graph.handoff.store
    create_agent(store, "beto", PASSWORD)
    assert store.agents_connected(clock.now() - PRESENCE_WINDOW) == 0
    ana = console.session(AGENT, PASSWORD)
    beto = console.session("beto", PASSWORD)
    for agent in (ana, beto):
        assert agent.get(f"{console.url}/api/queue", timeout=10).status_code == 200
    assert store.agents_connected(clock.now() - PRESENCE_WINDOW) == 2
    # Five waiting customers, two agents connected: the sixth waits for 3 conversations' time.
    config = graph.handoff.config
    for number in range(5):
        open_handoff(graph, f"HO-QUEUE{number:04d}", clock, packet={})
    request = HandoffRequest(
        conversation_id="+525500000999",
        phone="+525500000999",
        channel="whatsapp",
        reason=Reason.CUSTOMER_REQUEST,
        events=[],
        slots={},
        active_form=None,
        now=clock.now(),
    )
    opened = open_handoff_service(graph.handoff, None, request)
    assert opened.wait.minutes == estimate_wait(5, clock.now(), config, connected=2).minutes
    assert opened.wait.minutes < estimate_wait(5, clock.now(), config, connected=1).minutes
    # Logging out leaves the count at once; an agent not seen for 5 minutes leaves it too.
    page = ana.get(f"{console.url}/", timeout=10).text
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    ana.post(f"{console.url}/logout", data={"csrf": csrf}, allow_redirects=False, timeout=10)
    assert store.agents_connected(clock.now() - PRESENCE_WINDOW) == 1
    clock.advance(PRESENCE_WINDOW + timedelta(seconds=1))
    assert store.agents_connected(clock.now() - PRESENCE_WINDOW) == 0
