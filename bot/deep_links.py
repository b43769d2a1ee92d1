"""Signed, expiring deep links: a notification's quick reply that opens a flow at the right step.

A notification offers "Cambiar fecha" (WhatsApp button, or "1" in an SMS); its payload is not the
flow itself but `/follow_link{"link_token": "<token>"}`, a token signed with IDENTITY_SECRET
(itsdangerous, salt "deep-link") that names the number it was sent to, the flow, what it is about
(the order, the invoice) and when it stops working, on the project clock. When the customer
answers, the channel resolves the payload here, before Rasa: within its life, for that number,
it becomes the flow's own payload (`/reschedule_delivery{"order_id": "PED-1001"}`, which opens the
reschedule form with that order chosen, at the window step); expired, forged or sent to another
number it becomes `/link_expired`, a polite word, and the conversation goes on as usual.

A live link's target also travels with the message, in its metadata under `deep_link`
({"flow": "pay", "target": "F-2001"}): "Pagar ahora" opens `/make_payment` (whose intent is the
flow's own), and the payment action, after the one-time code, reads from the message that started
the flow which invoice the notice was about, and offers the link for that one only. The target is
checked there against the verified customer's own invoices, never trusted by itself.

The token is only ever read from a payload the channel offered (a tap or a number maps only to
the options on screen, bot/messaging/inbound_rules.py): typed text never reaches this module.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from enum import Enum

from itsdangerous import BadSignature, URLSafeSerializer

FOLLOW_LINK = "follow_link"
LINK_ENTITY = "link_token"
EXPIRED_PAYLOAD = "/link_expired"
LINK_METADATA = "deep_link"  # the message metadata naming what a live link opened
_SALT = "deep-link"
# A link payload as `DeepLinks.payload` writes it: what a template's button id carries (≤ 200).
_LINK_PAYLOAD = re.compile(r'/follow_link\{"link_token": "[A-Za-z0-9_.-]{1,160}"\}')
# The user event's metadata key naming the notification whose live link the message opened.
NOTIFICATION_KEY = "notification"


class Flow(str, Enum):
    """What a link opens, and the payload that opens it (the flows' own intents)."""

    RESCHEDULE = "reschedule"  # the reschedule form, the order chosen: at the window step
    PAY = "pay"  # the payment link, after the one-time code

    def payload(self, target: str) -> str:
        if self is Flow.RESCHEDULE:
            return f"/reschedule_delivery{json.dumps({'order_id': target})}"
        return "/make_payment"


# The event variable each flow is about (bot/notifications.yml quick_replies: `opens:`).
TARGET_VARIABLE = {Flow.RESCHEDULE: "order_id", Flow.PAY: "invoice_id"}


@dataclass(frozen=True)
class Link:
    phone: str
    flow: Flow
    target: str
    expires_at: datetime
    notification: int | None = None  # the notification that offered it (analytics: who led to a tap)


class DeepLinks:
    """Issues and opens links; `secret` is IDENTITY_SECRET (every process that sends or reads them)."""

    def __init__(self, secret: str) -> None:
        if not secret:
            raise ValueError("deep links need a secret (IDENTITY_SECRET)")
        self._serializer = URLSafeSerializer(secret, salt=_SALT)

    def issue(self, link: Link) -> str:
        expires = int(link.expires_at.timestamp())
        fields: list = [link.phone, link.flow.value, link.target, expires]
        if link.notification is not None:
            fields.append(link.notification)
        return str(self._serializer.dumps(fields))

    def open(self, token: str, phone: str, now: datetime) -> Link | None:
        """The link when `token` is genuine, was sent to `phone` and has not expired at `now`."""
        try:
            # A link issued before notifications named themselves in it has four fields.
            sent_to, flow, target, expires, *rest = self._serializer.loads(token)
            if len(rest) > 1:
                return None
            notification = int(rest[0]) if rest else None
            link = Link(
                str(sent_to),
                Flow(flow),
                str(target),
                datetime.fromtimestamp(int(expires), timezone.utc),
                notification,
            )
        except (BadSignature, ValueError, TypeError):
            return None
        if link.phone != phone or now >= link.expires_at:
            return None
        return link

    def payload(self, link: Link) -> str:
        """The quick reply's payload that carries `link`."""
        return f"/{FOLLOW_LINK}{json.dumps({LINK_ENTITY: self.issue(link)})}"

    def resolve(self, text: str, phone: str, now: datetime) -> str:
        """What Rasa reads for a message: the flow's payload for a live link, `/link_expired` for
        any other link payload; any other text as it is."""
        return self.opened(text, phone, now)[0]

    def opened(self, text: str, phone: str, now: datetime) -> tuple[str, Link | None]:
        """`resolve`'s text, and the live link it opened (None when it opened none)."""
        token = link_token(text)
        if token is None:
            return text, None
        link = self.open(token, phone, now)
        return (link.flow.payload(link.target), link) if link else (EXPIRED_PAYLOAD, None)

    def follow(self, text: str, phone: str, now: datetime) -> tuple[str, dict[str, str]]:
        """`resolve`, and the metadata the message carries with it: for a live link what it opened
        ({"flow": "pay", "target": "F-2001"}, under LINK_METADATA), else nothing."""
        opened, link = self.opened(text, phone, now)
        return opened, ({"flow": link.flow.value, "target": link.target} if link else {})


def linked_target(metadata: object, flow: Flow) -> str | None:
    """The target of `flow` a message's metadata says a live link opened (see `follow`), or None."""
    link = metadata.get(LINK_METADATA) if isinstance(metadata, dict) else None
    if not isinstance(link, dict) or link.get("flow") != flow.value:
        return None
    target = link.get("target")
    return target if isinstance(target, str) and target else None


def is_link_payload(value: str | None) -> bool:
    """Whether `value` has exactly the form of a link payload (says nothing of its signature)."""
    return bool(value) and _LINK_PAYLOAD.fullmatch(value or "") is not None


def link_token(text: str) -> str | None:
    """The token of a `/follow_link{"link_token": …}` payload; "" for a malformed one; None when
    `text` is not a link payload at all."""
    prefix = f"/{FOLLOW_LINK}"
    if not text.startswith(prefix):
        return None
    try:
        entities = json.loads(text[len(prefix) :] or "{}")
    except ValueError:
        return ""
    token = entities.get(LINK_ENTITY) if isinstance(entities, dict) else None
    return token if isinstance(token, str) else ""
