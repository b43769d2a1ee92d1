"""action_preferences: "mis preferencias" shows what the customer receives on the channel they
write from (a topic per option: "Novedades de pedidos: Sí") and changes what they tap or number.

Every change goes to the consent log with the message that asked for it (bot/consents/store.py);
the notification worker reads the same table before each send.
"""

from __future__ import annotations

import asyncio
import logging
from functools import lru_cache
from pathlib import Path
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.knowledge import conversation_channel, label
from actions.order_status import sender_phone
from bot.adapters.base import BackendUnavailable
from bot.consents import preferences
from bot.consents.store import ConsentChange
from bot.consents.topics import Topics
from bot.messaging.inbound import Channel
from bot.notifications.rules import DEFAULT_RULES, load_rules
from bot.wiring import wiring

logger = logging.getLogger(__name__)


@lru_cache(maxsize=2)
def consent_topics(path: Path) -> Topics:
    """The topics of the notification rules file (NOTIFY_RULES), read once per process."""
    return load_rules(path).topics


class ActionPreferences(Action):
    """Show the customer's choices on this channel; apply the one their tapped option sets."""

    def name(self) -> str:
        return "action_preferences"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        phone = sender_phone(tracker)
        topics = consent_topics(wiring().settings.notify_rules or DEFAULT_RULES)
        if phone is None or not topics.topics:
            dispatcher.utter_message(response="utter_preferences_no_phone")
            return []
        via = Channel(conversation_channel(tracker))
        message = tracker.latest_message
        entities = {entity["entity"]: entity.get("value") for entity in message.get("entities") or []}
        change = preferences.requested(entities, topics, via)
        channel = change.channel if change else preferences.shown_channel(entities, via)
        book = wiring().consents
        try:
            if change is not None:
                logged = ConsentChange(
                    phone, change.topic.id, change.channel, change.granted, via=via.value,
                    source="preferences", message_id=(message.get("metadata") or {}).get("message_sid"),
                    message_text=message.get("text") or "",
                )  # fmt: skip
                await asyncio.to_thread(book.change, logged)
                state = "on" if change.granted else "off"
                dispatcher.utter_message(
                    response=f"utter_preferences_{state}_{change.channel.value}", topic=change.topic.title
                )
            choices = await asyncio.to_thread(book.choices, phone)
        except BackendUnavailable:
            logger.exception("preferences: the database is unavailable")
            dispatcher.utter_message(response="utter_preferences_unavailable")
            return []
        yes, no = label(domain, "utter_pref_yes"), label(domain, "utter_pref_no")
        buttons = [
            {
                "title": f"{choice.topic.title}: {yes if choice.granted else no}",
                "payload": preferences.set_payload(choice.topic, channel, not choice.granted),
            }
            for choice in preferences.current(topics, choices, channel)
        ]
        other = preferences.other_channel(channel)
        buttons.append(
            {
                "title": label(domain, f"utter_pref_show_{other.value}"),
                "payload": preferences.show_payload(other),
            }
        )
        dispatcher.utter_message(response=f"utter_preferences_menu_{channel.value}", buttons=buttons)
        return [
            SlotSet("pref_channel", channel.value),
            SlotSet("pref_topic", change.topic.id if change else None),
        ]
