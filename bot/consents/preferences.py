""" "mis preferencias": the customer's topics on one channel as options that change them, and the
change a tapped (or numbered) option asks for. Pure: the action reads and writes the ConsentBook.

Each option's payload says the value it sets, not "toggle": an old menu's option tapped twice
sets the same value twice instead of undoing itself.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bot.consents.topics import CHANNELS, Topic, Topics, granted
from bot.messaging.inbound import Channel

INTENT = "manage_preferences"
TOPIC_ENTITY, CHANNEL_ENTITY, GRANTED_ENTITY = "pref_topic", "pref_channel", "pref_granted"


@dataclass(frozen=True)
class Choice:
    topic: Topic
    granted: bool  # what the customer receives now on the channel shown


@dataclass(frozen=True)
class Requested:
    topic: Topic
    channel: Channel
    granted: bool


def current(topics: Topics, choices: Mapping[tuple[str, str], bool], channel: Channel) -> list[Choice]:
    """Every topic with what the customer receives on `channel` (their choice, else the default)."""
    return [Choice(topic, granted(topics, choices, topic.id, channel)) for topic in topics.topics]


def set_payload(topic: Topic, channel: Channel, value: bool) -> str:
    """The option that sets `topic` on `channel` to `value`."""
    entities = {
        TOPIC_ENTITY: topic.id,
        CHANNEL_ENTITY: channel.value,
        GRANTED_ENTITY: "yes" if value else "no",
    }
    return f"/{INTENT}{json.dumps(entities)}"


def show_payload(channel: Channel) -> str:
    """The option that shows the choices of `channel`."""
    return f"/{INTENT}{json.dumps({CHANNEL_ENTITY: channel.value})}"


def other_channel(channel: Channel) -> Channel:
    return next(other for other in CHANNELS if other is not channel)


def shown_channel(entities: Mapping[str, Any], default: Channel) -> Channel:
    """The channel the customer asked to see, else the one they write from."""
    try:
        return Channel(str(entities.get(CHANNEL_ENTITY) or default.value))
    except ValueError:
        return default


def requested(entities: Mapping[str, Any], topics: Topics, default: Channel) -> Requested | None:
    """The change the message's entities ask for, or None (only a look, or not a known topic)."""
    topic = topics.get(str(entities.get(TOPIC_ENTITY) or ""))
    value = str(entities.get(GRANTED_ENTITY) or "")
    if topic is None or value not in ("yes", "no"):
        return None
    return Requested(topic, shown_channel(entities, default), value == "yes")
