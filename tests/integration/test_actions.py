"""action_order_status with rasa_sdk trackers, over the demo data on SQLite and PostgreSQL."""

import asyncio

import pytest
from rasa_sdk import Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions import order_status as action_module
from actions.order_status import ActionOrderStatus
from bot.adapters.base import BackendUnavailable
from bot.backends import Backends
from tests.action_helpers import DOMAIN, order_entity, tracker
from tests.conftest import CAMILA_CL, JULIAN_AR, MARIANA_MX, ROSA_PE, STRANGER


def run(action_tracker: Tracker):
    dispatcher = CollectingDispatcher()
    events = asyncio.run(ActionOrderStatus().run(dispatcher, action_tracker, DOMAIN))
    return dispatcher.messages, events


@pytest.fixture(autouse=True)
def use_demo(wire, demo):
    wire(backends=demo)


def test_every_response_the_action_can_send_is_in_the_domain():
    situations = [
        "created", "created_no_eta", "in_transit", "in_transit_no_eta", "in_transit_late",
        "out_for_delivery", "delivered", "cancelled",
    ]  # fmt: skip
    needed = {f"utter_order_{s}" for s in situations} | set(action_module.NO_ORDER_RESPONSES.values())
    needed |= {"utter_ask_which_order", "utter_systems_down"}
    assert needed <= set(DOMAIN["responses"])


def test_one_open_order_is_answered_with_its_status():
    messages, events = run(tracker(MARIANA_MX, "donde esta mi pedido"))
    assert messages[0]["response"] == "utter_order_in_transit"
    assert messages[0]["order_id"] == "PED-1001"
    assert "entre 14:00 y 18:00" in messages[0]["eta"]
    assert events == [SlotSet("order_choices", None)]


def test_whatsapp_style_sender_is_normalised():
    messages, _ = run(tracker("whatsapp:+5215512345678", "mi pedido?"))
    assert messages[0]["order_id"] == "PED-1001"


def test_several_orders_are_offered_as_buttons_and_remembered():
    messages, events = run(tracker(JULIAN_AR, "y mi compra?"))
    assert messages[0]["response"] == "utter_ask_which_order"
    assert messages[0]["count"] == "3"
    assert [button["payload"] for button in messages[0]["buttons"]] == [
        '/inform{"order_id":"PED-1004"}',
        '/inform{"order_id":"PED-1005"}',
        '/inform{"order_id":"PED-1003"}',
    ]
    offered = events[0].get("value")
    assert [option["id"] for option in offered] == ["PED-1004", "PED-1005", "PED-1003"]


def test_a_numbered_answer_picks_from_the_offered_orders():
    _, events = run(tracker(JULIAN_AR, "y mi compra?"))
    offered = events[0]["value"]
    messages, events = run(
        tracker(JULIAN_AR, "la 2 porfa", slots={"order_choices": offered}, intent="inform")
    )
    assert (messages[0]["response"], messages[0]["order_id"]) == ("utter_order_in_transit", "PED-1005")
    assert events == [SlotSet("order_choices", None)]


def test_button_payload_entity_wins():
    messages, _ = run(
        tracker(JULIAN_AR, '/inform{"order_id":"PED-1003"}', [order_entity("PED-1003")], intent="inform")
    )
    assert (messages[0]["response"], messages[0]["order_id"]) == ("utter_order_created", "PED-1003")


def test_no_open_orders_asks_for_the_number_then_finds_it():
    messages, _ = run(tracker(ROSA_PE, "como va mi pedido"))
    assert messages[0]["response"] == "utter_no_open_orders"
    assert messages[0]["name"] == "Rosa"
    messages, _ = run(tracker(ROSA_PE, "es el 1007", [order_entity("1007")], intent="inform"))
    assert messages[0]["response"] == "utter_order_delivered"


def test_customer_with_no_orders_is_told_so():
    messages, _ = run(tracker(CAMILA_CL, "mi pedido"))
    assert messages[0]["response"] == "utter_no_open_orders"


def test_another_customers_order_is_not_revealed():
    others, _ = run(tracker(MARIANA_MX, "pedido PED-1003", [order_entity("PED-1003")]))
    missing, _ = run(tracker(MARIANA_MX, "pedido PED-9999", [order_entity("PED-9999")]))
    assert [m["response"] for m in others] == ["utter_order_not_found"]
    assert others == missing  # nothing tells an existing order of someone else from a missing one
    assert not {"order_id", "items", "eta", "when"} & set(others[0])


def test_unknown_sender_and_non_phone_sender():
    assert run(tracker(STRANGER, "mi pedido"))[0][0]["response"] == "utter_unknown_customer"
    assert run(tracker("a1b2c3d4e5", "mi pedido"))[0][0]["response"] == "utter_unknown_customer"


def test_backend_down_gets_a_polite_message_not_a_crash(wire):
    class DownCrm:
        def customer_by_phone(self, phone):
            raise BackendUnavailable("connection refused")

    wire(backends=Backends(crm=DownCrm(), erp=None, cases=None))
    messages, events = run(tracker(MARIANA_MX, "mi pedido"))
    assert [m["response"] for m in messages] == ["utter_systems_down"]
    assert events == [SlotSet("handoff_reason", "backend_unavailable")]  # if they accept a person, why
