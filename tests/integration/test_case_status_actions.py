"""action_case_status, and refund_status answered from a case, with rasa_sdk trackers over the SQL
case book (SQLite, PostgreSQL): only the owner sees a case, and what they see is theirs to see."""

import asyncio
from dataclasses import replace
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from babel.dates import format_date
from rasa_sdk.executor import CollectingDispatcher

from actions.case_status import ActionCaseStatus
from actions.cases import ActionOpenCase
from bot.adapters.rest import RestCaseBook
from bot.case_work import add_note, assign_case, change_status, record_message
from bot.cases import request_case
from bot.management_ids import find_management_id
from bot.records import CaseKind
from tests.action_helpers import DOMAIN, order_entity, tracker
from tests.conftest import CLOCK, JULIAN_AR, MARIANA_MX, STRANGER
from tests.harness import free_port
from tests.rest_fixtures import client_for


@pytest.fixture(autouse=True)
def use_demo(wire, demo):
    wire(backends=demo)


def open_case(demo, phone, kind=CaseKind.RETURN_REQUEST, order="PED-1002", hours_ago=2, text="vino roto"):
    """A case opened through the product's own service, `hours_ago` before the test's moment."""
    outcome = request_case(
        demo.cases,
        demo.outbox,
        phone,
        kind,
        {"order_id": order, "text": text},
        conversation_id=phone,
        now=CLOCK.now() - timedelta(hours=hours_ago),
    )
    return demo.cases.case(outcome.management_id)


def ask(text, sender=MARIANA_MX, entities=(), intent="case_status", action=ActionCaseStatus):
    dispatcher = CollectingDispatcher()
    events = asyncio.run(action().run(dispatcher, tracker(sender, text, entities, intent=intent), DOMAIN))
    return dispatcher.messages, events


def id_entity(value):
    return {"entity": "management_id", "value": value, "start": 0, "end": len(value)}


def test_the_owner_hears_status_who_next_step_deadline_and_history_without_internal_notes(demo):
    case = open_case(demo, MARIANA_MX)
    now = CLOCK.now()
    assign_case(demo.cases, case, "ana", "ana", now)
    change_status(demo.cases, demo.cases.case(case.id), "in_progress", "ana", now)
    record_message(demo.cases, demo.cases.case(case.id), "Mañana pasa el courier a retirarlo", "ana", now)
    add_note(demo.cases, demo.cases.case(case.id), "cliente molesto, revisar stock", "ana", now)

    [message], events = ask("como va mi caso?")

    assert message["response"] == "utter_case_status_on_time" and events == []
    assert message["case_id"] == case.id and message["label"] == "Devolución"
    assert message["status"].startswith("en curso")
    assert message["who"] == "ana, del equipo de devoluciones"
    assert message["next_step"].startswith("Revisamos que el producto pueda devolverse")
    # The catalogue's 72 hours from the opening (two hours ago), in her zone: three days ahead.
    due = (case.opened_at + timedelta(hours=72)).astimezone(ZoneInfo("America/Mexico_City"))
    assert message["due"].endswith(f"{due.day} de {format_date(due, 'MMMM', locale='es')} a las {due:%H:%M}")
    history = message["history"]
    assert "Abrimos tu gestión" in history and "La tomó ana" in history
    assert "Pasó a en curso" in history and "Mañana pasa el courier" in history
    assert "revisar stock" not in history and "molesto" not in history


def test_a_management_id_alone_or_inside_a_sentence_finds_the_case(demo):
    case = open_case(demo, MARIANA_MX)
    open_case(demo, MARIANA_MX, CaseKind.ORDER_NOT_ARRIVED, order="PED-1001")
    [alone], _ = ask(case.id, entities=[id_entity(case.id)])
    written = f"hola, me dieron el {case.id.lower()} y quiero saber que paso"
    [in_text], _ = ask(written)  # no entity: the action finds it in the text
    assert alone["response"] == in_text["response"] == "utter_case_status_on_time"
    assert alone["case_id"] == in_text["case_id"] == case.id


def test_someone_elses_case_answers_exactly_like_one_that_does_not_exist(demo):
    marianas = open_case(demo, MARIANA_MX)
    unknown = "GES-22222222"
    assert find_management_id(unknown) == unknown and demo.cases.case(unknown) is None
    others, _ = ask(f"como va {marianas.id}", sender=JULIAN_AR)
    missing, _ = ask(f"como va {unknown}", sender=JULIAN_AR)
    stranger, _ = ask(f"como va {marianas.id}", sender=STRANGER)
    assert (
        others == missing == stranger == [{**missing[0], "response": "utter_case_not_found"}]
        and set(missing[0]) & {"case_id", "label", "history"} == set()
    )


def test_several_open_cases_are_offered_as_options_and_closed_ones_are_not(demo):
    first = open_case(demo, MARIANA_MX, hours_ago=5)
    second = open_case(demo, MARIANA_MX, CaseKind.PAYMENT_PROBLEM, order="PED-1001", hours_ago=3)
    closed = open_case(demo, MARIANA_MX, CaseKind.ORDER_NOT_ARRIVED, order="PED-1001", hours_ago=1)
    change_status(demo.cases, closed, "closed", "ana", CLOCK.now())
    open_case(demo, JULIAN_AR, CaseKind.CANCEL_ORDER, order="PED-1003")  # not hers

    [message], _ = ask("mis casos")

    assert message["response"] == "utter_ask_which_case" and message["count"] == "2"
    payloads = [button["payload"] for button in message["buttons"]]
    assert payloads == [
        f'/case_status{{"management_id":"{second.id}"}}',
        f'/case_status{{"management_id":"{first.id}"}}',
    ]
    assert message["buttons"][1]["title"] == f"{first.id} · Devolución (PED-1002)"


def test_no_case_says_so_and_offers_what_they_can_do(demo):
    [message], events = ask("como va mi reclamo")
    assert message["response"] == "utter_no_cases" and events == []
    offered = {
        button["payload"]
        for variation in DOMAIN["responses"]["utter_no_cases"]
        for button in variation["buttons"]
    }
    assert offered == {"/cancel_order", "/return_request", "/human_handoff"}


def test_a_case_past_its_sla_says_so_and_a_finished_one_says_it_is_done(demo):
    late = open_case(demo, MARIANA_MX, hours_ago=100)  # a return has 72 hours
    [message], _ = ask(late.id)
    assert message["response"] == "utter_case_status_late"
    change_status(demo.cases, late, "resolved", "ana", CLOCK.now())
    [message], _ = ask(late.id)
    assert message["response"] == "utter_case_status_finished" and message["status"] == "resuelta"


def test_the_case_book_down_is_said_honestly(demo, wire):
    down = RestCaseBook(client_for(f"http://127.0.0.1:{free_port()}/v1"))
    wire(backends=replace(demo, cases=down))
    [message], _ = ask("como va mi caso")
    assert message["response"] == "utter_cases_unavailable"


# --- "en que va mi reembolso?" ------------------------------------------------------------------


def test_a_refund_question_is_answered_from_the_open_return_case(demo):
    case = open_case(demo, MARIANA_MX)
    messages, events = ask("en que va mi reembolso?", intent="refund_status", action=ActionOpenCase)
    assert [m["response"] for m in messages] == ["utter_case_status_on_time"] and events == []
    assert messages[0]["case_id"] == case.id
    assert len(demo.cases.cases_of_phone(MARIANA_MX)) == 1  # no follow-up case opened


def test_a_refund_question_without_a_refund_or_return_case_opens_the_follow_up_as_before(demo):
    open_case(demo, MARIANA_MX, CaseKind.PAYMENT_PROBLEM, order="PED-1001")  # not a refund
    messages, _ = ask(
        "y mi reembolso del PED-1002?",
        entities=[order_entity("PED-1002")],
        intent="refund_status",
        action=ActionOpenCase,
    )
    assert [m["response"] for m in messages] == ["utter_refund_status_guide", "utter_refund_status_case"]
    assert demo.cases.case(messages[1]["case_id"]).kind is CaseKind.REFUND_STATUS


def test_every_case_status_response_is_in_the_domain():
    for situation in ("on_time", "late", "finished"):
        assert f"utter_case_status_{situation}" in DOMAIN["responses"]
