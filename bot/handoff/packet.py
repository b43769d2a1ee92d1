"""The context packet an agent (or an external desk) receives with a handoff, built from plain data.

actions/ turns the Rasa tracker into plain dicts (its events and slots) and calls build_packet;
nothing here imports Rasa. Every text a customer wrote is masked (card numbers, security codes,
one-time codes) before it enters the packet. The schema is docs/handoff-packet.schema.json.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import Any

from bot.handoff.rules import Reason, WaitEstimate
from bot.identity import IdentityClaim
from bot.masking import CARRIED_CARD_DIGITS, mask_carried_card, mask_sensitive
from bot.records import Customer

SCHEMA_VERSION = 1
LAST_MESSAGES = 30
CODE_MASK = "[código oculto]"
HIDDEN_VALUE = "[oculto]"
# A slot asking for one of these is a secret: the answer to it never reaches the packet.
_SECRET_SLOT = re.compile(r"otp|code|codigo|código|pin|cvv|card|tarjeta|password|clave", re.IGNORECASE)
_ONE_TIME_CODE = re.compile(r"(?<!\d)\d(?:[ -]?\d){3,7}(?!\d)")
_CASE_ID = re.compile(r"\bGES-[2-9A-HJKMNP-Z]{8}\b")
# Slots that are bookkeeping, not what the customer told.
# order_choices is what the bot offered, not what the customer said (the transcript shows it).
_INTERNAL_SLOTS = {
    "requested_slot",
    "handoff_reason",
    "handoff_detail",
    "session_started_metadata",
    "order_choices",
    # Signed identity claims (bot/identity.py): opaque to an agent; the packet's customer section
    # says who was verified and how, from the claim the action checked.
    "identified_identity",
    "verified_identity",
}
# Actions that are the machinery of every turn, not steps of a flow.
_MACHINERY = {"action_listen", "action_session_start", "action_handoff", "action_unlikely_intent"}
# Intents that answer or steer rather than say what the customer came for.
_NOT_A_GOAL = {"human_handoff", "affirm", "deny", "inform", "nlu_fallback", "greet", "thank", "share_media"}


def is_secret_slot(name: str | None) -> bool:
    return bool(name) and bool(_SECRET_SLOT.search(name))


def mask_customer_text(text: str, answering_secret: bool = False) -> str:
    """What the agent may see of a customer's message.

    Card numbers and named security codes are always masked; a message answering a prompt for a
    code (the form's requested slot is an OTP, PIN or code) has its digits masked as well.
    """
    masked = mask_sensitive(text or "")
    if answering_secret:
        masked = _ONE_TIME_CODE.sub(CODE_MASK, masked)
    return masked


def _iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(float(timestamp), tz=timezone.utc).isoformat()


def _session(events: list[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The events of the current session (after the last session start or restart)."""
    for index in range(len(events) - 1, -1, -1):
        if events[index].get("event") in ("session_started", "restart"):
            return events[index + 1 :]
    return events


def _intent(event: Mapping[str, Any]) -> str | None:
    return ((event.get("parse_data") or {}).get("intent") or {}).get("name")


def _user_text(event: Mapping[str, Any]) -> str:
    # A message the channel turned into a trigger (angry or urgent wording) keeps what was written.
    metadata = event.get("metadata") or {}
    return str(metadata.get("original_text") or event.get("text") or "")


def _attachments(event: Mapping[str, Any]) -> list[dict[str, str]]:
    media = (event.get("metadata") or {}).get("media") or []
    return [
        {
            "url": str(item.get("url")),
            "content_type": str(item.get("content_type") or "application/octet-stream"),
        }
        for item in media
        if isinstance(item, Mapping) and item.get("url")
    ]


def transcript(events: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Every customer, bot and agent message, oldest first, masked."""
    messages: list[dict[str, Any]] = []
    requested: str | None = None
    previous: dict[str, Any] | None = None  # the last customer message
    for event in events:
        kind = event.get("event")
        if kind == "slot" and event.get("name") == "requested_slot":
            requested = event.get("value")
        elif kind in ("session_started", "restart"):
            requested = None
        elif kind == "user":
            carried = (event.get("metadata") or {}).get(CARRIED_CARD_DIGITS)
            if isinstance(carried, int) and previous is not None:
                # This message completed a card the previous one began (the tracker store masks
                # it too; a tracker read before that save still holds it).
                previous["text"] = mask_carried_card(previous["text"], carried)
            messages.append(
                {
                    "at": _iso(event.get("timestamp")),
                    "sender": "customer",
                    "text": mask_customer_text(_user_text(event), is_secret_slot(requested)),
                    "attachments": _attachments(event),
                }
            )
            previous = messages[-1]
        elif kind == "bot":
            agent = (event.get("metadata") or {}).get("agent")
            messages.append(
                {
                    "at": _iso(event.get("timestamp")),
                    "sender": "agent" if agent else "bot",
                    "agent": agent,
                    "text": mask_sensitive(str(event.get("text") or "")),
                    "attachments": [],
                }
            )
    return messages


def _validations_failed(session: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Slots a form asked for and rejected (the validation reset them), and messages not understood."""
    failed: list[dict[str, Any]] = []
    requested: str | None = None
    last_action: str | None = None
    for event in session:
        kind = event.get("event")
        if kind == "slot" and event.get("name") == "requested_slot":
            requested = event.get("value")
        elif kind == "action":
            last_action = event.get("name")
        elif kind == "slot" and event.get("value") is None and requested and event.get("name") == requested:
            failed.append({"kind": "slot_rejected", "slot": requested, "by": last_action})
        elif kind == "user" and _intent(event) == "nlu_fallback":
            failed.append({"kind": "not_understood", "text": mask_customer_text(_user_text(event))})
    return failed


def _verification(identity: IdentityClaim | None, customer: Customer | None) -> tuple[bool, str | None]:
    """`identity` is the verified claim the action checked (signature, sender, expiry), never a
    slot's word: a verification of someone else (a number not on file that proved another
    customer's order) still counts only for the customer it verified."""
    if identity is not None and (customer is None or customer.id == identity.customer_id):
        return True, identity.how
    return False, ("phone_number_on_file" if customer else None)


def _slot_value(name: str, value: Any) -> Any:
    if is_secret_slot(name):
        return HIDDEN_VALUE
    if isinstance(value, str):
        return mask_sensitive(value)
    if isinstance(value, list):
        return [_slot_value(name, item) for item in value]
    if isinstance(value, dict):
        return {key: _slot_value(str(key), item) for key, item in value.items()}
    return value


def build_packet(
    *,
    handoff_id: str,
    conversation_id: str,
    reason: Reason,
    events: list[Mapping[str, Any]],
    slots: Mapping[str, Any],
    active_loop: str | None,
    customer: Customer | None,
    phone: str | None,
    channel: str,
    created_at: datetime,
    wait: WaitEstimate | None = None,
    reason_detail: str | None = None,
    language: str = "es",
    identity: IdentityClaim | None = None,
) -> dict[str, Any]:
    """The packet for one handoff; see docs/handoff-packet.schema.json for every field."""
    session = _session(events)
    user_events = [event for event in session if event.get("event") == "user"]
    intents = [name for name in (_intent(event) for event in user_events) if name]
    messages = transcript(events)
    steps = [
        str(event.get("name"))
        for event in session
        if event.get("event") == "action" and event.get("name") not in _MACHINERY
    ]
    bot_texts = " ".join(str(event.get("text") or "") for event in events if event.get("event") == "bot")
    verified, method = _verification(identity, customer)
    filled = {
        name: _slot_value(name, value)
        for name, value in slots.items()
        if value not in (None, "", []) and name not in _INTERNAL_SLOTS
    }
    current_intent = next(
        (name for name in reversed(intents) if name not in _NOT_A_GOAL),
        intents[-1] if intents else None,
    )
    return {
        "schema_version": SCHEMA_VERSION,
        "handoff_id": handoff_id,
        "conversation_id": conversation_id,
        "created_at": created_at.astimezone(timezone.utc).isoformat(),
        "language": language,
        "channel": channel,
        "reason": {"code": reason.value, "detail": mask_sensitive(reason_detail) if reason_detail else None},
        "customer": {
            "id": customer.id if customer else None,
            "name": customer.name if customer else None,
            "phone": customer.phone if customer else phone,
            "country": customer.country if customer else None,
            "known": customer is not None,
            "verified": verified,
            "verification_method": method,
        },
        "intent": {"current": current_intent, "session": intents},
        "slots": filled,
        "active_form": active_loop,
        "requested_slot": slots.get("requested_slot") if active_loop else None,
        "steps_completed": steps,
        "validations_failed": _validations_failed(session),
        "management_ids": sorted(set(_CASE_ID.findall(bot_texts))),
        "messages": messages[-LAST_MESSAGES:],
        "attachments": [
            {**item, "at": message["at"]} for message in messages for item in message["attachments"]
        ],
        "timestamps": {
            "conversation_started": _iso(events[0].get("timestamp")) if events else None,
            "session_started": _iso(session[0].get("timestamp")) if session else None,
            "last_customer_message": _iso(user_events[-1].get("timestamp")) if user_events else None,
            "handoff_requested": created_at.astimezone(timezone.utc).isoformat(),
        },
        "wait": None
        if wait is None
        else {
            "open_now": wait.open_now,
            "estimated_minutes": wait.minutes,
            "position": wait.position,
            "answer_from": wait.opens_at.isoformat() if wait.opens_at else None,
        },
    }
