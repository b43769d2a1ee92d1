"""reschedule_form's actions with rasa_sdk trackers, over the demo data loaded today (SQLite, PostgreSQL)."""

import asyncio
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml
from rasa_sdk import Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions import reschedule as reschedule_actions
from actions.reschedule import (
    ActionAskRescheduleConfirmed,
    ActionAskRescheduleWindow,
    ActionRescheduleReset,
    ValidateRescheduleForm,
)
from bot.adapters.base import BackendUnavailable
from bot.adapters.outbox_sql import Outbox
from bot.adapters.sql import SqlCaseBook, SqlCrm, SqlErp, delivery_slots
from bot.backends import Backends
from bot.cases import is_case_id
from bot.clock import local_day
from bot.demo import load_demo
from bot.outbox_worker import OutboxWorker
from bot.settings import DEFAULT_DEMO_DATA
from tests.conftest import CAMILA_CL, CLOCK, JULIAN_AR, LUCIA_MX, STRANGER

DOMAIN = yaml.safe_load((Path(__file__).parents[2] / "domain.yml").read_text())
SLOTS = (
    "reschedule_order",
    "reschedule_window",
    "reschedule_confirmed",
    "reschedule_offer",
    "reschedule_misses",
    "reschedule_context",
    "reschedule_when",
)


@pytest.fixture
def live(store, settings, wire) -> Backends:
    """The demo anchored on the real today: the actions read the real clock."""
    today = local_day(CLOCK.now(), settings.bot_timezone)
    load_demo(store, DEFAULT_DEMO_DATA, settings, today=today, force=True)
    found = Backends(crm=SqlCrm(store), erp=SqlErp(store), cases=SqlCaseBook(store), outbox=Outbox(store))
    wire(backends=found)
    return found


def tracker(sender, text, intent="inform", slots=None, entities=(), action="action_listen") -> Tracker:
    """As Rasa sends it to the validation: the history, then the form's own execution last."""
    message = {"event": "user", "text": text, "parse_data": {"intent": {"name": intent}}}
    history = [{"event": "action", "name": "action_listen"}, message]
    if action != "action_listen":  # the form resumes after an action answered the message
        history += [{"event": "action", "name": action}, {"event": "bot", "text": "..."}]
    history += [{"event": "slot", "name": "requested_slot"}, {"event": "action", "name": "reschedule_form"}]
    return Tracker(
        sender_id=sender,
        slots={"order_choices": None, "requested_slot": None, **dict.fromkeys(SLOTS), **(slots or {})},
        latest_message={
            "text": text,
            "intent": {"name": intent, "confidence": 0.99},
            "entities": list(entities),
            "metadata": {"channel": "whatsapp"},
        },
        events=history,
        paused=False,
        followup_action=None,
        active_loop={"name": "reschedule_form"},
        latest_action_name="reschedule_form",
    )


def run(action, on: Tracker):
    dispatcher = CollectingDispatcher()
    events = asyncio.run(action.run(dispatcher, on, DOMAIN))
    return [message.get("response") for message in dispatcher.messages], events, dispatcher.messages


def slots_of(events) -> dict:
    return {event["name"]: event["value"] for event in events if event.get("event") == "slot"}


def validate(on: Tracker):
    return run(ValidateRescheduleForm(), on)


def reads_nothing(events, step: str) -> bool:
    """The form took nothing from the message: rasa_sdk only restates the step asked, so Rasa
    rejects the form's turn (the rules answer) or, back after an answer, asks that step again."""
    return events == [SlotSet("requested_slot", step)]


def start(phone, text="quiero cambiar la entrega", entities=()):
    return validate(tracker(phone, text, "reschedule_delivery", entities=entities))


def test_one_open_order_goes_straight_to_the_next_three_windows(live):
    responses, events, _ = start(LUCIA_MX)
    slots = slots_of(events)
    assert responses == []
    assert slots["reschedule_order"] == "PED-1010" and slots["requested_slot"] == "reschedule_window"
    assert len(slots["reschedule_offer"]) == 3
    assert all(len(option["title"]) <= 20 for option in slots["reschedule_offer"])
    current = live.erp.order("PED-1010").window.start.isoformat()
    assert all(option["start"] != current for option in slots["reschedule_offer"])


def test_the_window_step_shows_step_two_of_three_with_numbered_buttons(live):
    _, events, _ = start(LUCIA_MX)
    offer = slots_of(events)["reschedule_offer"]
    responses, _, messages = run(
        ActionAskRescheduleWindow(),
        tracker(LUCIA_MX, "", slots={"reschedule_order": "PED-1010", "reschedule_offer": offer}),
    )
    assert responses == ["utter_ask_reschedule_window"]
    assert [button["title"] for button in messages[0]["buttons"]] == [option["title"] for option in offer]
    assert all(
        "Paso 2 de 3" in variation["text"] for variation in DOMAIN["responses"]["utter_ask_reschedule_window"]
    )


def pick_and_confirm(live, choice="2"):
    _, events, _ = start(LUCIA_MX)
    state = slots_of(events)
    _, events, _ = validate(tracker(LUCIA_MX, choice, slots={**state, "requested_slot": "reschedule_window"}))
    state |= slots_of(events)
    return state


def test_a_numbered_choice_then_yes_moves_the_delivery_and_gives_a_management_id(live):
    state = pick_and_confirm(live)
    assert state["reschedule_window"] == state["reschedule_offer"][1]
    assert state["requested_slot"] == "reschedule_confirmed"

    responses, _, messages = run(
        ActionAskRescheduleConfirmed(),
        tracker(LUCIA_MX, "2", slots={**state, "requested_slot": "reschedule_confirmed"}),
    )
    assert responses == ["utter_ask_reschedule_confirmed"]
    assert ", de " in messages[0]["window"] and " a " in messages[0]["window"]

    responses, events, messages = validate(
        tracker(LUCIA_MX, "si", "affirm", slots={**state, "requested_slot": "reschedule_confirmed"})
    )
    assert responses == ["utter_reschedule_done"]
    assert is_case_id(messages[0]["case_id"])
    assert slots_of(events)["requested_slot"] is None
    moved = live.erp.order("PED-1010").window
    assert moved.start.isoformat() == state["reschedule_window"]["start"]
    [change] = live.erp.schedule_history("PED-1010")
    assert (change.id, change.phone, change.channel) == (messages[0]["case_id"], LUCIA_MX, "whatsapp")


def test_a_written_day_and_part_of_day_picks_that_window(live):
    _, events, _ = start(LUCIA_MX)
    state = {**slots_of(events), "requested_slot": "reschedule_window"}
    wanted = state["reschedule_offer"][-1]
    start_at = datetime.fromisoformat(wanted["start"]).astimezone(ZoneInfo("America/Mexico_City"))
    part = "por la mañana" if start_at.hour < 12 else "por la tarde"
    responses, events, _ = validate(tracker(LUCIA_MX, f"el {start_at:%d/%m} {part}", slots=state))
    assert responses == []
    assert slots_of(events)["reschedule_window"]["id"] == wanted["id"]
    assert slots_of(events)["requested_slot"] == "reschedule_confirmed"


def test_a_day_written_at_the_confirmation_is_a_change_of_mind_read_like_the_window_step(live):
    state = {**pick_and_confirm(live, "1"), "requested_slot": "reschedule_confirmed"}
    wanted = state["reschedule_offer"][-1]
    start_at = datetime.fromisoformat(wanted["start"]).astimezone(ZoneInfo("America/Mexico_City"))
    part = "por la mañana" if start_at.hour < 12 else "por la tarde"
    responses, events, _ = validate(tracker(LUCIA_MX, f"mejor el {start_at:%d/%m} {part}", slots=state))
    assert responses == []
    slots = slots_of(events)
    assert slots["reschedule_window"]["id"] == wanted["id"] and slots["reschedule_confirmed"] is None
    assert slots["requested_slot"] == "reschedule_confirmed"  # asked again, for the new window


def test_resumed_after_a_handoff_the_form_asks_its_step_without_reading_again(live):
    """Rasa re-activates the form with its filled slots as candidates after the form's execution."""
    state = {**pick_and_confirm(live), "requested_slot": "reschedule_confirmed"}
    resumed = tracker(LUCIA_MX, "4", "inform", slots=state, action="action_record_satisfaction")
    resumed.events += [
        {"event": "slot", "name": name, "value": state[name]}
        for name in ("reschedule_order", "reschedule_window")
    ]
    responses, events, _ = validate(resumed)
    assert responses == [] and slots_of(events)["requested_slot"] == "reschedule_confirmed"
    assert slots_of(events)["reschedule_window"] == state["reschedule_window"]
    assert live.erp.schedule_history("PED-1010") == []


def test_a_day_too_far_ahead_gets_the_reason_and_the_nearest_windows(live):
    _, events, _ = start(LUCIA_MX)
    state = {**slots_of(events), "requested_slot": "reschedule_window"}
    far = CLOCK.now().astimezone(ZoneInfo("America/Mexico_City")) + timedelta(days=40)
    responses, events, messages = validate(tracker(LUCIA_MX, f"el {far:%d/%m/%Y}", slots=state))
    assert responses == ["utter_reschedule_refused_too_far"]
    assert messages[0]["max_days"] == "14"
    assert len(slots_of(events)["reschedule_offer"]) == 3
    assert slots_of(events)["requested_slot"] == "reschedule_window"


def test_no_at_the_confirmation_offers_the_windows_again(live):
    state = pick_and_confirm(live)
    responses, events, _ = validate(
        tracker(LUCIA_MX, "no", "deny", slots={**state, "requested_slot": "reschedule_confirmed"})
    )
    assert responses == ["utter_reschedule_choose_again"]
    assert slots_of(events)["reschedule_window"] is None
    assert slots_of(events)["requested_slot"] == "reschedule_window"
    assert live.erp.schedule_history("PED-1010") == []


@pytest.mark.parametrize(
    ("text", "intent"), [("cancelar", "deny"), ("salir", "opt_out"), ("mejor no", "deny")]
)
def test_leaving_at_any_step_changes_nothing(live, text, intent):
    state = pick_and_confirm(live)
    for step in ("reschedule_window", "reschedule_confirmed"):
        responses, events, _ = validate(
            tracker(LUCIA_MX, text, intent, slots={**state, "requested_slot": step})
        )
        assert responses == ["utter_reschedule_cancelled"]
        assert slots_of(events)["requested_slot"] is None
    assert live.erp.schedule_history("PED-1010") == []


def test_a_question_in_the_middle_is_left_to_the_rules_and_the_form_asks_again(live):
    state = {**pick_and_confirm(live), "requested_slot": "reschedule_confirmed"}
    step = "reschedule_confirmed"
    assert reads_nothing(
        validate(tracker(LUCIA_MX, "y donde esta el otro pedido?", "order_status", slots=state))[1], step
    )
    assert reads_nothing(validate(tracker(LUCIA_MX, "horario de atencion", "faq", slots=state))[1], step)
    # Back from the answer (not after action_listen): nothing to read, the form asks its step again.
    assert reads_nothing(
        validate(tracker(LUCIA_MX, "horario", "faq", slots=state, action="action_kb_answer"))[1], step
    )


def test_a_photo_in_the_middle_is_not_a_wrong_answer(live):
    _, events, _ = start(LUCIA_MX)
    state = {**slots_of(events), "requested_slot": "reschedule_window"}
    responses, events, _ = validate(tracker(LUCIA_MX, "/share_media", "share_media", slots=state))
    assert responses == [] and reads_nothing(events, "reschedule_window")  # the rule acknowledges it; no miss


def test_two_answers_not_understood_in_a_row_explain_and_offer_a_person(live):
    _, events, _ = start(LUCIA_MX)
    state = {**slots_of(events), "requested_slot": "reschedule_window"}
    responses, events, _ = validate(tracker(LUCIA_MX, "la verdad no se", "nlu_fallback", slots=state))
    assert responses == ["utter_reschedule_not_understood"]
    state |= slots_of(events)
    responses, events, _ = validate(tracker(LUCIA_MX, "asdf qwerty", "nlu_fallback", slots=state))
    assert responses == ["utter_reschedule_explain_window"]
    buttons = DOMAIN["responses"]["utter_reschedule_explain_window"][0]["buttons"]
    assert buttons == [{"title": "Hablar con persona", "payload": "/human_handoff"}]
    assert slots_of(events)["reschedule_misses"] == 0


def test_losing_the_last_place_offers_the_next_windows(live, store):
    state = pick_and_confirm(live, "1")
    with store.engine.begin() as conn:  # someone else takes every place of the chosen window
        conn.execute(
            delivery_slots.update()
            .where(delivery_slots.c.id == state["reschedule_window"]["id"])
            .values(booked=delivery_slots.c.capacity)
        )
    responses, events, _ = validate(
        tracker(LUCIA_MX, "si", "affirm", slots={**state, "requested_slot": "reschedule_confirmed"})
    )
    assert responses == ["utter_reschedule_window_taken"]
    slots = slots_of(events)
    assert slots["requested_slot"] == "reschedule_window" and slots["reschedule_window"] is None
    assert state["reschedule_window"]["id"] not in [option["id"] for option in slots["reschedule_offer"]]
    assert live.erp.schedule_history("PED-1010") == []


def test_several_orders_ask_which_and_one_out_for_delivery_is_explained(live):
    _, events, _ = start(JULIAN_AR)
    slots = slots_of(events)
    assert slots["requested_slot"] == "reschedule_order"
    assert [option["id"] for option in slots["order_choices"]] == ["PED-1004", "PED-1005", "PED-1003"]
    responses, events, messages = validate(tracker(JULIAN_AR, "1", slots={**slots}))
    assert responses == ["utter_reschedule_blocked_out_for_delivery"]
    assert messages[0]["order_id"] == "PED-1004"
    assert slots_of(events)["requested_slot"] is None


def test_customers_without_a_movable_order_get_the_status_flows_answers(live):
    assert start(STRANGER)[0] == ["utter_unknown_customer"]
    assert start(CAMILA_CL)[0] == ["utter_no_open_orders"]
    assert start(LUCIA_MX, "cambiar entrega del PED-1001", [{"entity": "order_id", "value": "PED-1001"}])[
        0
    ] == [
        "utter_order_not_found"  # Mariana's order: the same answer as one that does not exist
    ]


def test_a_crm_or_erp_down_gets_a_polite_message_and_an_offer_of_a_person(live, monkeypatch):
    def down(*_args, **_kwargs):
        raise BackendUnavailable("database unavailable")

    monkeypatch.setattr(live.crm, "customer_by_phone", down)
    responses, events, _ = start(LUCIA_MX)
    assert responses == ["utter_reschedule_systems_down"]
    assert slots_of(events)["requested_slot"] is None
    assert (
        DOMAIN["responses"]["utter_reschedule_systems_down"][0]["buttons"][0]["payload"] == "/human_handoff"
    )


def test_the_form_slots_are_cleared_when_it_ends(live):
    _, events, _ = run(ActionRescheduleReset(), tracker(LUCIA_MX, ""))
    assert {event["name"] for event in events} >= set(SLOTS) and all(
        event["value"] is None for event in events
    )
    assert all(isinstance(event, dict) for event in events) and SlotSet("reschedule_order", None) in events


# --- the ERP down at the confirmation: the change is queued, not lost ---------------------------------


def test_an_erp_down_at_the_confirmation_queues_the_change_and_the_outbox_applies_it_once(
    live, store, monkeypatch
):
    state = pick_and_confirm(live)
    assert state["reschedule_context"]["customer_id"] == "C-006"

    def down(*_args, **_kwargs):
        raise BackendUnavailable("ERP unavailable")

    working = {name: getattr(live.erp, name) for name in ("order", "reschedule")}
    for name in working:
        monkeypatch.setattr(live.erp, name, down)
    responses, events, messages = validate(
        tracker(LUCIA_MX, "si", "affirm", slots={**state, "requested_slot": "reschedule_confirmed"})
    )
    assert responses == ["utter_reschedule_queued"]
    case_id = messages[0]["case_id"]
    assert is_case_id(case_id) and messages[0]["order_id"] == "PED-1010"
    assert ", de " in messages[0]["window"] and " a " in messages[0]["window"]  # absolute: read later
    assert slots_of(events)["requested_slot"] is None
    [queued] = Outbox(store).entries("pending")
    assert (queued.kind, queued.management_id) == ("delivery.reschedule", case_id)

    for name, method in working.items():  # the ERP is back
        monkeypatch.setattr(live.erp, name, method)
    told = []

    async def notify(phone, conversation_id, response, values):
        told.append((phone, response, values))

    later = lambda: CLOCK.now() + timedelta(hours=1)  # noqa: E731
    worker = OutboxWorker(Outbox(store), live, SqlCaseBook(store), notify, clock=later)
    assert asyncio.run(worker.run_once()) == 1
    assert asyncio.run(worker.run_once()) == 0
    [change] = live.erp.schedule_history("PED-1010")
    assert change.id == case_id and change.new_slot_id == state["reschedule_window"]["id"]
    assert live.erp.order("PED-1010").window.start.isoformat() == state["reschedule_window"]["start"]
    [(phone, response, values)] = told
    assert (phone, response) == (LUCIA_MX, "utter_reschedule_confirmed_later")
    assert values["management_id"] == case_id and values["order_id"] == "PED-1010"
    assert values["window"] == messages[0]["window"]


@pytest.mark.parametrize(
    "forged",
    [
        {"customer_id": "C-001"},  # another customer's id, the claim left as it was
        {"owner": None},  # no claim: the context of an older version, or made up
        {"owner": "v1.e30.AAAA"},  # a made-up claim
    ],
    ids=["other-customer", "no-claim", "made-up-claim"],
)
def test_an_erp_down_at_the_confirmation_with_a_forged_context_changes_nothing(
    live, store, monkeypatch, forged
):
    state = pick_and_confirm(live)
    context = {**state["reschedule_context"], **forged}
    state = {**state, "reschedule_context": context, "requested_slot": "reschedule_confirmed"}

    def down(*_args, **_kwargs):
        raise BackendUnavailable("ERP unavailable")

    monkeypatch.setattr(live.erp, "order", down)
    responses, _, _ = validate(tracker(LUCIA_MX, "si", "affirm", slots=state))
    assert responses == ["utter_reschedule_systems_down"]
    assert Outbox(store).entries("pending") == []


def test_an_erp_down_at_the_confirmation_for_another_sender_changes_nothing(live, store, monkeypatch):
    """The context copied into a stranger's tracker: the claim names Lucía's number, not theirs."""
    state = {**pick_and_confirm(live), "requested_slot": "reschedule_confirmed"}

    def down(*_args, **_kwargs):
        raise BackendUnavailable("ERP unavailable")

    monkeypatch.setattr(live.erp, "order", down)
    responses, _, _ = validate(tracker("+5255" + "19283746", "si", "affirm", slots=state))
    assert responses == ["utter_reschedule_systems_down"]
    assert Outbox(store).entries("pending") == []


def test_an_erp_down_at_the_confirmation_without_the_forms_context_changes_nothing(live, monkeypatch):
    state = {**pick_and_confirm(live), "reschedule_context": None, "requested_slot": "reschedule_confirmed"}

    def down(*_args, **_kwargs):
        raise BackendUnavailable("ERP unavailable")

    monkeypatch.setattr(live.erp, "order", down)
    responses, events, _ = validate(tracker(LUCIA_MX, "si", "affirm", slots=state))
    assert responses == ["utter_reschedule_systems_down"]
    assert slots_of(events)["requested_slot"] is None


# --- what the customer already said fills its steps (issue 16, family 8) ---


def _day_and_part(option: dict) -> str:
    """How a customer names the day and part of the day of an offered window: "el 03/12 por la tarde"."""
    start_at = datetime.fromisoformat(option["start"]).astimezone(ZoneInfo("America/Argentina/Buenos_Aires"))
    return f"el {start_at:%d/%m} " + ("por la mañana" if start_at.hour < 12 else "por la tarde")


def test_an_order_named_by_its_product_is_chosen_without_asking(live):
    responses, events, _ = start(JULIAN_AR, "necesito cambiar el dia de entrega de las zapatillas")
    slots = slots_of(events)
    assert responses == []
    assert slots["reschedule_order"] == "PED-1005" and slots["requested_slot"] == "reschedule_window"
    assert not slots.get("order_choices")


def test_the_last_order_is_the_most_recently_placed(live):
    _, events, _ = start(JULIAN_AR, "el ultimo que pedi, le cambian la entrega?")
    assert slots_of(events)["reschedule_order"] == "PED-1003"


def test_a_product_and_a_day_in_the_first_message_skip_to_the_confirmation(live):
    offer = slots_of(start(JULIAN_AR, "cambiar la entrega de las zapatillas")[1])["reschedule_offer"]
    wanted = offer[-1]
    said = f"pasame la entrega de las zapatillas para {_day_and_part(wanted)}"
    responses, events, _ = start(JULIAN_AR, said)
    slots = slots_of(events)
    assert responses == []
    assert slots["reschedule_order"] == "PED-1005"
    assert slots["reschedule_window"]["id"] == wanted["id"]
    assert slots["requested_slot"] == "reschedule_confirmed"


def test_a_dated_first_message_is_read_for_its_day_once(live, monkeypatch):
    offer = slots_of(start(JULIAN_AR, "cambiar la entrega de las zapatillas")[1])["reschedule_offer"]
    read: list[str] = []
    real = reschedule_actions.find_date

    def counting(text, local_now):
        read.append(text)
        return real(text, local_now)

    monkeypatch.setattr(reschedule_actions, "find_date", counting)
    said = f"pasame la entrega de las zapatillas para {_day_and_part(offer[-1])}"
    slots = slots_of(start(JULIAN_AR, said)[1])
    assert slots["reschedule_window"]["id"] == offer[-1]["id"]
    assert read == [said]


def test_a_day_given_before_the_order_is_kept_for_the_window_step(live):
    offer = slots_of(start(JULIAN_AR, "cambiar la entrega de las zapatillas")[1])["reschedule_offer"]
    wanted = offer[-1]
    state = slots_of(start(JULIAN_AR)[1])
    assert state["requested_slot"] == "reschedule_order"

    day = _day_and_part(wanted)
    responses, events, _ = validate(tracker(JULIAN_AR, day, slots=state))
    assert responses == ["utter_reschedule_date_noted"]
    state |= slots_of(events)
    assert state["reschedule_when"] == day and state["requested_slot"] == "reschedule_order"

    responses, events, _ = validate(tracker(JULIAN_AR, "2", slots=state))  # PED-1005, the zapatillas
    slots = slots_of(events)
    assert responses == []
    assert slots["reschedule_order"] == "PED-1005"
    assert slots["reschedule_window"]["id"] == wanted["id"]
    assert slots["reschedule_when"] is None  # read once


def test_a_day_they_cannot_is_not_taken_as_the_day_asked(live):
    _, events, _ = start(LUCIA_MX, "no voy a estar el jueves, me lo cambian?")
    slots = slots_of(events)
    assert slots["requested_slot"] == "reschedule_window" and not slots.get("reschedule_window")


def test_no_the_other_one_moves_to_the_other_order_instead_of_leaving(live):
    state = {**slots_of(start(JULIAN_AR, "cambiar la entrega del mate")[1])}
    assert state["reschedule_order"] == "PED-1003"
    responses, events, _ = validate(tracker(JULIAN_AR, "no, el otro", intent="deny", slots=state))
    slots = slots_of(events)
    # Julián's other open orders: the headphones (out for delivery) and the sneakers: both offered.
    assert slots["reschedule_order"] is None and slots.get("reschedule_confirmed") is not False
    assert [option["id"] for option in slots["order_choices"]] == ["PED-1004", "PED-1005"]
    assert slots["requested_slot"] == "reschedule_order"
    assert responses == []
