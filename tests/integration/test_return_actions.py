"""return_form's actions with rasa_sdk trackers over the demo CRM/ERP (SQLite, PostgreSQL): the
guided return or exchange from the request to the case with its management ID and instructions,
each reason it cannot be done, and the refund or voucher told when an agent resolves the case."""

import asyncio
from dataclasses import replace
from datetime import timedelta

import pytest
from rasa_sdk import Tracker
from rasa_sdk.events import FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions import returns
from actions.handoff import handoff_events
from actions.returns import (
    ActionAskReturnConfirmed,
    ActionAskReturnItem,
    ActionReturnReset,
    ValidateReturnForm,
)
from bot.adapters.rest import RestCaseBook, RestCrm, RestErp
from bot.case_types import case_catalogue
from bot.case_work import RESOLVED, change_status
from bot.clock import FixedClock
from bot.handoff.rules import Reason
from bot.records import CaseKind
from bot.returns import return_rules
from tests.action_helpers import DOMAIN, order_entity
from tests.conftest import CLOCK, JULIAN_AR, LUCIA_MX, MARIANA_MX, ROSA_PE, STRANGER, TODAY, written_day
from tests.harness import free_port
from tests.rest_fixtures import client_for

VALENTINA_CO = "+573114445566"  # PED-1011 delivered 3 days ago (coffee maker + pillow), PED-1012 45 days ago
SLOTS = (
    "return_order",
    "return_items",
    "return_item",
    "return_reason",
    "return_photos",
    "return_resolution",
    "return_exchange_for",
    "return_confirmed",
    "return_said",
)


@pytest.fixture(autouse=True)
def use_demo(wire, demo):
    wire(backends=demo)


def tracker(sender, text, intent="inform", slots=None, entities=(), media=()) -> Tracker:
    """As Rasa sends it to the validation: the customer's message, then the form's own execution."""
    message = {"event": "user", "text": text, "parse_data": {"intent": {"name": intent}}}
    history = [
        {"event": "action", "name": "action_listen"},
        message,
        {"event": "slot", "name": "requested_slot"},
        {"event": "action", "name": "return_form"},
    ]
    metadata = {"channel": "whatsapp"}
    if media:
        metadata["media"] = [{"url": url, "content_type": "image/jpeg"} for url in media]
    return Tracker(
        sender_id=sender,
        slots={"order_choices": None, "requested_slot": None, **dict.fromkeys(SLOTS), **(slots or {})},
        latest_message={
            "text": text,
            "intent": {"name": intent, "confidence": 0.99},
            "entities": list(entities),
            "metadata": metadata,
        },
        events=history,
        paused=False,
        followup_action=None,
        active_loop={"name": "return_form"},
        latest_action_name="return_form",
    )


def entity(name, value):
    return {"entity": name, "value": value, "start": 0, "end": len(value)}


class Conversation:
    """The form turn by turn: each answer validated with the slots the previous turns set."""

    def __init__(self, phone: str) -> None:
        self.phone = phone
        self.slots: dict = {}
        self.said: list[dict] = []

    def say(self, text, intent="inform", entities=(), media=()) -> list[str]:
        dispatcher = CollectingDispatcher()
        on = tracker(self.phone, text, intent, self.slots, entities, media)
        events = asyncio.run(ValidateReturnForm().run(dispatcher, on, DOMAIN))
        self.slots.update({e["name"]: e["value"] for e in events if e.get("event") == "slot"})
        if not any(e.get("name") == "requested_slot" for e in events):
            # rasa_sdk leaves the next step to Rasa's form when every step is required
            # (photos and the exchange's product): the first one still empty.
            form = ValidateReturnForm()
            steps = asyncio.run(
                form.required_slots([], dispatcher, tracker(self.phone, "", slots=self.slots), DOMAIN)
            )
            self.slots["requested_slot"] = next(
                (step for step in steps if self.slots.get(step) is None), None
            )
        self.said = dispatcher.messages
        return [message.get("response") for message in dispatcher.messages]

    @property
    def asks(self) -> str | None:
        return self.slots.get("requested_slot")

    def ask(self, action) -> list[dict]:
        dispatcher = CollectingDispatcher()
        asyncio.run(action.run(dispatcher, tracker(self.phone, "", slots=self.slots), DOMAIN))
        return dispatcher.messages


def test_eligible_refund_opens_the_case_with_pickup_instructions_and_tells_the_refund_when_resolved(demo):
    chat = Conversation(VALENTINA_CO)
    assert chat.say("hola quiero devolver la cafetera", "return_request") == []
    # The order is named by its product; it has two, so the customer picks one.
    assert chat.slots["return_order"] == "PED-1011" and chat.asks == "return_item"
    asked = chat.ask(ActionAskReturnItem())[0]
    assert asked["response"] == "utter_ask_return_item" and "1. Cafetera espresso" in asked["items"]
    chat.say("1")
    assert chat.slots["return_item"] == "Cafetera espresso" and chat.asks == "return_reason"
    chat.say("/inform", entities=[entity("return_reason", "changed_mind")])
    assert chat.asks == "return_resolution"  # no photos for a change of mind
    chat.say("/inform", entities=[entity("return_resolution", "refund")])
    assert chat.asks == "return_confirmed"
    summary = chat.ask(ActionAskReturnConfirmed())[0]
    assert summary["item"] == "Cafetera espresso" and summary["resolution"] == "el reembolso de tu dinero"
    said = chat.say("si", "affirm")
    assert said == ["utter_return_opened", "utter_return_outcome_refund"]
    assert chat.slots["return_confirmed"] is True and chat.asks is None
    assert chat.said[0]["instructions"] == return_rules().handover["pickup"]  # electrodomésticos
    case = demo.cases.case(chat.said[0]["case_id"])
    assert case.kind is CaseKind.RETURN_REQUEST and case.customer_phone == VALENTINA_CO
    assert {key: case.details[key] for key in ("order_id", "item", "category", "reason", "resolution")} == {
        "order_id": "PED-1011",
        "item": "Cafetera espresso",
        "category": "electrodomesticos",
        "reason": "changed_mind",
        "resolution": "refund",
    }
    assert case.details["text"] == "hola quiero devolver la cafetera"  # as they wrote it, for the agent
    assert case_catalogue().type_of(case).missing(case) == []
    # An agent resolves it in the console: the customer is told the refund.
    change_status(demo.cases, case, RESOLVED, "ana", CLOCK.now())
    told = case_catalogue().update_for(demo.cases.case(case.id), RESOLVED)
    assert "reembolsamos" in told and case.id in told and "Cafetera espresso" in told


def test_eligible_exchange_with_photos_from_a_damaged_item(demo):
    chat = Conversation(ROSA_PE)
    chat.say("me llego rota la olla arrocera 😡", "wrong_or_damaged_item")
    # One order, one product, the reason said already: the photos come next.
    assert chat.slots["return_order"] == "PED-1007" and chat.slots["return_item"] == "Olla arrocera"
    assert chat.slots["return_reason"] == "damaged" and chat.asks == "return_photos"
    assert chat.say("ahi va", "inform") == ["utter_return_explain_photos"]  # words, no photo
    assert chat.asks == "return_photos"
    photos = ("https://media.example/olla1.jpg", "https://media.example/olla2.jpg")
    assert chat.say("", "share_media", media=photos) == ["utter_return_photos_received"]
    chat.say("prefiero que me la cambien por otra")
    assert chat.slots["return_resolution"] == "exchange" and chat.asks == "return_exchange_for"
    chat.say("la misma olla pero de 1.8 litros")
    assert chat.asks == "return_confirmed"
    assert chat.say("dale", "affirm") == ["utter_return_opened", "utter_return_outcome_exchange"]
    case = demo.cases.case(chat.said[0]["case_id"])
    assert case.kind is CaseKind.EXCHANGE_REQUEST
    assert case.details["media_url"] == photos[0] and case.details["media_url_2"] == photos[1]
    assert case.details["exchange_for"] == "la misma olla pero de 1.8 litros"
    assert (
        case_catalogue().type_of(case).id == "exchange" and case_catalogue().type_of(case).missing(case) == []
    )


def test_an_order_on_its_way_cannot_be_returned_yet_and_gets_its_options(demo):
    chat = Conversation(MARIANA_MX)
    assert chat.say("quiero devolver la licuadora, vino rota", "return_request") == [
        "utter_return_not_eligible_on_its_way"
    ]
    assert chat.said[0]["order_id"] == "PED-1001" and chat.slots["return_confirmed"] is False
    assert demo.cases.list_cases() == []


def test_an_order_not_shipped_offers_the_cancellation(demo):
    chat = Conversation(LUCIA_MX)
    assert chat.say("quiero devolver mi pedido", "return_request") == [
        "utter_return_not_eligible_not_shipped"
    ]
    buttons = DOMAIN["responses"]["utter_return_not_eligible_not_shipped"][0]["buttons"]
    assert buttons[0]["payload"] == "/cancel_order"


def test_a_window_passed_says_when_it_was_delivered_and_when_it_ended(demo):
    chat = Conversation(VALENTINA_CO)
    assert chat.say("quiero devolver la mochila", "return_request") == [
        "utter_return_not_eligible_window_passed"
    ]
    told = chat.said[0]
    # Delivered 45 days ago; accessories have 15 days from the delivery day.
    assert told["days"] == "15" and told["item"] == "Mochila urbana"
    assert told["delivered_on"] in written_day(-45) and told["last_day"] in written_day(-30)
    assert chat.slots["return_confirmed"] is False and demo.cases.list_cases() == []


def test_a_category_not_returnable_by_choice_says_so_but_a_damaged_one_comes_back(demo):
    chat = Conversation(VALENTINA_CO)
    chat.say("quiero devolver la almohada, no me gusto", "return_request")
    assert chat.slots["return_reason"] == "changed_mind" and chat.asks == "return_item"
    assert chat.say("2") == ["utter_return_not_eligible_not_returnable"]
    assert chat.said[0]["category"] == "almohadas y colchones" and chat.slots["return_confirmed"] is False
    damaged = Conversation(VALENTINA_CO)
    damaged.say("la almohada vino rota", "wrong_or_damaged_item")
    damaged.say("la almohada")
    assert damaged.slots["return_item"] == "Almohada viscoelástica" and damaged.asks == "return_photos"


def test_no_at_the_confirmation_opens_nothing(demo):
    chat = Conversation(VALENTINA_CO)
    chat.say("quiero devolver la cafetera, ya no la quiero", "return_request")
    chat.say("la cafetera")
    chat.say("un vale porfa")
    assert chat.slots["return_resolution"] == "voucher" and chat.asks == "return_confirmed"
    assert chat.say("no", "deny") == ["utter_return_cancelled"]
    assert chat.slots["return_confirmed"] is False and demo.cases.list_cases() == []


def test_leaving_in_the_middle_opens_nothing(demo):
    chat = Conversation(VALENTINA_CO)
    chat.say("quiero devolver la cafetera", "return_request")
    assert chat.say("cancelar", "deny") == ["utter_return_cancelled"]
    assert chat.slots["return_confirmed"] is False


def test_several_orders_are_offered_delivered_first_and_someone_elses_is_not_found(demo):
    chat = Conversation(MARIANA_MX)
    chat.say("quiero hacer una devolucion", "return_request")
    offered = [option["id"] for option in chat.slots["order_choices"]]
    assert offered == ["PED-1002", "PED-1001"] and chat.asks == "return_order"
    chat.say("1")
    assert chat.slots["return_order"] == "PED-1002" and chat.slots["return_item"] == "Juego de sartenes"
    stranger = Conversation(VALENTINA_CO)
    assert stranger.say("devolver el pedido 1002", "return_request", [order_entity("1002")]) == [
        "utter_order_not_found"
    ]


def test_asking_twice_gives_the_same_management_id(demo):
    ids = []
    for _ in range(2):
        chat = Conversation(ROSA_PE)
        chat.say("la olla arrocera llego rota", "wrong_or_damaged_item")
        chat.say("no tengo fotos", "deny")
        chat.say("/inform", entities=[entity("return_resolution", "voucher")])
        chat.say("si", "affirm")
        ids.append(chat.said[0]["case_id"])
    assert ids[0] == ids[1] and len(demo.cases.list_cases()) == 1


def down_url() -> str:
    """A CRM/ERP over HTTP that refuses connections: nothing listens on the port."""
    return f"http://127.0.0.1:{free_port()}/v1"


def test_the_crm_and_erp_down_end_the_form_honestly(demo, wire):
    wire(backends=replace(demo, crm=RestCrm(client_for(down_url())), erp=RestErp(client_for(down_url()))))
    chat = Conversation(VALENTINA_CO)
    # Nothing can be checked: the request becomes a return case a person follows up.
    assert chat.say("quiero devolver la cafetera", "return_request") == [
        "utter_return_guide",
        "utter_return_case",
    ]
    assert chat.slots["return_confirmed"] is False
    [case] = demo.cases.list_cases()
    assert case.kind is CaseKind.RETURN_REQUEST and case.details["text"] == "quiero devolver la cafetera"


def test_the_erp_down_in_the_middle_says_so_and_opens_nothing(demo, wire):
    chat = Conversation(VALENTINA_CO)
    chat.say("quiero devolver la cafetera", "return_request")
    wire(backends=replace(demo, crm=RestCrm(client_for(down_url())), erp=RestErp(client_for(down_url()))))
    assert chat.say("1") == ["utter_return_systems_down"]
    assert chat.slots["return_confirmed"] is False and demo.cases.list_cases() == []


def test_a_number_not_on_file_gets_a_return_case_a_person_follows_up(demo):
    chat = Conversation(STRANGER)
    assert chat.say("quiero devolver algo que compre", "return_request") == [
        "utter_return_guide",
        "utter_return_case",
    ]
    assert demo.cases.case(chat.said[1]["case_id"]).customer_phone == STRANGER


def test_the_case_book_down_queues_the_return_with_its_id_and_the_instructions(demo, wire):
    wire(backends=replace(demo, cases=RestCaseBook(client_for(down_url()))))
    chat = Conversation(VALENTINA_CO)
    chat.say("la cafetera llego rota", "wrong_or_damaged_item")
    chat.say("1")
    chat.say("sin fotos")
    chat.say("/inform", entities=[entity("return_resolution", "refund")])
    assert chat.say("si", "affirm") == ["utter_return_queued", "utter_return_outcome_refund"]
    [entry] = demo.outbox.entries(status="pending")
    assert entry.management_id == chat.said[0]["case_id"] and chat.said[0]["instructions"]
    assert entry.payload["details"]["reason"] == "damaged" and entry.payload["kind"] == "return_request"


def test_the_window_is_read_again_at_the_confirmation(demo, wire, monkeypatch):
    chat = Conversation(VALENTINA_CO)
    chat.say("quiero devolver la cafetera", "return_request")
    chat.say("1")
    chat.say("/inform", entities=[entity("return_reason", "changed_mind")])
    chat.say("/inform", entities=[entity("return_resolution", "refund")])
    # The customer answers "sí" 28 days later: the 30 days from the delivery day are over.
    wire(clock=FixedClock(CLOCK.now() + timedelta(days=28)))
    assert chat.say("si", "affirm") == ["utter_return_not_eligible_window_passed"]
    assert demo.cases.list_cases() == []


def test_the_reset_clears_every_slot_of_the_form():
    dispatcher = CollectingDispatcher()
    events = asyncio.run(ActionReturnReset().run(dispatcher, tracker(VALENTINA_CO, ""), DOMAIN))
    assert {event["name"] for event in events} >= set(SLOTS) and all(e["value"] is None for e in events)


def test_every_response_the_form_sends_is_in_the_domain():
    sent = set(returns.NOT_ELIGIBLE_RESPONSES.values()) | set(returns.NO_ORDER_RESPONSES.values())
    sent |= {f"utter_return_outcome_{value}" for value in ("refund", "voucher", "exchange")}
    sent |= {
        "utter_return_opened",
        "utter_return_queued",
        "utter_return_cancelled",
        "utter_return_systems_down",
        "utter_return_photos_received",
        "utter_ask_return_order",
        "utter_ask_return_item",
        "utter_ask_return_reason",
        "utter_ask_return_photos",
        "utter_ask_return_resolution",
        "utter_ask_return_exchange_for",
        "utter_ask_return_confirmed",
    }
    assert sent <= set(DOMAIN["responses"]), sorted(sent - set(DOMAIN["responses"]))
    assert TODAY  # the demo is anchored on the suite's day


def test_a_reason_read_as_a_deny_is_the_reason_not_leaving(demo):
    chat = Conversation(VALENTINA_CO)
    chat.say("quiero devolver la cafetera", "return_request")
    chat.say("1")
    assert chat.say("ya no lo quiero", "deny") == []
    assert chat.slots["return_reason"] == "changed_mind" and chat.asks == "return_resolution"
    assert chat.say("no, mejor un vale", "deny") == []
    assert chat.slots["return_resolution"] == "voucher" and chat.asks == "return_confirmed"


def test_a_vip_customers_return_goes_to_a_person_as_a_case_request_would(demo):
    dispatcher = CollectingDispatcher()
    on = tracker(JULIAN_AR, "quiero devolver las zapatillas", "return_request")
    events = asyncio.run(ValidateReturnForm().run(dispatcher, on, DOMAIN))
    assert events == [
        SlotSet("return_confirmed", False),
        SlotSet("requested_slot", None),
        *handoff_events(Reason.VIP_CUSTOMER),
    ]
    assert demo.cases.list_cases() == []


def test_a_person_asked_inside_the_request_takes_it(demo):
    dispatcher = CollectingDispatcher()
    on = tracker(VALENTINA_CO, "me llego rota la cafetera, pasame con una persona", "wrong_or_damaged_item")
    events = asyncio.run(ValidateReturnForm().run(dispatcher, on, DOMAIN))
    assert events[-1] == FollowupAction("action_handoff")
