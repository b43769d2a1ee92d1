"""action_handoff, action_handback and action_record_satisfaction with rasa_sdk trackers, over SQL.

The last test is the resume mechanism on a form: a handoff in the middle of a form deactivates
it (its filled slots stay), and the answer to the satisfaction question re-activates it.
"""

import asyncio
from datetime import timedelta

import pytest
from rasa_sdk import Tracker
from rasa_sdk.events import ActiveLoop, ConversationPaused, FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.cases import ActionOpenCase
from actions.clarify import ActionClarify
from actions.handoff import ActionHandback, ActionHandoff, ActionRecordSatisfaction, handoff_events
from bot.adapters.base import BackendUnavailable
from bot.backends import Backends
from bot.handoff.announce import Announcer
from bot.handoff.config import parse_config
from bot.handoff.rules import Reason
from bot.handoff.service import HandoffServices
from bot.handoff.store import HandoffStore
from tests.action_helpers import DOMAIN, verified_identity
from tests.conftest import CLOCK, JULIAN_AR, MARIANA_MX, STRANGER

ALWAYS_OPEN = parse_config(
    {
        "business_hours": {
            day: ["00:00", "23:59"]
            for day in ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
        },
        "wait": {"agents_on_duty": 1, "minutes_per_conversation": 5},
        "hand_over": {"amount_over": 10000, "vip_customers": ["C-002"]},
    }
)
NEVER_OPEN = parse_config({"business_hours": {}})
# What every handoff clears: why it was asked for, and what exactly.
CLEARED = [SlotSet("handoff_reason", None), SlotSet("handoff_detail", None)]


@pytest.fixture
def found(store, demo, wire):
    services = HandoffServices(HandoffStore(store, CLOCK), ALWAYS_OPEN, Announcer(None), desk_enabled=False)
    wire(backends=demo, handoff=services)
    yield services
    services.store.drop_schema()


def user(text, intent, at, **metadata):
    return {"event": "user", "text": text, "timestamp": at, "parse_data": {"intent": {"name": intent}},
            "metadata": {"channel": "whatsapp", **metadata}}  # fmt: skip


def tracker(
    sender=MARIANA_MX,
    intent="human_handoff",
    text="asesor",
    slots=None,
    events=None,
    form=None,
    metadata=None,
    entities=(),
):
    latest = {
        "text": text,
        "intent": {"name": intent, "confidence": 0.99},
        "entities": list(entities),
        "metadata": metadata or {},
    }
    return Tracker(
        sender_id=sender,
        slots={"order_choices": None, "handoff_reason": None, "requested_slot": None, **(slots or {})},
        latest_message=latest,
        events=events if events is not None else [user("hola", "greet", 1.0), user(text, intent, 2.0)],
        paused=False,
        followup_action=None,
        active_loop={"name": form} if form else {},
        latest_action_name="action_listen",
    )  # fmt: skip


def run(action, action_tracker):
    dispatcher = CollectingDispatcher()
    events = asyncio.run(action.run(dispatcher, action_tracker, DOMAIN))
    return dispatcher.messages, events


def test_asking_for_a_person_stores_the_packet_tells_the_wait_and_pauses(found):
    messages, events = run(ActionHandoff(), tracker())
    assert [m["response"] for m in messages] == ["utter_handoff_waiting"]
    assert messages[0]["wait"] == "unos 5 minutos"
    assert events == [*CLEARED, ConversationPaused()]
    handoff = found.store.active_for(MARIANA_MX)
    assert (
        handoff.status == "waiting" and handoff.reason == "customer_request" and handoff.channel == "whatsapp"
    )
    assert handoff.packet["customer"]["name"] == "Mariana López" and handoff.customer_name == "Mariana López"


def test_the_next_customer_waits_longer_and_a_repeat_does_not_queue_twice(found):
    run(ActionHandoff(), tracker(MARIANA_MX))
    messages, _ = run(ActionHandoff(), tracker(STRANGER))
    assert messages[0]["wait"] == "unos 10 minutos"
    again, _ = run(ActionHandoff(), tracker(MARIANA_MX))
    assert again[0]["wait"] == "unos 5 minutos" and len(found.store.queue()) == 2


def test_outside_hours_the_customer_is_told_when_they_will_be_answered(found, demo, wire):
    closed = HandoffServices(
        found.store, parse_config({"business_hours": {"monday": ["09:00", "09:01"]}}), Announcer(None), False
    )
    wire(backends=demo, handoff=closed)
    messages, events = run(ActionHandoff(), tracker())
    assert [m["response"] for m in messages] == ["utter_handoff_after_hours"]
    assert "lunes" in messages[0]["opens"] and "a las 09:00" in messages[0]["opens"]
    assert events[-1] == ConversationPaused()


def test_the_reason_comes_from_the_slot_or_the_channels_mark(found):
    run(ActionHandoff(), tracker(slots={"handoff_reason": "backend_unavailable"}))
    assert found.store.active_for(MARIANA_MX).reason == "backend_unavailable"
    run(ActionHandoff(), tracker(STRANGER, metadata={"handoff_reason": "angry_language"}))
    assert found.store.active_for(STRANGER).reason == "angry_language"


def test_a_vip_customer_is_served_first(found):
    run(ActionHandoff(), tracker(MARIANA_MX))
    run(ActionHandoff(), tracker(JULIAN_AR))
    assert [h.conversation_id for h in found.store.queue()] == [JULIAN_AR, MARIANA_MX]


def test_a_crm_outage_still_hands_over_without_the_record(found, wire):
    class DownCrm:
        def customer_by_phone(self, phone):
            raise BackendUnavailable("timeout")

    wire(backends=Backends(crm=DownCrm(), erp=None, cases=None), handoff=found)
    messages, _ = run(ActionHandoff(), tracker())
    assert messages[0]["response"] == "utter_handoff_waiting"
    assert found.store.active_for(MARIANA_MX).packet["customer"]["known"] is False


def test_a_database_outage_gets_a_polite_message_and_no_pause(found, demo, wire):
    class DownStore:
        def active_for(self, conversation_id):
            raise BackendUnavailable("connection refused")

    broken = HandoffServices(DownStore(), ALWAYS_OPEN, Announcer(None), False)
    wire(backends=demo, handoff=broken)
    messages, events = run(ActionHandoff(), tracker())
    assert [m["response"] for m in messages] == ["utter_handoff_failed"]
    assert ConversationPaused() not in events


def test_the_second_miss_offers_a_person_and_remembers_why():
    events = [user("asdf", "nlu_fallback", 1.0), user("qwer", "nlu_fallback", 2.0)]
    messages, returned = run(ActionClarify(), tracker(intent="nlu_fallback", text="qwer", events=events))
    assert messages[0]["response"] == "utter_offer_human"
    assert returned == [SlotSet("handoff_reason", "not_understood")]


def test_a_return_above_the_amount_threshold_goes_to_a_person_not_a_case(found):
    amount = [{"entity": "amount", "value": "$15.000"}]
    _, events = run(
        ActionOpenCase(), tracker(intent="return_request", text="devuelvo algo de $15.000", entities=amount)
    )
    assert events == handoff_events(Reason.AMOUNT_OVER_THRESHOLD)


def test_a_vip_customers_cancellation_goes_to_a_person(found):
    _, events = run(ActionOpenCase(), tracker(JULIAN_AR, intent="cancel_order", text="cancelen mi pedido"))
    assert events == [
        SlotSet("handoff_reason", "vip_customer"),
        SlotSet("handoff_detail", None),
        FollowupAction("action_handoff"),
    ]


def test_an_old_rule_sending_a_person_request_to_action_open_case_hands_over(found):
    _, events = run(ActionOpenCase(), tracker(intent="human_handoff", text="asesor"))
    assert events == handoff_events(Reason.CUSTOMER_REQUEST)


def test_a_payment_handoff_shows_the_reason_its_detail_and_the_code_verification(found):
    # What action_complete_flow leaves for an invoice over the threshold, after a one-time code.
    slots = {
        "handoff_reason": Reason.AMOUNT_OVER_THRESHOLD.value,
        "handoff_detail": "F-2004: $ 150.000,00",
        "verified_identity": verified_identity(JULIAN_AR, "C-002"),
    }
    run(ActionHandoff(), tracker(JULIAN_AR, intent="make_payment", text="quiero pagar", slots=slots))
    packet = found.store.active_for(JULIAN_AR).packet
    assert packet["reason"] == {"code": "amount_over_threshold", "detail": "F-2004: $ 150.000,00"}
    assert (packet["customer"]["verified"], packet["customer"]["verification_method"]) == (True, "sms_code")
    assert "handoff_detail" not in packet["slots"]


def test_an_expired_code_verification_is_not_shown_as_verified(found):
    slots = {"verified_identity": verified_identity(MARIANA_MX, "C-001", minutes=-1)}
    run(ActionHandoff(), tracker(slots=slots))
    customer = found.store.active_for(MARIANA_MX).packet["customer"]
    assert (customer["verified"], customer["verification_method"]) == (False, "phone_number_on_file")


def test_a_claim_signed_for_another_sender_or_a_bare_customer_id_is_not_shown_as_verified(found):
    slots = {"verified_identity": verified_identity(MARIANA_MX, "C-001"), "verified_customer_id": "C-001"}
    run(ActionHandoff(), tracker(STRANGER, slots=slots))
    customer = found.store.active_for(STRANGER).packet["customer"]
    assert (customer["id"], customer["verified"], customer["known"]) == (None, False, False)


def test_a_number_not_on_file_verified_by_order_and_code_is_shown_as_that_customer(found):
    slots = {"verified_identity": verified_identity(STRANGER, "C-001", how="order_document+sms_code")}
    run(ActionHandoff(), tracker(STRANGER, slots=slots))
    customer = found.store.active_for(STRANGER).packet["customer"]
    assert (customer["id"], customer["verified"], customer["verification_method"]) == (
        "C-001",
        True,
        "order_document+sms_code",
    )


def test_the_hand_back_says_the_bot_is_back_and_asks_one_to_five():
    messages, events = run(ActionHandback(), tracker(intent="handoff_returned", text="/handoff_returned"))
    assert [m["response"] for m in messages] == ["utter_bot_back", "utter_ask_satisfaction"]
    scale = [variation["buttons"] for variation in DOMAIN["responses"]["utter_ask_satisfaction"]]
    for buttons in scale:
        assert [b["payload"] for b in buttons] == [
            f'/rate_handoff{{"satisfaction_score":"{n}"}}' for n in range(1, 6)
        ]
    assert events == []


@pytest.mark.parametrize(("text", "entities", "score"), [
    ('/rate_handoff{"satisfaction_score":"5"}', [{"entity": "satisfaction_score", "value": "5"}], 5),
    ("un 4", [], 4),
    ("tres", [], 3),
])  # fmt: skip
def test_the_satisfaction_answer_is_recorded(found, text, entities, score):
    run(ActionHandoff(), tracker())
    handoff = found.store.active_for(MARIANA_MX)
    found.store.end(handoff.id, "closed", "listo")
    messages, events = run(
        ActionRecordSatisfaction(), tracker(intent="rate_handoff", text=text, entities=entities)
    )
    assert [m["response"] for m in messages] == ["utter_satisfaction_thanks"] and events == []
    assert found.store.get(handoff.id).satisfaction == score


def test_a_form_interrupted_by_the_handoff_is_resumed_after_the_hand_back(found):
    in_form = tracker(
        form="reschedule_form",
        slots={"delivery_date": "el viernes", "requested_slot": "delivery_window"},
        events=[
            user("quiero cambiar la entrega", "reschedule_delivery", 1.0),
            {"event": "active_loop", "name": "reschedule_form", "timestamp": 2.0},
            {"event": "slot", "name": "delivery_date", "value": "el viernes", "timestamp": 3.0},
            {"event": "slot", "name": "requested_slot", "value": "delivery_window", "timestamp": 3.0},
            user("mejor pasame con alguien", "human_handoff", 4.0),
        ],
    )
    _, events = run(ActionHandoff(), in_form)
    assert events == [*CLEARED, ActiveLoop(None), ConversationPaused()]
    handoff = found.store.active_for(MARIANA_MX)
    assert handoff.resume_form == "reschedule_form"
    assert (
        handoff.packet["active_form"] == "reschedule_form"
        and handoff.packet["slots"]["delivery_date"] == "el viernes"
    )

    found.store.end(handoff.id, "handed_back")
    rating = [{"entity": "satisfaction_score", "value": "5"}]
    messages, events = run(
        ActionRecordSatisfaction(), tracker(intent="rate_handoff", text="5", entities=rating)
    )
    assert [m["response"] for m in messages] == ["utter_satisfaction_thanks", "utter_resume_flow"]
    assert events == [FollowupAction("reschedule_form")]  # the form asks for what is still missing


def test_closing_does_not_resume_the_form(found):
    run(ActionHandoff(), tracker(form="reschedule_form"))
    handoff = found.store.active_for(MARIANA_MX)
    found.store.end(handoff.id, "closed", "se coordinó por teléfono")
    _, events = run(ActionRecordSatisfaction(), tracker(intent="rate_handoff", text="4"))
    assert events == []


def test_handoff_responses_are_in_the_domain():
    needed = {
        "utter_handoff_waiting", "utter_handoff_after_hours", "utter_handoff_failed", "utter_bot_back",
        "utter_ask_satisfaction", "utter_satisfaction_thanks", "utter_resume_flow", "utter_handoff_withdrawn",
    }  # fmt: skip
    assert needed <= set(DOMAIN["responses"])
    actions = {a if isinstance(a, str) else next(iter(a)) for a in DOMAIN["actions"]}
    assert {"action_handoff", "action_handback", "action_record_satisfaction"} <= actions


def test_handoff_time_is_recorded_in_utc(found):
    run(ActionHandoff(), tracker())
    created = found.store.active_for(MARIANA_MX).created_at
    assert created.tzinfo is not None and abs((CLOCK.now() - created).total_seconds()) < 60


def close_case_asking_rating(demo, at):
    """A case of Mariana's closed in the console, which asked her the 1-5 question at `at`."""
    from bot.case_work import change_status, record_rating_asked
    from bot.cases import request_case
    from bot.records import CaseKind

    outcome = request_case(demo.cases, demo.outbox, MARIANA_MX, CaseKind.RETURN_REQUEST, {}, MARIANA_MX, at)
    case = demo.cases.case(outcome.management_id)
    change_status(demo.cases, case, "closed", "ana", at)
    record_rating_asked(demo.cases, case, "ana", at)
    return case.id


def test_the_answer_after_a_case_is_closed_rates_the_case_not_the_earlier_handoff(found, demo):
    run(ActionHandoff(), tracker())
    handoff = found.store.active_for(MARIANA_MX)
    found.store.end(handoff.id, "closed", "listo", now=CLOCK.now())
    case_id = close_case_asking_rating(demo, CLOCK.now() + timedelta(minutes=10))
    messages, _ = run(ActionRecordSatisfaction(), tracker(intent="rate_handoff", text="cinco"))
    assert [m["response"] for m in messages] == ["utter_satisfaction_thanks"]
    assert demo.cases.case(case_id).rating == 5
    assert found.store.get(handoff.id).satisfaction is None
    # The next answer (nothing asked any more) goes to the handoff, as before cases had ratings.
    run(ActionRecordSatisfaction(), tracker(intent="rate_handoff", text="un 2"))
    assert demo.cases.case(case_id).rating == 5 and found.store.get(handoff.id).satisfaction == 2


def test_a_handoff_ended_after_the_case_question_takes_the_answer(found, demo):
    case_id = close_case_asking_rating(demo, CLOCK.now() - timedelta(hours=2))
    run(ActionHandoff(), tracker())
    handoff = found.store.active_for(MARIANA_MX)
    found.store.end(handoff.id, "closed", "listo", now=CLOCK.now())
    run(ActionRecordSatisfaction(), tracker(intent="rate_handoff", text="tres"))
    assert found.store.get(handoff.id).satisfaction == 3 and demo.cases.case(case_id).rating is None
