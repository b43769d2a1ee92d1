"""action_clarify and action_pick_option: not understood, offer options, then a person; read the pick."""

import asyncio

from rasa_sdk import Tracker
from rasa_sdk.events import ActionExecuted, FollowupAction, UserUtteranceReverted, UserUttered
from rasa_sdk.executor import CollectingDispatcher

from actions.clarify import ActionClarify, ActionPickOption, message_from_payload
from tests.action_helpers import DOMAIN
from tests.conftest import MARIANA_MX

MENU_BUTTONS = DOMAIN["responses"]["utter_menu"][0]["buttons"]


def user(text: str, intent: str, ranking=()) -> dict:
    ranking = list(ranking) or [{"name": intent, "confidence": 0.9}]
    return {
        "event": "user",
        "text": text,
        "parse_data": {"text": text, "intent": {"name": intent}, "intent_ranking": ranking, "entities": []},
    }


def bot(text: str, buttons=()) -> dict:
    return {"event": "bot", "text": text, "data": {"buttons": list(buttons)}}


def fallback(text: str, *likeliest: str) -> dict:
    ranking = [{"name": "nlu_fallback", "confidence": 0.4}]
    ranking += [{"name": name, "confidence": 0.3 - n * 0.05} for n, name in enumerate(likeliest)]
    return user(text, "nlu_fallback", ranking)


def conversation(*events: dict) -> Tracker:
    latest = next(event for event in reversed(events) if event["event"] == "user")
    return Tracker(
        sender_id=MARIANA_MX,
        slots={"order_choices": None},
        latest_message=latest["parse_data"],
        events=list(events),
        paused=False,
        followup_action=None,
        active_loop={},
        latest_action_name="action_listen",
    )


def run(action, events):
    dispatcher = CollectingDispatcher()
    result = asyncio.run(action.run(dispatcher, conversation(*events), DOMAIN))
    return dispatcher.messages, result


def labels(intent: str) -> set[str]:
    return {variation["text"] for variation in DOMAIN["responses"][f"utter_option_{intent}"]}


def test_the_two_likeliest_labelled_intents_are_offered_with_buttons():
    # greet has no label (utter_option_greet), so it is never offered.
    messages, events = run(
        ActionClarify(), [fallback("cuando me lo traen", "order_status", "greet", "reschedule_delivery")]
    )
    [message] = messages
    assert message["response"] == "utter_clarify"
    assert message["first"] in labels("order_status") and message["second"] in labels("reschedule_delivery")
    assert [button["payload"] for button in message["buttons"]] == ["/order_status", "/reschedule_delivery"]
    assert message["buttons"][0]["title"][0].isupper()
    assert events == []


def test_a_second_message_not_understood_offers_a_person():
    history = [
        fallback("mmm lo del coso", "order_status", "help"),
        bot("¿Quisiste decir…?"),
        fallback("el coso ese", "order_status", "help"),
    ]
    messages, _ = run(ActionClarify(), history)
    assert [m["response"] for m in messages] == ["utter_offer_human"]
    offer = DOMAIN["responses"]["utter_offer_human"]
    assert all(variation["buttons"][0]["payload"] == "/human_handoff" for variation in offer)


def test_an_understood_message_in_between_starts_counting_again():
    history = [
        fallback("mmm lo del coso", "order_status", "help"),
        user("gracias", "thank"),
        fallback("el coso ese", "order_status", "help"),
    ]
    messages, _ = run(ActionClarify(), history)
    assert messages[0]["response"] == "utter_clarify"


def test_a_new_session_starts_counting_again():
    history = [
        fallback("mmm", "order_status", "help"),
        {"event": "session_started"},
        fallback("eh", "help", "order_status"),
    ]
    assert run(ActionClarify(), history)[0][0]["response"] == "utter_clarify"


def test_without_two_labelled_candidates_it_asks_to_rephrase():
    messages, _ = run(ActionClarify(), [fallback("jajaja", "greet", "thank")])
    assert [m["response"] for m in messages] == ["utter_default"]


def picked(events) -> str:
    assert events[:2] == [UserUtteranceReverted(), ActionExecuted("action_listen")]
    assert events[2]["event"] == "user"
    return events[2]["parse_data"]["intent"]["name"]


CLARIFIED = bot(
    "¿Quisiste decir?",
    [
        {"title": "Ver el estado", "payload": "/order_status"},
        {"title": "Cambiar la fecha", "payload": "/reschedule_delivery"},
    ],
)


def test_a_number_after_the_clarification_continues_with_that_intent():
    _, events = run(ActionPickOption(), [fallback("x", "order_status"), CLARIFIED, user("2", "inform")])
    assert picked(events) == "reschedule_delivery"
    assert events[2] == UserUttered("/reschedule_delivery", parse_data=events[2]["parse_data"])


def test_yes_after_the_clarification_takes_the_first_option():
    _, events = run(ActionPickOption(), [CLARIFIED, user("si dale", "affirm")])
    assert picked(events) == "order_status"


def test_a_number_or_ordinal_after_the_menu_picks_that_option():
    menu = bot("Esto es lo que puedo hacer por ti", MENU_BUTTONS)
    assert picked(run(ActionPickOption(), [menu, user("2", "inform")])[1]) == "reschedule_delivery"
    assert picked(run(ActionPickOption(), [menu, user("la quinta porfa", "inform")])[1]) == "cancel_order"
    assert picked(run(ActionPickOption(), [menu, user("la ultima", "inform")])[1]) == "human_handoff"


def test_an_order_number_after_the_menu_goes_to_the_order_status():
    menu = bot("Esto es lo que puedo hacer por ti", MENU_BUTTONS)
    _, events = run(ActionPickOption(), [menu, user("el 1007", "inform")])
    assert events == [FollowupAction("action_order_status")]


def test_button_payloads_are_read_with_their_entities():
    message = message_from_payload('/inform{"order_id":"PED-1003"}')
    assert message["intent"] == {"name": "inform", "confidence": 1.0}
    assert message["entities"] == [{"entity": "order_id", "value": "PED-1003"}]
    assert message_from_payload("hola") is None
    assert message_from_payload("/inform{roto") is None


# --- the knowledge base's second chance (real articles of kb/) ---------------------------------


def test_a_question_nlu_was_not_trained_on_is_answered_from_the_knowledge_base():
    messages, events = run(ActionClarify(), [fallback("el cupon no me funciona", "help", "check_balance")])
    assert [message["response"] for message in messages] == ["utter_kb_answer"]
    assert messages[0]["kb_article_id"] == "cupon-de-descuento"
    assert not messages[0].get("buttons")  # no flow offered: "sí" here would mean the options'
    assert {"event": "slot", "name": "kb_article_id", "value": "cupon-de-descuento"} in [
        {key: event[key] for key in ("event", "name", "value")} for event in events
    ]


def test_an_article_about_a_flow_the_options_offer_leaves_the_choice_to_the_customer():
    # The duplicate-charge article is confident, but NLU half-read payment_problem: its flow wins.
    messages, _ = run(
        ActionClarify(), [fallback("me cobraron dos veces la compra", "payment_problem", "make_payment")]
    )
    assert [message["response"] for message in messages] == ["utter_clarify"]


def test_a_search_below_the_stricter_bar_clarifies():
    # "cuando me lo traen" is the restocking article at a score under FALLBACK_ANSWER_SCORE.
    messages, _ = run(
        ActionClarify(), [fallback("cuando me lo traen", "order_status", "reschedule_delivery")]
    )
    assert [message["response"] for message in messages] == ["utter_clarify"]
