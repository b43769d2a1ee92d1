"""What the action tests share: the domain and rasa_sdk trackers as Rasa sends them."""

from pathlib import Path

import yaml
from rasa_sdk import Tracker

DOMAIN = yaml.safe_load((Path(__file__).parents[1] / "domain.yml").read_text())


def tracker(sender: str, text: str, entities=(), slots=None, intent="order_status") -> Tracker:
    return Tracker(
        sender_id=sender,
        slots={"order_choices": None, **(slots or {})},
        latest_message={
            "text": text,
            "intent": {"name": intent, "confidence": 0.99},
            "entities": list(entities),
        },
        events=[],
        paused=False,
        followup_action=None,
        active_loop={},
        latest_action_name="action_listen",
    )


def order_entity(value: str) -> dict:
    return {"entity": "order_id", "value": value, "start": 0, "end": len(value)}
