"""action_open_case with rasa_sdk trackers, over the SQL case book on SQLite and PostgreSQL."""

import asyncio

import pytest
from rasa_sdk.executor import CollectingDispatcher

from actions import cases as action_module
from actions.cases import ActionOpenCase
from bot.adapters.base import BackendUnavailable
from bot.backends import Backends
from bot.cases import is_case_id
from bot.records import CaseKind
from tests.conftest import MARIANA_MX
from tests.test_actions import DOMAIN, order_entity, tracker


@pytest.fixture(autouse=True)
def use_demo(monkeypatch, demo):
    monkeypatch.setattr(action_module, "backends", lambda: demo)


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
    assert sent | {"utter_case_failed"} <= set(DOMAIN["responses"])


def test_database_down_gets_a_polite_message(monkeypatch, demo):
    class DownBook:
        def recent_open_cases(self, *args):
            raise BackendUnavailable("connection refused")

    monkeypatch.setattr(action_module, "backends", lambda: Backends(crm=demo.crm, erp=None, cases=DownBook()))
    messages, events = run("cancel_order", "cancelen mi pedido")
    assert [m["response"] for m in messages] == ["utter_case_failed"] and events == []
