"""Conversation events (Rasa's, as JSON dicts) turned into sessions: plain functions, no database.

An event's identity is a digest of its conversation and its whole content (Rasa stamps every event
with its own float timestamp), so the same event delivered twice is recognised and kept once.
Only the fields the sessions need are kept (`trim_event`), and every customer text is masked
(bot.masking for card data, bot.inbox for phone numbers) before it is stored.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from bot.deep_links import NOTIFICATION_KEY
from bot.experiments import EXPERIMENT_KEY, VARIANT_KEY
from bot.feedback import FEEDBACK_ENTITY, FEEDBACK_INTENT, RATED_FLOW_KEY
from bot.inbox import (
    CLARIFY_ACTION,
    FALLBACK_ACTIONS,
    FALLBACK_INTENT,
    HANDOFF_ACTION,
    mask_phone_numbers,
    phone_region,
)
from bot.masking import SECRET_MASK, mask_sensitive
from bot.phone import InvalidPhoneNumber, normalize_phone, phone_country

# The event types sessions are built from; the rest (slots, loops, featurization) is not kept.
KEPT_KINDS = frozenset({"session_started", "restart", "pause", "resume", "user", "action", "bot", "rewind"})
# Intents that carry no task: a session's intent is its first customer intent outside these.
NO_TASK_INTENTS = frozenset(
    {
        "greet",
        "goodbye",
        "thank",
        "affirm",
        "deny",
        "bot_challenge",
        "help",
        "inform",
        "out_of_scope",
        "human_handoff",
        "handoff_returned",
        "rate_handoff",
        "card_data",
        "share_location",
        "share_media",
        "opt_out",
        FEEDBACK_INTENT,
        FALLBACK_INTENT,
    }
)
UNKNOWN = "??"
# Seven or more digits in one run (spaces, dots, dashes and brackets between them): a phone or
# document number of any country, masked even when it is not valid in the conversation's own.
_LONG_NUMBER = re.compile(r"\+?\d(?:[\s().-]{0,2}\d){6,}")
SESSION_START_ACTION = "action_session_start"


def event_key(conversation_id: str, event: Mapping[str, Any]) -> str:
    """The identity of an event: the same conversation and content give the same key."""
    canonical = json.dumps(
        {"c": conversation_id, "e": event}, sort_keys=True, separators=(",", ":"), default=str
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def trim_event(conversation_id: str, event: Mapping[str, Any]) -> dict[str, Any] | None:
    """What analytics keeps of an event (None: not kept), with the customer's text masked."""
    kind = event.get("event")
    if kind not in KEPT_KINDS:
        return None
    kept: dict[str, Any] = {"event": kind, "timestamp": float(event.get("timestamp") or 0.0)}
    if kind == "user":
        text = event.get("text") or ""
        if text.strip() and not text.strip().startswith("/"):
            text = mask_phone_numbers(mask_sensitive(text), phone_region(conversation_id))
            text = _LONG_NUMBER.sub(SECRET_MASK, text)
        parse_data = event.get("parse_data") or {}
        metadata = event.get("metadata") or {}
        intent = parse_data.get("intent") or {}
        kept.update(
            text=text,
            parse_data={
                "intent": intent,
                "intent_ranking": (parse_data.get("intent_ranking") or [])[:3],
                # The "¿Te sirvió?" answer's yes / no: the only entity analytics keeps.
                "entities": [
                    {"entity": FEEDBACK_ENTITY, "value": entity.get("value")}
                    for entity in parse_data.get("entities") or []
                    if intent.get("name") == FEEDBACK_INTENT and entity.get("entity") == FEEDBACK_ENTITY
                ],
            },
            input_channel=event.get("input_channel"),
            metadata={"channel": metadata.get("channel"), "phone": metadata.get("phone")},
        )
        if metadata.get(NOTIFICATION_KEY) is not None:  # a notification's live link it opened
            kept["metadata"][NOTIFICATION_KEY] = metadata[NOTIFICATION_KEY]
    elif kind == "action":
        kept["name"] = event.get("name")
    elif kind == "bot":
        data = event.get("data") or {}
        buttons = [{"payload": button.get("payload")} for button in data.get("buttons") or []]
        metadata = event.get("metadata") or {}
        kept.update(
            data={"buttons": buttons},
            # What the response was, the flow a "¿Te sirvió?" rates, and the A/B variant shown.
            metadata={
                key: metadata.get(key)
                for key in ("utter_action", RATED_FLOW_KEY, EXPERIMENT_KEY, VARIANT_KEY)
                if key == "utter_action" or metadata.get(key)
            },
        )
    return kept


@dataclass(frozen=True)
class SessionFacts:
    """One session of a conversation, as the KPIs read it."""

    session_id: str
    conversation_id: str
    customer_key: str
    channel: str
    country: str
    started_at: datetime
    ended_at: datetime
    intent: str | None
    customer_turns: int
    fallback_turns: int
    clarification_turns: int
    last_turn_fell_back: bool
    handed_over: bool


def customer_key(phone_or_conversation: str) -> str:
    """A pseudonym of the customer: a digest of the phone number (or of the conversation's ID when
    it is no phone number), so analytics can count customers without holding their numbers."""
    try:
        identity = normalize_phone(phone_or_conversation)
    except InvalidPhoneNumber:
        identity = phone_or_conversation
    return hashlib.sha256(identity.encode()).hexdigest()[:32]


def _moment(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, timezone.utc)


@dataclass
class _Building:
    started: float
    ended: float
    channel: str | None = None
    phone: str | None = None
    intent: str | None = None
    customer_turns: int = 0
    fallback_turns: int = 0
    clarification_turns: int = 0
    turn_fell_back: bool = False
    turn_clarified: bool = False
    handed_over: bool = False
    paused: bool = False

    def close_turn(self) -> None:
        self.fallback_turns += self.turn_fell_back
        self.clarification_turns += self.turn_clarified


def _intent_name(event: Mapping[str, Any]) -> str | None:
    return ((event.get("parse_data") or {}).get("intent") or {}).get("name")


def build_sessions(conversation_id: str, events: Iterable[Mapping[str, Any]]) -> list[SessionFacts]:
    """The sessions of one conversation from its kept events (any order: sorted by timestamp).

    A session starts at `session_started` (or at the conversation's first event). A customer
    turn is a message written or tapped while no person has the conversation; it fell back when
    NLU said nlu_fallback or action_default_fallback / action_clarify ran before the next
    message, and was clarified when action_clarify ran."""
    ordered = sorted(
        events,
        key=lambda event: (float(event.get("timestamp") or 0.0), event.get("event") != "session_started"),
    )
    built: list[_Building] = []
    current: _Building | None = None
    for event in ordered:
        kind, at = event.get("event"), float(event.get("timestamp") or 0.0)
        if kind == "action" and event.get("name") == SESSION_START_ACTION:
            continue  # it runs just before the new session's session_started, not in the old one
        if kind == "session_started" or current is None:
            if current is not None:
                current.close_turn()
            current = _Building(started=at, ended=at)
            built.append(current)
            if kind == "session_started":
                continue
        current.ended = max(current.ended, at)
        if kind == "pause":
            current.paused = True
        elif kind == "resume":
            current.paused = False
        elif kind == "user" and not current.paused:
            current.close_turn()
            current.customer_turns += 1
            intent = _intent_name(event)
            current.turn_fell_back = intent == FALLBACK_INTENT
            current.turn_clarified = False
            metadata = event.get("metadata") or {}
            current.channel = current.channel or metadata.get("channel") or event.get("input_channel")
            current.phone = current.phone or metadata.get("phone")
            if current.intent is None and intent and intent not in NO_TASK_INTENTS:
                current.intent = intent
        elif kind == "action" and current.customer_turns:
            name = event.get("name")
            if name in FALLBACK_ACTIONS:
                current.turn_fell_back = True
            if name == CLARIFY_ACTION:
                current.turn_clarified = True
            if name == HANDOFF_ACTION:
                current.handed_over = True
    if current is not None:
        current.close_turn()
    return [_facts(conversation_id, session) for session in built]


def _facts(conversation_id: str, session: _Building) -> SessionFacts:
    phone = session.phone or conversation_id.split(":")[-1]
    return SessionFacts(
        session_id=hashlib.sha256(f"{conversation_id}\0{session.started!r}".encode()).hexdigest()[:32],
        conversation_id=conversation_id,
        customer_key=customer_key(phone),
        channel=(session.channel or UNKNOWN)[:16],
        country=phone_country(phone) or UNKNOWN,
        started_at=_moment(session.started),
        ended_at=_moment(session.ended),
        intent=session.intent,
        customer_turns=session.customer_turns,
        fallback_turns=session.fallback_turns,
        clarification_turns=session.clarification_turns,
        last_turn_fell_back=session.turn_fell_back,
        handed_over=session.handed_over,
    )
