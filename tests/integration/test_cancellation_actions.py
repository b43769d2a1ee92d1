"""Self-service cancellation with rasa_sdk trackers over the demo CRM/ERP (SQLite, PostgreSQL):
an order not shipped yet is cancelled after the customer confirms, through the outbox; the
others get their options; someone else's order is one that does not exist. Then the write
queued while the ERP is down, applied by the outbox worker."""

import asyncio
from dataclasses import replace
from decimal import Decimal

import pytest
import sqlalchemy as sa
from rasa_sdk.executor import CollectingDispatcher

from actions.cancellation import ActionCancelOrder, ActionConfirmCancellation
from bot.adapters.base import BackendUnavailable
from bot.adapters.sql import SqlErp, delivery_slots, invoices, order_deliveries, orders
from bot.cases import is_case_id
from bot.messaging.inbound import Channel
from bot.messaging.store import MessagingStore
from bot.records import CaseKind, OrderState
from tests.action_helpers import DOMAIN, order_entity, tracker
from tests.conftest import CLOCK, JULIAN_AR, LUCIA_MX, MARIANA_MX, STRANGER, TODAY
from tests.outbox_helpers import later, messages_to, worker_for


@pytest.fixture(autouse=True)
def use_demo(wire, demo):
    wire(backends=demo)


def cancel(text, sender=LUCIA_MX, entities=()):
    dispatcher = CollectingDispatcher()
    events = asyncio.run(
        ActionCancelOrder().run(dispatcher, tracker(sender, text, entities, intent="cancel_order"), DOMAIN)
    )
    return dispatcher.messages, {e["name"]: e["value"] for e in events if e["event"] == "slot"}


def answer(intent, order_id, sender=LUCIA_MX, events=()):
    dispatcher = CollectingDispatcher()
    asked = tracker(
        sender, "si" if intent == "affirm" else "no", slots={"cancel_order_id": order_id}, intent=intent
    )
    asked.events = list(events)
    result = asyncio.run(ActionConfirmCancellation().run(dispatcher, asked, DOMAIN))
    return dispatcher.messages, result


def state_of(store, order_id):
    with store.connect() as conn:
        return conn.execute(sa.select(orders.c.state).where(orders.c.id == order_id)).scalar_one()


def set_state(store, order_id, state):
    with store.connect() as conn:
        conn.execute(orders.update().where(orders.c.id == order_id).values(state=state.value))


def booked_place(store, order_id):
    """(the order's window place, the places taken in it)."""
    with store.connect() as conn:
        slot = conn.execute(
            sa.select(order_deliveries.c.slot_id).where(order_deliveries.c.order_id == order_id)
        ).scalar_one()
        taken = conn.execute(sa.select(delivery_slots.c.booked).where(delivery_slots.c.id == slot)).scalar()
    return slot, taken


def test_an_order_not_shipped_is_cancelled_after_yes_with_a_management_id(demo, store):
    messages, slots = cancel("quiero cancelar mi pedido")
    assert [m["response"] for m in messages] == ["utter_ask_cancel_confirm"]
    assert (messages[0]["order_id"], slots["cancel_order_id"]) == ("PED-1010", "PED-1010")
    assert state_of(store, "PED-1010") == "created"  # nothing before the "sí"
    slot, taken = booked_place(store, "PED-1010")

    messages, events = answer("affirm", "PED-1010")

    assert [m["response"] for m in messages] == ["utter_cancel_done"]  # not paid: no refund note
    assert is_case_id(messages[0]["management_id"]) and messages[0]["order_id"] == "PED-1010"
    assert events == [{"event": "slot", "timestamp": None, "name": "cancel_order_id", "value": None}]
    assert state_of(store, "PED-1010") == "cancelled"
    assert demo.erp.order("PED-1010").cancelled_at is not None
    [entry] = demo.outbox.entries()
    assert (entry.kind, entry.status, entry.management_id) == (
        "order.cancel",
        "applied",
        messages[0]["management_id"],
    )
    if slot is not None:  # its place in the delivery window is free again
        assert booked_place(store, "PED-1010") == (None, None) and _taken(store, slot) == taken - 1


def _taken(store, slot):
    with store.connect() as conn:
        return conn.execute(
            sa.select(delivery_slots.c.booked).where(delivery_slots.c.id == slot)
        ).scalar_one()


def test_a_paid_order_gets_the_refund_note(demo, store):
    with store.connect() as conn:
        conn.execute(
            invoices.insert(),
            {"id": "F-9010", "customer_id": "C-006", "order_id": "PED-1010", "amount": Decimal("799.00"),
             "currency": "MXN", "issued_on": TODAY, "due_on": TODAY, "status": "paid"},
        )  # fmt: skip
    messages, _ = answer("affirm", "PED-1010")
    assert [m["response"] for m in messages] == ["utter_cancel_done", "utter_cancel_refund_note"]


def test_an_order_named_by_its_product_is_the_one_asked_about(demo):
    messages, slots = cancel("cancela el mate porfa", sender=JULIAN_AR)
    assert messages[0]["response"] == "utter_ask_cancel_confirm" and slots["cancel_order_id"] == "PED-1003"


def test_several_open_orders_are_offered_as_options(demo):
    messages, slots = cancel("quiero cancelar un pedido", sender=JULIAN_AR)
    assert messages[0]["response"] == "utter_ask_which_order_to_cancel" and messages[0]["count"] == "3"
    payloads = {button["payload"] for button in messages[0]["buttons"]}
    assert payloads == {
        f'/cancel_order{{"order_id":"{order}"}}' for order in ("PED-1003", "PED-1004", "PED-1005")
    }
    assert slots["cancel_order_id"] is None and len(slots["order_choices"]) == 3


@pytest.mark.parametrize(
    ("sender", "order", "response"),
    [
        (JULIAN_AR, "PED-1004", "utter_cancel_shipped"),  # out for delivery
        (JULIAN_AR, "PED-1005", "utter_cancel_shipped"),  # in transit
        (MARIANA_MX, "PED-1002", "utter_cancel_delivered"),
        (JULIAN_AR, "PED-1006", "utter_cancel_already"),
        (MARIANA_MX, "PED-1003", "utter_order_not_found"),  # Julián's
        (MARIANA_MX, "PED-9999", "utter_order_not_found"),
        (STRANGER, "PED-1003", "utter_order_not_found"),
    ],
)
def test_an_order_that_cannot_be_cancelled_gets_its_options_and_nothing_changes(
    demo, store, sender, order, response
):
    before = state_of(store, order) if order != "PED-9999" else None
    messages, slots = cancel(f"cancelar {order}", sender=sender, entities=[order_entity(order)])
    assert [m["response"] for m in messages] == [response] and slots["cancel_order_id"] is None
    assert demo.outbox.entries() == []
    if before:
        assert state_of(store, order) == before


def test_someone_elses_order_answers_exactly_like_one_that_does_not_exist(demo):
    others, _ = cancel("cancelar PED-1003", sender=MARIANA_MX, entities=[order_entity("PED-1003")])
    missing, _ = cancel("cancelar PED-9999", sender=MARIANA_MX, entities=[order_entity("PED-9999")])
    assert others == missing


def test_no_to_the_confirmation_keeps_the_order(demo, store):
    messages, events = answer("deny", "PED-1010")
    assert [m["response"] for m in messages] == ["utter_cancel_kept"]
    assert state_of(store, "PED-1010") == "created" and demo.outbox.entries() == []
    assert events[0]["name"] == "cancel_order_id" and events[0]["value"] is None


def test_an_order_that_ships_between_the_question_and_the_yes_is_not_cancelled(demo, store):
    set_state(store, "PED-1010", OrderState.IN_TRANSIT)
    messages, _ = answer("affirm", "PED-1010")
    assert [m["response"] for m in messages] == ["utter_cancel_too_late"]
    assert state_of(store, "PED-1010") == "in_transit" and demo.outbox.entries() == []


def test_a_yes_for_an_order_of_someone_else_in_the_slot_cancels_nothing(demo, store):
    # The slot is the assistant's, but the order is read again for the sender before the write.
    messages, _ = answer("affirm", "PED-1003", sender=LUCIA_MX)
    assert [m["response"] for m in messages] == ["utter_order_not_found"]
    assert state_of(store, "PED-1003") == "created"


def test_yes_to_the_offer_of_a_return_starts_the_guided_return(demo):
    offered = {
        "event": "bot",
        "data": {"buttons": DOMAIN["responses"]["utter_cancel_delivered"][0]["buttons"]},
    }
    messages, events = answer("affirm", None, sender=MARIANA_MX, events=[offered])
    assert messages == []
    assert events == [{"event": "followup", "timestamp": None, "name": "return_form"}]
    assert demo.cases.list_cases() == []  # the form opens the case once the customer confirms


def test_a_yes_or_no_with_nothing_to_confirm_changes_nothing(demo):
    for intent in ("affirm", "deny"):
        messages, _ = answer(intent, None)
        assert [m["response"] for m in messages] == ["utter_how_can_i_help"]
    assert demo.outbox.entries() == []


class DownErp(SqlErp):
    """The ERP refuses connections."""

    def orders_of(self, customer_id: str):
        raise BackendUnavailable("connection refused")


class WritesDownErp(SqlErp):
    """The ERP answers reads but its writes time out (a write path down, a restart)."""

    def cancel_order(self, order_id, customer_id, cancelled_at):
        raise BackendUnavailable("timeout")


def test_the_orders_unreadable_makes_the_request_a_cancellation_case(demo, wire, store):
    wire(backends=replace(demo, erp=DownErp(store)))
    messages, _ = cancel("quiero cancelar el pedido PED-1010", entities=[order_entity("PED-1010")])
    assert [m["response"] for m in messages] == ["utter_cancel_order_guide", "utter_cancel_order_case"]
    case = demo.cases.case(messages[1]["case_id"])
    assert (case.kind, case.details["order_id"]) == (CaseKind.CANCEL_ORDER, "PED-1010")


def test_the_orders_unreadable_at_the_yes_cancels_nothing_and_says_so(demo, wire, store):
    wire(backends=replace(demo, erp=DownErp(store)))
    messages, _ = answer("affirm", "PED-1010")
    assert [m["response"] for m in messages] == ["utter_cancel_failed"]
    assert state_of(store, "PED-1010") == "created" and demo.outbox.entries() == []


@pytest.fixture
def lucia_wrote(store):
    """Lucía wrote on WhatsApp just now: the confirmation fits in the 24-hour window."""
    MessagingStore(store, CLOCK).record_inbound(LUCIA_MX, Channel.WHATSAPP)


def test_a_cancellation_queued_while_the_erp_is_down_is_applied_once_by_the_worker(
    demo, wire, store, lucia_wrote
):
    wire(backends=replace(demo, erp=WritesDownErp(store)))
    messages, _ = answer("affirm", "PED-1010")
    assert [m["response"] for m in messages] == ["utter_cancel_queued"]
    [entry] = demo.outbox.entries(status="pending")
    assert entry.management_id == messages[0]["management_id"] and entry.kind == "order.cancel"
    again, _ = answer("affirm", "PED-1010")  # a second "sí": the same queued cancellation
    assert again[0]["management_id"] == entry.management_id and len(demo.outbox.entries()) == 1
    assert state_of(store, "PED-1010") == "created"

    worker = worker_for(store, demo, clock=later())
    assert asyncio.run(worker.run_once()) == 1
    assert asyncio.run(worker.run_once()) == 0

    assert state_of(store, "PED-1010") == "cancelled"
    [sent] = messages_to(store, LUCIA_MX)
    assert "PED-1010" in sent and entry.management_id in sent and "cancel" in sent.lower()


def test_a_queued_cancellation_of_an_order_that_shipped_meanwhile_tells_the_customer(
    demo, wire, store, lucia_wrote
):
    wire(backends=replace(demo, erp=WritesDownErp(store)))
    answer("affirm", "PED-1010")
    set_state(store, "PED-1010", OrderState.IN_TRANSIT)
    asyncio.run(worker_for(store, demo, clock=later()).run_once())
    assert state_of(store, "PED-1010") == "in_transit"
    [sent] = messages_to(store, LUCIA_MX)
    assert "PED-1010" in sent and ("rechazarlo" in sent or "Recházalo" in sent)


def test_every_response_the_actions_send_is_in_the_domain():
    from actions.cancellation import SITUATION_RESPONSES

    sent = set(SITUATION_RESPONSES.values()) | {
        "utter_ask_cancel_confirm", "utter_ask_which_order_to_cancel", "utter_cancel_done",
        "utter_cancel_refund_note", "utter_cancel_queued", "utter_cancel_too_late", "utter_cancel_kept",
        "utter_cancel_failed", "utter_cancel_confirmed_later", "utter_cancel_queued_too_late",
    }  # fmt: skip
    assert sent <= set(DOMAIN["responses"])
