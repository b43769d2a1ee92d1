"""action_kb_answer with rasa_sdk trackers, real articles (kb/) and the demo CRM on SQLite and
PostgreSQL: what a customer's own words get, for their country and channel.

The texts are real customers' phrasings; each test first states the search's verdict it relies on
(`expect_verdict`), so a change of the engine's thresholds says which behaviour moved.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json

import pytest
from rasa_sdk import Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions import knowledge as action_module
from actions.clarify import message_from_payload
from actions.knowledge import ActionKbAnswer
from bot.adapters.base import BackendUnavailable
from bot.backends import Backends
from bot.kb import KnowledgeBase
from bot.settings import DEFAULT_KB_DIR
from tests.action_helpers import DOMAIN, verified_identity
from tests.conftest import MARIANA_MX, ROSA_PE

KB = KnowledgeBase.load(DEFAULT_KB_DIR)
US_NUMBER = "+14155550123"  # a customer writing from a number of a country the store does not sell in
KB_RESPONSES = {
    "utter_kb_answer", "utter_kb_offer_flow", "utter_kb_options", "utter_kb_none",
    "utter_kb_unsure_in_form", "utter_kb_flow_declined", "utter_kb_button_yes", "utter_kb_button_no",
    "utter_out_of_scope", "utter_menu",
}  # fmt: skip


def conversation(
    sender: str,
    text: str,
    *,
    intent: str = "faq",
    channel: str | None = "whatsapp",
    entities: list[dict] | None = None,
    slots: dict | None = None,
    events: list[dict] | None = None,
    form: str | None = None,
    response_selector: dict | None = None,
) -> Tracker:
    """The tracker Rasa sends after the customer wrote `text` on `channel` (None: not Twilio)."""
    metadata = {"channel": channel, "phone": sender} if channel else {}
    message = {
        "text": text,
        "intent": {"name": intent, "confidence": 0.9},
        "entities": entities or [],
        "metadata": metadata,
    }
    if response_selector is not None:
        message["response_selector"] = response_selector
    user = {
        "event": "user",
        "text": text,
        "parse_data": message,
        "input_channel": "twilio" if channel else "rest",
        "metadata": metadata,
    }
    return Tracker(
        sender_id=sender,
        slots={"kb_article_id": None, **(slots or {})},
        latest_message=message,
        events=[*(events or []), user],
        paused=False,
        followup_action=None,
        active_loop={"name": form} if form else {},
        latest_action_name="action_listen",
    )


def run(tracker: Tracker) -> tuple[list[dict], list]:
    dispatcher = CollectingDispatcher()
    events = asyncio.run(ActionKbAnswer().run(dispatcher, tracker, DOMAIN))
    return dispatcher.messages, events


def responses(messages: list[dict]) -> list[str]:
    return [message["response"] for message in messages]


def expect_verdict(text: str, verdict: str, country: str = "MX", channel: str = "whatsapp") -> None:
    assert KB.search(text, country=country, channel=channel).verdict == verdict, text


def pick(button: dict) -> tuple[str, list[dict]]:
    """The intent and entities Rasa reads from a tapped button's payload."""
    message = message_from_payload(button["payload"])
    assert message is not None, button
    return message["intent"]["name"], message["entities"]


@pytest.fixture(autouse=True)
def use_demo(wire, demo):
    wire(backends=demo)


def test_every_response_the_action_can_send_is_in_the_domain():
    assert set(DOMAIN["responses"]) >= KB_RESPONSES
    assert action_module.ARTICLE_INTENT in DOMAIN["intents"]
    assert action_module.ARTICLE_ENTITY in DOMAIN["entities"]


# --- a known question ------------------------------------------------------------------------


def test_a_known_question_gets_the_steps_on_whatsapp_and_the_short_answer_with_the_link_on_sms():
    question = "¿qué medios de pago aceptan?"
    expect_verdict(question, "answer")
    whatsapp, events = run(conversation(MARIANA_MX, question, channel="whatsapp"))
    sms, _ = run(conversation(MARIANA_MX, question, channel="sms"))
    article = KB.resolve("medios-de-pago", country="MX", channel="whatsapp")

    assert responses(whatsapp) == responses(sms) == ["utter_kb_answer", "utter_ask_feedback"]
    assert whatsapp[1]["rated_flow"] == "kb:medios-de-pago"  # "¿Te sirvió?" about this article
    assert whatsapp[0]["answer"] == article.render("whatsapp")
    assert sms[0]["answer"] == KB.resolve("medios-de-pago", country="MX", channel="sms").render("sms")
    assert whatsapp[0]["answer"] != sms[0]["answer"]
    assert "\n1. " in whatsapp[0]["answer"] and "\n1. " not in sms[0]["answer"]
    assert article.short.split()[0] in sms[0]["answer"] and sms[0]["answer"].endswith(article.link)
    # what analytics count: the article shown, in the slot and in the message
    assert events == [SlotSet("kb_article_id", "medios-de-pago")]
    assert whatsapp[0]["kb_article_id"] == "medios-de-pago"


def test_rest_and_console_conversations_get_the_whatsapp_rendering():
    question = "¿qué medios de pago aceptan?"
    messages, _ = run(conversation(MARIANA_MX, question, channel=None))
    assert messages[0]["answer"] == KB.resolve("medios-de-pago", country="MX").render("whatsapp")


def test_a_picked_option_keeps_the_channel_of_the_customers_last_message():
    # On SMS, "2" became the option's payload; an answer built from it is still an SMS one.
    earlier = {"event": "user", "text": "envio", "input_channel": "twilio", "metadata": {"channel": "sms"}}
    payload = action_module.article_payload("envio-gratis")
    picked = conversation(
        MARIANA_MX,
        payload,
        intent="kb_article",
        channel=None,
        entities=[{"entity": "kb_article_id", "value": "envio-gratis"}],
        events=[earlier],
    )
    picked.events[-1]["input_channel"] = None  # put in the customer's mouth by action_pick_option
    messages, _ = run(picked)
    assert messages[0]["answer"] == KB.resolve("envio-gratis", country="MX", channel="sms").render("sms")


# --- the country -----------------------------------------------------------------------------


def test_payment_methods_differ_for_a_peruvian_and_a_mexican_number():
    question = "¿qué medios de pago aceptan?"
    expect_verdict(question, "answer", country="PE")
    peru, _ = run(conversation(ROSA_PE, question))
    mexico, _ = run(conversation(MARIANA_MX, question))
    assert "Yape" in peru[0]["answer"] and "OXXO" not in peru[0]["answer"]
    assert "OXXO" in mexico[0]["answer"] and "Yape" not in mexico[0]["answer"]
    assert peru[0]["answer"] == KB.resolve("medios-de-pago", country="PE", channel="whatsapp").render(
        "whatsapp"
    )


def test_a_verified_customers_country_on_record_wins_over_the_phones():
    question = "¿qué medios de pago aceptan?"
    rosa = verified_identity(US_NUMBER, "C-003")  # Rosa (PE), verified from a US number
    messages, _ = run(conversation(US_NUMBER, question, slots={"verified_identity": rosa}))
    assert "Yape" in messages[0]["answer"]


def test_the_crm_down_costs_only_the_country_on_record(wire):
    class DownCrm:
        def __getattr__(self, name):
            raise BackendUnavailable("connection refused")

    wire(backends=Backends(crm=DownCrm(), erp=DownCrm(), cases=DownCrm()))
    rosa = verified_identity(MARIANA_MX, "C-003")
    messages, events = run(
        conversation(MARIANA_MX, "¿qué medios de pago aceptan?", slots={"verified_identity": rosa})
    )
    assert responses(messages) == ["utter_kb_answer", "utter_ask_feedback"]
    assert "OXXO" in messages[0]["answer"]  # the phone's country (MX)
    assert events == [SlotSet("kb_article_id", "medios-de-pago")]


def test_a_sender_that_is_not_a_phone_gets_the_default_countrys_articles(settings):
    messages, _ = run(conversation("a1b2c3d4e5", "¿qué medios de pago aceptan?", channel=None))
    expected = KB.resolve("medios-de-pago", country=settings.default_country, channel="whatsapp")
    assert messages[0]["answer"] == expected.render("whatsapp")


# --- an article tied to a flow -----------------------------------------------------------------


def test_an_article_tied_to_a_flow_offers_it_yes_starts_it_and_no_declines():
    question = "¿cuántos días tengo para devolver algo?"
    expect_verdict(question, "answer")
    messages, events = run(conversation(MARIANA_MX, question))
    assert responses(messages) == ["utter_kb_answer", "utter_kb_offer_flow"]
    assert events == [SlotSet("kb_article_id", "cambios-y-devoluciones")]
    yes, no = messages[1]["buttons"]
    assert pick(yes) == ("return_request", [])  # the flow's own intent, as the menu's buttons
    assert pick(no) == ("deny", [])
    labels = {variation["text"] for variation in DOMAIN["responses"]["utter_kb_button_yes"]}
    assert yes["title"] in labels and all(len(button["title"]) <= 20 for button in (yes, no))


def test_an_article_without_a_flow_offers_nothing_more():
    messages, _ = run(conversation(MARIANA_MX, "¿tienen envío gratis?"))
    assert responses(messages) == ["utter_kb_answer", "utter_ask_feedback"]


def test_in_the_middle_of_a_form_the_answer_comes_without_the_offer_of_another_flow():
    question = "¿cuántos días tengo para devolver algo?"
    messages, events = run(conversation(MARIANA_MX, question, form="reschedule_form"))
    assert responses(messages) == ["utter_kb_answer"]
    assert events == [SlotSet("kb_article_id", "cambios-y-devoluciones")]


# --- not sure: options ---------------------------------------------------------------------------


def test_a_vague_question_offers_three_titles_and_a_pick_answers_that_article():
    expect_verdict("envio", "options")
    messages, events = run(conversation(MARIANA_MX, "envio"))
    assert responses(messages) == ["utter_kb_options"]
    assert events == [SlotSet("kb_article_id", None)]
    buttons = messages[0]["buttons"]
    hits = KB.search("envio", country="MX", channel="whatsapp").hits
    assert [button["title"] for button in buttons] == [hit.article.title for hit in hits[:3]]
    assert messages[0]["kb_offered"] == [hit.article.id for hit in hits[:3]]

    intent, entities = pick(buttons[1])
    assert intent == "kb_article"
    chosen = hits[1].article.id
    assert entities == [{"entity": "kb_article_id", "value": chosen}]
    messages, events = run(conversation(MARIANA_MX, buttons[1]["payload"], intent=intent, entities=entities))
    assert responses(messages)[0] == "utter_kb_answer"
    assert messages[0]["answer"] == KB.resolve(chosen, country="MX", channel="whatsapp").render("whatsapp")
    assert events == [SlotSet("kb_article_id", chosen)]


def test_a_picked_article_is_shown_in_the_customers_country_variant():
    payload = action_module.article_payload("medios-de-pago")
    entities = [{"entity": "kb_article_id", "value": "medios-de-pago"}]
    messages, _ = run(conversation(ROSA_PE, payload, intent="kb_article", entities=entities, channel="sms"))
    assert messages[0]["answer"] == KB.resolve("medios-de-pago", country="PE", channel="sms").render("sms")


def selected(topic: str, confidence: float) -> dict:
    """What the ResponseSelector put in the parse data for faq/<topic>."""
    response = {
        "intent_response_key": f"faq/{topic}",
        "confidence": confidence,
        "utter_action": f"utter_faq/{topic}",
    }
    return {"faq": {"response": response}}


def test_a_migrated_faq_topic_nlu_is_sure_of_is_answered_when_the_search_offers_it():
    question = "garantia"
    result = KB.search(question, country="MX", channel="whatsapp")
    assert result.verdict == "options" and "garantia" in [hit.article.id for hit in result.hits]
    sure, events = run(conversation(MARIANA_MX, question, response_selector=selected("garantia", 0.99)))
    assert responses(sure) == ["utter_kb_answer", "utter_ask_feedback"]
    assert sure[0]["answer"] == KB.resolve("garantia", country="MX").render("whatsapp")
    assert events == [SlotSet("kb_article_id", "garantia")]
    unsure, _ = run(conversation(MARIANA_MX, question, response_selector=selected("garantia", 0.6)))
    assert responses(unsure) == ["utter_kb_options"]


def test_a_faq_topic_the_search_does_not_offer_is_not_answered():
    question = "¿venden repuestos para bicicletas?"
    expect_verdict(question, "none")
    messages, _ = run(
        conversation(MARIANA_MX, question, response_selector=selected("atencion_presencial", 0.99))
    )
    assert responses(messages) == ["utter_kb_none"]


def test_a_vague_question_in_the_middle_of_a_form_gets_no_options_under_the_forms_question():
    messages, events = run(conversation(MARIANA_MX, "envio", form="reschedule_form"))
    assert responses(messages) == ["utter_kb_unsure_in_form"]
    assert events == [SlotSet("kb_article_id", None)]


def test_a_made_up_article_id_is_not_answered():
    payload = '/kb_article{"kb_article_id": "no-existe"}'
    entities = [{"entity": "kb_article_id", "value": "no-existe"}]
    messages, _ = run(conversation(MARIANA_MX, payload, intent="kb_article", entities=entities))
    assert responses(messages) == ["utter_kb_none"]


# --- nothing fits ------------------------------------------------------------------------------


def test_nothing_fits_says_so_and_offers_a_person():
    question = "¿venden repuestos para bicicletas?"
    expect_verdict(question, "none")
    messages, events = run(conversation(MARIANA_MX, question))
    assert responses(messages) == ["utter_kb_none"]
    offer = DOMAIN["responses"]["utter_kb_none"]
    assert all(variation["buttons"][0]["payload"] == "/human_handoff" for variation in offer)  # "sí"
    assert SlotSet("handoff_reason", "cannot_complete") in events
    assert SlotSet("handoff_detail", question) in events
    assert SlotSet("kb_article_id", None) in events


# --- out of scope: a second chance ---------------------------------------------------------------


def test_out_of_scope_is_answered_only_when_an_article_is_sure():
    question = "¿cuánto cuesta mandar a Tierra del Fuego?"
    expect_verdict(question, "answer", country="AR")
    julian = "+5491123456789"
    messages, events = run(conversation(julian, question, intent="out_of_scope"))
    assert responses(messages) == ["utter_kb_answer", "utter_ask_feedback"]
    assert events == [SlotSet("kb_article_id", "envio-a-zonas-alejadas")]
    assert messages[0]["answer"] == KB.resolve("envio-a-zonas-alejadas", country="AR").render("whatsapp")


@pytest.mark.parametrize(
    "text", ["me recomiendas una peli para ver hoy?", "¿venden repuestos para bicicletas?"]
)
def test_out_of_scope_without_a_sure_article_gets_the_usual_reply_and_the_menu(text):
    assert KB.search(text, country="MX", channel="whatsapp").verdict != "answer"
    messages, events = run(conversation(MARIANA_MX, text, intent="out_of_scope"))
    assert responses(messages) == ["utter_out_of_scope", "utter_menu"]
    assert events == [SlotSet("kb_article_id", None)]


# --- the knowledge base cannot be loaded -----------------------------------------------------------


@pytest.fixture
def broken_kb(tmp_path, monkeypatch):
    """A knowledge-base folder whose only article has no title: it never loads."""
    folder = tmp_path / "kb"
    folder.mkdir()
    (folder / "roto.md").write_text("---\nid: roto\n---\n## Pasos\n1. nada\n")
    graph = action_module.wiring()
    monkeypatch.setattr(graph, "settings", dataclasses.replace(graph.settings, kb_dir=folder))
    return folder


def test_a_knowledge_base_that_cannot_load_answers_with_the_old_frequent_question(broken_kb):
    selector = {"faq": {"response": {"utter_action": "utter_faq/horarios", "responses": []}}}
    messages, events = run(conversation(MARIANA_MX, "a que hora abren?", response_selector=selector))
    assert responses(messages) == ["utter_faq/horarios"]
    assert events == [SlotSet("kb_article_id", None)]


def test_a_knowledge_base_that_cannot_load_still_answers_out_of_scope_and_unknown_topics(broken_kb):
    messages, _ = run(conversation(MARIANA_MX, "me recomiendas una peli?", intent="out_of_scope"))
    assert responses(messages) == ["utter_out_of_scope", "utter_menu"]
    made_up = {"faq": {"response": {"utter_action": "utter_greet"}}}  # not an old answer: not sent
    messages, _ = run(conversation(MARIANA_MX, "hola?", response_selector=made_up))
    assert responses(messages) == ["utter_out_of_scope", "utter_menu"]


def test_the_payload_of_an_article_reads_back_as_its_id():
    payload = action_module.article_payload("cambios-y-devoluciones")
    assert json.loads(payload.removeprefix("/kb_article")) == {"kb_article_id": "cambios-y-devoluciones"}
