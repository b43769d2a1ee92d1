"""The topics a customer can say yes or no to (order updates, payment reminders, promotions),
declared by designers in bot/notifications.yml under `topics:`, and the pure rules of consent:
what a customer who never chose gets, and whether a notification may go on a channel."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bot.messaging.inbound import Channel

# The channels a customer chooses for (a notification goes on one of them).
CHANNELS = (Channel.WHATSAPP, Channel.SMS)
# The topic a BAJA / ALTA is logged under: every topic at once, on the number.
ALL_TOPICS = "*"
MAX_TOPIC_TITLE = 20  # "<title>: Sí" must fit a WhatsApp list row (24 characters)


class TopicsError(ValueError):
    """The topics section is wrong; the message names the place and what to write instead."""


@dataclass(frozen=True)
class Topic:
    id: str  # stable: the consent table and the log keep it
    title: str  # what the customer reads in "mis preferencias"
    default: bool  # what a customer who never chose receives (promotions: no, by law in most places)


@dataclass(frozen=True)
class Topics:
    topics: tuple[Topic, ...] = ()

    def get(self, topic_id: str) -> Topic | None:
        return next((topic for topic in self.topics if topic.id == topic_id), None)

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(topic.id for topic in self.topics)


def parse_topics(raw: Any, where: str = "topics") -> Topics:
    """`topics: {order_updates: {title: "Novedades de pedidos", default: true}, …}`; none: ()."""
    if raw is None:
        return Topics()
    if not isinstance(raw, dict):
        raise TopicsError(f'{where}: one entry per topic: order_updates: {{title: "…", default: true}}')
    found = []
    for topic_id, spec in raw.items():
        place = f"{where}.{topic_id}"
        if not isinstance(topic_id, str) or not topic_id.isidentifier() or topic_id == ALL_TOPICS:
            raise TopicsError(f"{place}: a topic id is a word like order_updates")
        if not isinstance(spec, dict) or not str(spec.get("title") or "").strip():
            raise TopicsError(f'{place}: write {{title: "Novedades de pedidos", default: true}}')
        title = str(spec["title"]).strip()
        if len(title) > MAX_TOPIC_TITLE:
            raise TopicsError(f"{place}.title: at most {MAX_TOPIC_TITLE} characters (a WhatsApp list row)")
        default = spec.get("default", True)
        if not isinstance(default, bool):
            raise TopicsError(f"{place}.default: true or false (what a customer who never chose gets)")
        found.append(Topic(topic_id, title, default))
    return Topics(tuple(found))


def granted(topics: Topics, choices: Mapping[tuple[str, str], bool], topic_id: str, channel: Channel) -> bool:
    """Whether the customer receives `topic_id` on `channel`: their own choice, else the topic's
    default. An undeclared topic is refused (a rule naming one is stopped at start-up anyway)."""
    topic = topics.get(topic_id)
    if topic is None:
        return False
    return choices.get((topic_id, channel.value), topic.default)
