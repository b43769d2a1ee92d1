"""action_open_case with rasa_sdk trackers: the SQL case book (SQLite, PostgreSQL), and a CRM down."""

import asyncio
from dataclasses import replace

import pytest
from rasa_sdk.executor import CollectingDispatcher

from actions import cases as action_module
from actions.cases import ActionOpenCase
from bot.adapters.outbox_sql import Outbox
from bot.adapters.rest import RestCaseBook
from bot.adapters.sql import SqlStore
from bot.backends import Backends
from bot.cases import is_case_id
from bot.records import CaseKind
from tests.action_helpers import DOMAIN, order_entity, tracker
from tests.conftest import MARIANA_MX
from tests.harness import free_port
from tests.rest_fixtures import client_for


@pytest.fixture(autouse=True)
def use_demo(wire, demo):
    wire(backends=demo)


def run(intent: str, text: str, entities=(), sender: str = MARIANA_MX):
    dispatcher = CollectingDispatcher()
    events = asyncio.run(
        ActionOpenCase().run(dispatcher, tracker(sender, text, entities, intent=intent), DOMAIN)
    )
    return dispatcher.messages, events


def test_cancel_order_explains_then_gives_a_case_with_the_order(demo):
    messages, events = run("cancel_order", "cancelen el 1001 porfa", [order_entity("1001")])
    assert [m["response"] for m in messages] == ["utter_cancel_order_guide", "utter_cancel_order_case"]
    case = demo.cases.case(messages[1]["case_id"])
    assert (case.kind, case.customer_phone, case.details["order_id"]) == (
        CaseKind.CANCEL_ORDER,
        MARIANA_MX,
        "PED-1001",
    )
    assert events == []


def test_return_request_explains_then_gives_a_case(demo):
    messages, _ = run("return_request", "me llego roto, lo quiero devolver")
    assert [m["response"] for m in messages] == ["utter_return_guide", "utter_return_case"]
    assert demo.cases.case(messages[1]["case_id"]).details["text"] == "me llego roto, lo quiero devolver"


def test_asking_twice_gives_the_same_case_again():
    first, _ = run("return_request", "lo quiero devolver")
    again, _ = run("return_request", "lo quiero devolver!!")
    assert is_case_id(first[1]["case_id"]) and again[1]["case_id"] == first[1]["case_id"]


def test_every_response_the_action_sends_is_in_the_domain():
    sent = {name for pair in action_module.CASE_RESPONSES.values() for name in pair if name}
    sent |= {guide for _, guide in action_module.INTENT_KINDS.values()}
    assert sent | {"utter_case_failed", "utter_case_queued", "utter_case_offer_human"} <= set(
        DOMAIN["responses"]
    )


@pytest.mark.parametrize(
    ("intent", "text", "kind", "responses"),
    [
        (
            "order_not_arrived",
            "dice entregado y nunca llego",
            CaseKind.ORDER_NOT_ARRIVED,
            ["utter_order_not_arrived_guide", "utter_order_not_arrived_case"],
        ),
        (
            "payment_problem",
            "me cobraron doble",
            CaseKind.PAYMENT_PROBLEM,
            ["utter_payment_problem_guide", "utter_payment_problem_case"],
        ),
        (
            "refund_status",
            "y mi reembolso?",
            CaseKind.REFUND_STATUS,
            ["utter_refund_status_guide", "utter_refund_status_case"],
        ),
        (
            "wrong_or_damaged_item",
            "me mandaron otro modelo",
            CaseKind.RETURN_REQUEST,
            ["utter_wrong_item_guide", "utter_return_case"],
        ),
    ],
)
def test_problems_reported_open_their_case(demo, intent, text, kind, responses):
    messages, events = run(intent, text)
    assert [m["response"] for m in messages] == responses and events == []
    case = demo.cases.case(messages[1]["case_id"])
    assert (case.kind, case.details["text"]) == (kind, text)


def test_the_problems_case_offers_a_person_and_never_asks_for_card_data():
    for intent in ("order_not_arrived", "payment_problem", "refund_status"):
        _, opened = action_module.CASE_RESPONSES[CaseKind(intent)]
        for variation in DOMAIN["responses"][opened]:
            assert [b["payload"] for b in variation["buttons"]] == ["/human_handoff"], opened
    for variation in DOMAIN["responses"]["utter_payment_problem_guide"]:
        assert "tarjeta" in variation["text"] and "no" in variation["text"].lower()


def test_a_wrong_item_and_a_return_are_the_same_case():
    first, _ = run("wrong_or_damaged_item", "me llego roto")
    again, _ = run("return_request", "lo quiero devolver")
    assert first[1]["case_id"] == again[1]["case_id"]


def test_a_problem_while_the_crm_is_down_is_queued_and_a_person_offered(demo, wire):
    wire(backends=crm_down(demo))
    messages, events = run("payment_problem", "me cobraron doble el pedido", [order_entity("1002")])
    assert [m["response"] for m in messages] == [
        "utter_payment_problem_guide",
        "utter_case_queued",
        "utter_case_offer_human",
    ]
    [entry] = demo.outbox.entries(status="pending")
    assert messages[1]["case_id"] == entry.management_id and entry.payload["kind"] == "payment_problem"
    assert events == []


def test_a_disputed_charge_reported_as_a_payment_problem_goes_to_a_person(demo):
    text = "me cobraron dos veces la misma compra"
    messages, events = run("payment_problem", text)
    assert [m["response"] for m in messages] == [
        "utter_payment_problem_guide",
        "utter_payment_dispute_person",
    ]
    assert [e.get("value") for e in events[:2]] == ["dispute", text]
    assert events[2]["name"] == "action_handoff"
    assert demo.outbox.entries(status="pending") == []


def crm_down(demo) -> Backends:
    """The demo's CRM/ERP, but cases are kept by a CRM over HTTP that refuses connections."""
    down = RestCaseBook(client_for(f"http://127.0.0.1:{free_port()}/v1"))
    return replace(demo, cases=down)


def test_crm_down_queues_the_case_and_gives_its_id_honestly(demo, wire):
    wire(backends=crm_down(demo))
    messages, events = run("cancel_order", "cancelen el 1001", [order_entity("1001")])
    assert [m["response"] for m in messages] == ["utter_cancel_order_guide", "utter_case_queued"]
    [entry] = demo.outbox.entries(status="pending")
    assert messages[1]["case_id"] == entry.management_id and is_case_id(entry.management_id)
    assert entry.payload["details"]["order_id"] == "PED-1001" and events == []


def test_asking_again_while_the_case_is_queued_gives_the_same_id(demo, wire):
    wire(backends=crm_down(demo))
    first, _ = run("return_request", "lo quiero devolver")
    again, _ = run("return_request", "lo quiero devolver porfa")
    assert first[1]["case_id"] == again[1]["case_id"] and len(demo.outbox.entries()) == 1


def test_own_database_down_too_gets_a_polite_message(demo, wire):
    unreachable = Outbox(SqlStore(f"postgresql+psycopg2://postgres@127.0.0.1:{free_port()}/none"))
    wire(backends=replace(crm_down(demo), outbox=unreachable))
    messages, events = run("return_request", "quiero devolver algo")
    assert [m["response"] for m in messages] == ["utter_case_failed"] and events == []


def test_a_problem_that_cannot_be_recorded_at_all_still_offers_a_person(demo, wire):
    unreachable = Outbox(SqlStore(f"postgresql+psycopg2://postgres@127.0.0.1:{free_port()}/none"))
    wire(backends=replace(crm_down(demo), outbox=unreachable))
    messages, events = run("order_not_arrived", "nunca me llego")
    assert [m["response"] for m in messages] == [
        "utter_case_failed",
        "utter_case_offer_human",
    ] and events == []
