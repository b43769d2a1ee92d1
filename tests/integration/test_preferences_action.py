"""action_preferences ("mis preferencias") with rasa_sdk trackers over a real database: the menu
shows the channel's topics with what the customer gets, an option's payload changes one topic,
logs it with its message, and the notification worker reads the same choice."""

import asyncio

import pytest
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.preferences import ActionPreferences
from bot.consents.store import ConsentBook
from bot.consents.topics import granted
from bot.messaging.inbound import Channel
from bot.notifications.rules import load_rules
from tests.action_helpers import DOMAIN, tracker
from tests.conftest import CLOCK, MARIANA_MX

pytestmark = pytest.mark.integration


@pytest.fixture
def book(wire, store) -> ConsentBook:
    consents = ConsentBook(store, CLOCK)
    wire(consents=consents)
    return consents


def run(text: str, entities=(), channel: str | None = "whatsapp", sid: str = "SMpref"):
    action_tracker = tracker(MARIANA_MX, text, entities, intent="manage_preferences")
    if channel:
        action_tracker.latest_message["metadata"] = {"channel": channel, "message_sid": sid}
    dispatcher = CollectingDispatcher()
    events = asyncio.run(ActionPreferences().run(dispatcher, action_tracker, DOMAIN))
    return dispatcher.messages, events


def entity(name: str, value: str) -> dict:
    return {"entity": name, "value": value, "start": 0, "end": 1}


def test_the_menu_shows_each_topic_with_what_the_customer_gets_on_this_channel(book):
    messages, events = run("mis preferencias")
    [menu] = messages
    assert menu["response"] == "utter_preferences_menu_whatsapp"
    titles = [button["title"] for button in menu["buttons"]]
    assert titles == [
        "Novedades de pedidos: Sí", "Avisos de pago: Sí", "Promociones: No", titles[-1]
    ]  # fmt: skip
    assert titles[-1] in {variation["text"] for variation in DOMAIN["responses"]["utter_pref_show_sms"]}
    assert all(len(title) <= 24 for title in titles)  # a WhatsApp list row
    assert SlotSet("pref_channel", "whatsapp") in events
    assert book.log_for(MARIANA_MX) == []  # looking changes nothing


def test_an_option_changes_its_topic_logs_it_and_the_worker_reads_it(book):
    [menu], _ = run("mis preferencias", channel="sms")
    assert menu["response"] == "utter_preferences_menu_sms"
    promotions = menu["buttons"][2]["payload"]
    assert promotions.startswith("/manage_preferences")

    entities = [
        entity("pref_topic", "promotions"),
        entity("pref_channel", "sms"),
        entity("pref_granted", "yes"),
    ]
    messages, events = run(promotions, entities, channel="sms", sid="SMyes")

    changed, menu = messages
    assert changed["response"] == "utter_preferences_on_sms" and changed["topic"] == "Promociones"
    assert menu["buttons"][2]["title"] == "Promociones: Sí"
    assert SlotSet("pref_topic", "promotions") in events
    [logged] = book.log_for(MARIANA_MX)
    assert (logged.topic, logged.channel, logged.granted, logged.via, logged.source, logged.message_id) == (
        "promotions", "sms", True, "sms", "preferences", "SMyes"
    )  # fmt: skip
    topics = load_rules().topics
    assert granted(topics, book.choices(MARIANA_MX), "promotions", Channel.SMS)
    assert not granted(topics, book.choices(MARIANA_MX), "promotions", Channel.WHATSAPP)


def test_the_other_channel_is_shown_when_asked(book):
    [menu], events = run("/manage_preferences", [entity("pref_channel", "sms")], channel="whatsapp")
    assert menu["response"] == "utter_preferences_menu_sms"
    assert all('"pref_channel": "sms"' in button["payload"] for button in menu["buttons"][:-1])
    assert '"pref_channel": "whatsapp"' in menu["buttons"][-1]["payload"]


def test_a_sender_that_is_not_a_phone_is_told_how_to_see_them(book):
    action_tracker = tracker("console-test-user", "mis preferencias", intent="manage_preferences")
    dispatcher = CollectingDispatcher()
    assert asyncio.run(ActionPreferences().run(dispatcher, action_tracker, DOMAIN)) == []
    assert [message["response"] for message in dispatcher.messages] == ["utter_preferences_no_phone"]
