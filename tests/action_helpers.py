"""What the action tests share: the domain and rasa_sdk trackers as Rasa sends them."""

from datetime import timedelta
from pathlib import Path

import yaml
from rasa_sdk import Tracker

from bot.identity import VERIFIED, IdentitySigner

DOMAIN = yaml.safe_load((Path(__file__).parents[1] / "domain.yml").read_text())


def tracker(
    sender: str, text: str, entities=(), slots=None, intent="order_status", events=(), form=None
) -> Tracker:
    """A tracker whose latest message is `text`; `events` come before it (none by default) and
    `form` is the active loop, if any."""
    latest = {"text": text, "intent": {"name": intent, "confidence": 0.99}, "entities": list(entities)}
    return Tracker(
        sender_id=sender,
        slots={"order_choices": None, **(slots or {})},
        latest_message=latest,
        events=[*events, {"event": "user", "timestamp": 9.0, "parse_data": latest}] if events else [],
        paused=False,
        followup_action=None,
        active_loop={"name": form} if form else {},
        latest_action_name="action_listen",
    )


def order_entity(value: str) -> dict:
    return {"entity": "order_id", "value": value, "start": 0, "end": len(value)}


def verified_identity(
    sender: str,
    customer_id: str,
    how: str = "sms_code",
    minutes: float = 10,
    secret: str | None = None,
    kind: str = VERIFIED,
) -> str:
    """What the verification step leaves in the `verified_identity` slot for `sender` (signed
    with the key the `settings` fixture gives the in-process actions, unless told another)."""
    from tests.conftest import CLOCK, TEST_IDENTITY_SECRET

    signer = IdentitySigner(secret or TEST_IDENTITY_SECRET)
    return signer.issue(kind, sender, customer_id, how, CLOCK.now(), timedelta(minutes=minutes))
