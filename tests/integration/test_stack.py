"""End to end: `scripts/stack.py run` (what `make run` starts) with the trained model, over HTTP.

One Rasa server and one action server for the whole session (tests/conftest.py), on free ports
and a fresh SQLite database with the demo data; these conversations go through the REST channel
with a real HTTP client.
"""

from __future__ import annotations

import os
import re
import signal
import time
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import requests
from babel.dates import format_date

from bot.kb import KnowledgeBase
from bot.settings import DEFAULT_KB_DIR
from tests.conftest import ANDRES_CO, CAMILA_CL, CLOCK, JULIAN_AR, MARIANA_MX, ROSA_PE, STRANGER
from tests.handoff_helpers import release, wait_for_handoff
from tests.harness import API_TOKEN, REST_TOKEN, is_response, is_up
from tests.stack_helpers import texts

pytestmark = pytest.mark.integration


def local_day(zone: str, offset: int) -> str:
    day = CLOCK.now().astimezone(ZoneInfo(zone)).date() + timedelta(days=offset)
    return format_date(day, "EEEE d 'de' MMMM", locale="es")


def test_one_open_order_gets_status_eta_carrier_and_tracking(stack):
    reply = texts(stack.say(MARIANA_MX, "hola, donde esta mi pedido?"))
    assert "PED-1001" in reply
    assert f"mañana {local_day('America/Mexico_City', 1)} entre 14:00 y 18:00" in reply
    assert "Estafeta" in reply
    assert "https://rastreo.example.com/PED-1001" in reply


def test_several_orders_are_offered_and_a_number_picks_one(stack):
    messages = stack.say(JULIAN_AR, "y mis compras cuando llegan?")
    buttons = [button for message in messages for button in message.get("buttons", [])]
    assert [button["title"].split(" ")[0] for button in buttons] == ["PED-1004", "PED-1005", "PED-1003"]
    assert is_response(texts(messages), "utter_ask_which_order")

    picked = texts(stack.say(JULIAN_AR, "2"))
    assert "PED-1005" in picked and "OCA" in picked


def test_a_button_payload_picks_an_order(stack):
    stack.say(JULIAN_AR, "mi pedido?")
    reply = texts(stack.say(JULIAN_AR, '/inform{"order_id":"PED-1003"}'))
    assert "PED-1003" in reply
    assert is_response(reply, "utter_order_created")


def test_no_open_orders_asks_for_the_number_and_finds_it(stack):
    first = texts(stack.say(ROSA_PE, "hola q paso con mi pedido"))
    assert is_response(first, "utter_no_open_orders")
    assert "Rosa" in first
    second = texts(stack.say(ROSA_PE, "el 1007"))
    assert "PED-1007" in second
    assert is_response(second, "utter_order_delivered")
    assert "15:20" in second


def test_customer_without_any_order(stack):
    assert is_response(texts(stack.say(CAMILA_CL, "donde viene mi encomienda")), "utter_no_open_orders")


def test_order_without_delivery_day(stack):
    reply = texts(stack.say(ANDRES_CO, "en que va mi pedido parce"))
    assert "PED-1009" in reply and "Servientrega" in reply
    assert is_response(reply, "utter_order_in_transit_no_eta")


def test_order_number_written_in_the_question(stack):
    reply = texts(stack.say(MARIANA_MX, "me podes decir como va el pedido PED-1002?"))
    assert "PED-1002" in reply
    assert is_response(reply, "utter_order_delivered")


def test_someone_elses_order_is_answered_like_a_missing_one(stack):
    others = texts(stack.say(MARIANA_MX, "estado del pedido PED-1003"))  # Julián's
    missing = texts(stack.say(MARIANA_MX, "estado del pedido PED-9999"))
    for reply in (others, missing):
        assert is_response(reply, "utter_order_not_found")
        assert "Mate" not in reply and "Julián" not in reply


def test_unknown_number(stack):
    assert is_response(texts(stack.say(STRANGER, "donde esta mi pedido")), "utter_unknown_customer")


def test_the_menu_and_a_typed_number_open_the_chosen_flow(stack):
    menu = stack.say(ANDRES_CO, "menu")
    assert is_response(texts(menu), "utter_menu")
    payloads = [button["payload"] for message in menu for button in message.get("buttons", [])]
    assert payloads == [
        "/order_status", "/reschedule_delivery", "/check_balance", "/report_payment",
        "/cancel_order", "/return_request", "/update_contact_data", "/human_handoff",
    ]  # fmt: skip
    # 5, "Cancelar pedido": the self-service cancellation (issue 18) finds Andrés's one order on
    # its way and says it can no longer be cancelled, and how to refuse or return it.
    reply = texts(stack.say(ANDRES_CO, "5"))
    assert is_response(reply, "utter_cancel_shipped") and "PED-1009" in reply


def test_out_of_scope_says_so_and_shows_the_menu(stack):
    reply = texts(stack.say(CAMILA_CL, "me recomiendas una peli para ver hoy?"))
    assert is_response(reply, "utter_out_of_scope") and is_response(reply, "utter_menu")


def test_a_frequent_question_gets_its_answer_from_the_knowledge_base(stack):
    reply = texts(stack.say(CAMILA_CL, "a q hora abren el sabado?"))
    article = KnowledgeBase.load(DEFAULT_KB_DIR).resolve("horarios-de-atencion", country="CL")
    # the REST channel gets WhatsApp's rendering, split by Rasa into messages at blank lines
    assert article.render("whatsapp").replace("\n\n", "\n") in reply


def test_not_understood_twice_offers_a_person_and_yes_hands_over(stack):
    sender = "+525500000001"
    try:
        stack.say(sender, "/nlu_fallback", command=True)
        offer = stack.say(sender, "/nlu_fallback", command=True)
        assert is_response(texts(offer), "utter_offer_human")
        reply = texts(stack.say(sender, "si"))
        assert is_response(reply, "utter_handoff_waiting") or is_response(reply, "utter_handoff_after_hours")
        assert wait_for_handoff(stack, sender).reason == "not_understood"
        assert stack.say(sender, "hola?") == []  # paused: a person answers now, not the bot
    finally:
        release(stack, sender)


def test_rest_channel_refuses_requests_without_the_token(stack):
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        reply = requests.post(
            f"{stack.base}/webhooks/rest/webhook",
            json={"sender": MARIANA_MX, "message": "donde esta mi pedido"},
            headers=headers,
            timeout=30,
        )
        assert reply.status_code == 401
        assert "PED-1001" not in reply.text


def test_rest_channel_accepts_the_token_as_query_parameter(stack):
    reply = requests.post(
        f"{stack.base}/webhooks/rest/webhook?token={REST_TOKEN}",
        json={"sender": MARIANA_MX, "message": "gracias"},
        timeout=30,
    )
    assert reply.status_code == 200 and reply.json()


def test_http_api_requires_the_token(stack):
    tracker = f"{stack.base}/conversations/{MARIANA_MX}/tracker"
    assert requests.get(tracker, timeout=30).status_code == 401
    assert requests.get(tracker, params={"token": API_TOKEN}, timeout=30).status_code == 200


def test_conversations_are_kept_in_the_configured_database(stack):
    stack.say(CAMILA_CL, "hola")
    tracker = requests.get(
        f"{stack.base}/conversations/{CAMILA_CL}/tracker", params={"token": API_TOKEN}, timeout=30
    ).json()
    assert any(event.get("text") == "hola" for event in tracker["events"])


def test_the_rasa_server_starts_with_the_rasa_patches_applied(stack):
    # connectors/rasa_launcher.py says so before Rasa loads: the server went through it.
    assert "Rasa patches applied to Rasa 3.6." in stack.log.read_text()


def stack_child(stack, module: str) -> int | None:
    """The pid of the stack's child running `python -m <module>` (a child of its supervisor)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            command = (entry / "cmdline").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        if parent == stack.process.pid and module.encode() in command:
            return int(entry.name)
    return None


def test_every_process_is_ready_before_the_assistant_says_so(stack):
    log = stack.log.read_text()
    banner = log.index("Assistant ready.")
    for name in ("Action server", "Outbox worker", "Rasa server", "Agent console"):
        assert re.search(rf"==> \d\d:\d\d:\d\d {name} is ready \(pid \d+\)\.", log[:banner]), name


def test_a_killed_outbox_worker_is_restarted_on_its_own_and_ready_again(stack):
    worker = f"http://127.0.0.1:{stack.worker_port}"
    pid = stack_child(stack, "connectors.outbox_worker")
    assert pid is not None and is_up(f"{worker}/ready")
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (
        "Outbox worker restarted" in stack.log.read_text() and is_up(f"{worker}/ready")
    ):
        time.sleep(0.5)
    log = stack.log.read_text()
    assert f"Outbox worker (pid {pid}) exited with signal SIGKILL" in log, stack.tail()
    assert is_up(f"{worker}/ready"), stack.tail()
    assert stack_child(stack, "connectors.outbox_worker") not in (None, pid)
    assert is_up(f"{stack.base}/webhooks/twilio/ready")  # the others were left alone


@pytest.mark.stops_stack
def test_ctrl_c_stops_every_server(stack):
    assert is_up(f"http://127.0.0.1:{stack.action_port}/health")
    stack.stop()
    assert stack.process.returncode == 0, stack.tail()
    assert not is_up(f"http://127.0.0.1:{stack.action_port}/health")
    assert not is_up(f"{stack.base}/")
    assert not is_up(f"{stack.console}/health")
    assert not is_up(f"http://127.0.0.1:{stack.worker_port}/health")
    log = stack.log.read_text()
    assert "Stopped." in log
    stops = re.findall(r"Stopping ([A-Za-z ]+) \(pid", log)
    assert not is_up(f"http://127.0.0.1:{stack.notify_port}/health")
    # The reverse of the start: what takes work in first, what writes to the CRM/ERP last.
    assert stops[-7:] == [
        "Notification intake",
        "Notification worker",
        "Agent console",
        "Rasa server",
        "Analytics consumer",
        "Outbox worker",
        "Action server",
    ]
