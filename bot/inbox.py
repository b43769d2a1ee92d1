"""The designers' inbox: customer messages the assistant misunderstood, found in stored tracker
events, grouped by text and written as a YAML file that a designer labels (`make inbox`).

Plain functions over Rasa's events as stored (JSON dicts), so the rules are testable without
Rasa or a database. A message is exported when, in its turn:
- it fell back: NLU said nlu_fallback, or action_default_fallback or action_clarify ran;
- it was clarified: action_clarify offered options and the customer's next message picked one
  (a button's payload, or "2" / "la segunda" that action_pick_option replaced by the payload);
- it came right before a handoff: the next message asked for a person (human_handoff, typed, a
  button, or the channel's escalation of angry or urgent wording), or the assistant handed the
  conversation over in its own turn (an amount above the threshold, say).
Only what the customer typed is exported: button payloads and channel intents ("/…") are not.
Every text is masked again here (bot.masking), whatever the tracker store did when it saved it,
and phone numbers in it are masked too: the file goes to people who need the words, not the
numbers (the conversation itself is named by a tag, never by its phone number).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo

import phonenumbers
import yaml

from bot.choices import fold
from bot.masking import CARD_DATA_INTENT, CARD_MASK, mask_card_data, mask_sensitive

FALLBACK_INTENT = "nlu_fallback"
HANDOFF_INTENT = "human_handoff"
FALLBACK_ACTIONS = frozenset({"action_default_fallback", "action_clarify"})
CLARIFY_ACTION = "action_clarify"
HANDOFF_ACTION = "action_handoff"
# action_clarify's second answer in a row offers a person, not two intents: not a clarification.
OFFER_OF_A_PERSON = "utter_offer_human"

FALLBACK, CLARIFIED, BEFORE_HANDOFF = "fallback", "clarified", "before_handoff"
REASONS = (FALLBACK, CLARIFIED, BEFORE_HANDOFF)


PHONE_MASK = "[teléfono oculto]"
_DEFAULT_REGION = "MX"  # for conversations whose id is not a phone number (the REST channel, tests)


def phone_region(conversation_id: str) -> str:
    """The country of the conversation's phone number: how a number written without its
    country code is read in its messages."""
    try:
        number = phonenumbers.parse(conversation_id.split(":")[-1], None)
    except phonenumbers.NumberParseException:
        return _DEFAULT_REGION
    return phonenumbers.region_code_for_number(number) or _DEFAULT_REGION


def mask_phone_numbers(text: str, region: str) -> str:
    """The text with every valid phone number (of `region`, or international) masked."""
    found = list(phonenumbers.PhoneNumberMatcher(text, region, leniency=phonenumbers.Leniency.VALID))
    for match in reversed(found):
        text = text[: match.start] + PHONE_MASK + text[match.end :]
    return text


def conversation_tag(conversation_id: str) -> str:
    """A short stable name for a conversation, so the file never shows a phone number.

    A pseudonym, not a secret: whoever holds a list of phone numbers can recompute it (that is
    how a developer finds the conversation again). 10 hex digits keep tags of different
    conversations apart."""
    return "c-" + hashlib.sha256(conversation_id.encode()).hexdigest()[:10]


@dataclass
class Misunderstood:
    """One customer message worth a designer's look, and why."""

    text: str
    reasons: set[str]
    predicted: str | None
    confidence: float | None
    conversation: str  # conversation_tag(...)
    at: datetime
    picked: str | None = None  # the intent of the option picked after a clarification


@dataclass
class _Turn:
    """A customer message and what happened until the next one."""

    event: dict[str, Any]
    previous: _Turn | None
    text: str
    typed: bool  # written by the customer, not a button payload or a channel intent
    fell_back: bool = False
    before_handoff: bool = False
    picked: str | None = None
    reverted: bool = False


@dataclass
class _Offer:
    """Options action_clarify offered after `turn`, waiting for the customer's pick."""

    turn: _Turn
    intents: set[str]  # the intents of the offered buttons' payloads
    answered: bool = False  # a message came that was not a pick (it may still be rewound)


def _intent(event: dict[str, Any]) -> dict[str, Any]:
    return (event.get("parse_data") or {}).get("intent") or {}


def _is_handoff_request(event: dict[str, Any]) -> bool:
    text = (event.get("text") or "").strip()
    return _intent(event).get("name") == HANDOFF_INTENT or text.startswith(f"/{HANDOFF_INTENT}")


def _prediction(event: dict[str, Any]) -> tuple[str | None, float | None]:
    """What NLU thought the message meant: the likeliest intent other than nlu_fallback."""
    parse_data = event.get("parse_data") or {}
    for candidate in [*(parse_data.get("intent_ranking") or []), parse_data.get("intent") or {}]:
        name = candidate.get("name")
        if name and name != FALLBACK_INTENT:
            confidence = candidate.get("confidence")
            return name, None if confidence is None else round(float(confidence), 3)
    intent = parse_data.get("intent") or {}
    confidence = intent.get("confidence")
    return intent.get("name"), None if confidence is None else round(float(confidence), 3)


def _payload_intent(text: str) -> str:
    return text.strip()[1:].split("{", 1)[0].strip()


def _turns(events: Iterable[dict[str, Any]], region: str = _DEFAULT_REGION) -> list[_Turn]:
    """The conversation's customer messages, with the flags each turn earned; messages taken
    back (UserUtteranceReverted: "2" replaced by the option it picked) are marked reverted."""
    turns: list[_Turn] = []
    current: _Turn | None = None
    offer: _Offer | None = None
    last_action: str | None = None
    paused = False
    after_card = False
    for event in events:
        kind = event.get("event")
        if kind in ("session_started", "restart"):
            current, offer, last_action, paused = None, None, None, False
        elif kind == "pause":  # a person has the conversation: what the customer writes is for them
            paused = True
        elif kind == "resume":
            paused = False
        elif kind == "user" and not paused:
            raw = event.get("text") or ""
            typed = bool(raw.strip()) and not raw.strip().startswith("/")
            masked = mask_card_data(raw, after_card=after_card) if typed else None
            text = mask_phone_numbers(mask_sensitive(masked.text), region) if masked else raw
            # As the tracker store reads it: a lone 3-4 digit code right after a card is its CVV.
            card_here = masked is not None and (masked.card or CARD_MASK in raw)
            after_card = card_here or _intent(event).get("name") == CARD_DATA_INTENT
            turn = _Turn(event, current, text, typed)
            if offer is not None and offer.answered:
                offer = None  # the message after the options was not a pick, and stayed
            if offer is not None:
                if not typed and _payload_intent(raw) in offer.intents:
                    offer.turn.picked = _payload_intent(raw)
                    offer = None
                else:
                    offer.answered = True
            if _intent(event).get("name") == FALLBACK_INTENT:
                turn.fell_back = True
            if _is_handoff_request(event) and current is not None:
                current.before_handoff = True
            turns.append(turn)
            current, last_action = turn, None
        elif kind == "rewind" and current is not None:
            current.reverted = True
            current = current.previous
            if offer is not None:
                offer.answered = False
        elif kind == "action" and current is not None:
            name = event.get("name")
            if name == "action_listen":
                continue
            last_action = name
            if name in FALLBACK_ACTIONS:
                current.fell_back = True
            if name == CLARIFY_ACTION:
                offer = None
            if name == HANDOFF_ACTION and not _is_handoff_request(current.event):
                current.before_handoff = True  # the assistant handed over by itself
        elif kind == "bot" and current is not None and last_action == CLARIFY_ACTION:
            buttons = (event.get("data") or {}).get("buttons") or []
            utter = (event.get("metadata") or {}).get("utter_action")
            payloads = [str(button.get("payload", "")).strip() for button in buttons]
            intents = {_payload_intent(payload) for payload in payloads if payload.startswith("/")}
            if intents and utter != OFFER_OF_A_PERSON:
                offer = _Offer(current, intents)
    return turns


def misunderstood_messages(conversation_id: str, events: Iterable[dict[str, Any]]) -> list[Misunderstood]:
    """The customer messages of one conversation (its stored events, in order) that fell back,
    were clarified or came right before a handoff, masked."""
    tag = conversation_tag(conversation_id)
    found: list[Misunderstood] = []
    for turn in _turns(events, phone_region(conversation_id)):
        if turn.reverted or not turn.typed:
            continue
        reasons = set()
        if turn.picked:
            reasons.add(CLARIFIED)
        elif turn.fell_back:
            reasons.add(FALLBACK)
        if turn.before_handoff:
            reasons.add(BEFORE_HANDOFF)
        if not reasons:
            continue
        predicted, confidence = _prediction(turn.event)
        at = datetime.fromtimestamp(float(turn.event.get("timestamp") or 0), timezone.utc)
        found.append(Misunderstood(turn.text, reasons, predicted, confidence, tag, at, turn.picked))
    return found


@dataclass
class InboxEntry:
    """Every occurrence of one text (compared without case, accents or punctuation)."""

    text: str
    reasons: set[str] = field(default_factory=set)
    picks: Counter[str] = field(default_factory=Counter)
    count: int = 0
    latest: Misunderstood | None = None
    label: str | None = None
    skip: bool = False

    def add(self, message: Misunderstood) -> None:
        self.count += 1
        self.reasons |= message.reasons
        if message.picked:
            self.picks[message.picked] += 1
        if self.latest is None or message.at >= self.latest.at:
            self.latest = message


def same_text(text: str) -> str:
    """The key under which two messages count as the same text."""
    return fold(text) or " ".join(text.split())


def group_messages(messages: Iterable[Misunderstood]) -> list[InboxEntry]:
    """One entry per text, the most frequent first (then the most recent)."""
    entries: dict[str, InboxEntry] = {}
    for message in messages:
        entries.setdefault(same_text(message.text), InboxEntry(message.text)).add(message)
    return sorted(entries.values(), key=lambda entry: (-entry.count, -entry.latest.at.timestamp()))


def keep_labels(entries: list[InboxEntry], previous: dict[str, Any] | None) -> int:
    """Carry the labels (and skips) of an earlier version of the same file onto `entries`, so
    exporting again never loses a designer's work. How many were carried."""
    carried = 0
    known = {
        same_text(str(item.get("text", ""))): item
        for item in (previous or {}).get("messages") or []
        if isinstance(item, dict)
    }
    for entry in entries:
        item = known.get(same_text(entry.text))
        if item and (item.get("label") or item.get("skip")):
            entry.label, entry.skip = item.get("label") or None, bool(item.get("skip"))
            carried += 1
    return carried


def reason_counts(entries: Iterable[InboxEntry]) -> dict[str, int]:
    """How many entries (texts) show each reason."""
    counts = dict.fromkeys(REASONS, 0)
    for entry in entries:
        for reason in entry.reasons:
            counts[reason] += 1
    return counts


HEADER = """\
# Customer messages the assistant misunderstood ({since} to {until}), from `make inbox`.
# For each message write under `label:` the intent it should have been (an intent of domain.yml,
# or faq/<topic>), or replace `label:` by `skip: true`. You may correct the text (mark entities
# as in data/nlu: [PED-1001](order_id)). Then: make accept FILE={path}
# why: fallback (not understood), clarified (options offered; picked: the one chosen),
# before_handoff (the next message asked for a person). count: how many times it was written.
# conversation: a stable tag of the conversation (never the phone number).
"""


def render_inbox(entries: list[InboxEntry], since: datetime, until: datetime, zone: str, path: str) -> str:
    """The YAML file a designer edits: a header saying what to do, then one item per text."""
    local = ZoneInfo(zone)
    items = []
    for entry in entries:
        latest = entry.latest
        item: dict[str, Any] = {
            "text": entry.text,
            "why": ", ".join(reason for reason in REASONS if reason in entry.reasons),
            "predicted": latest.predicted,
            "confidence": latest.confidence,
        }
        if entry.picks:
            ordered = [intent for intent, _ in entry.picks.most_common()]
            item["picked"] = ordered[0] if len(ordered) == 1 else ordered
        item.update(
            count=entry.count,
            conversation=latest.conversation,
            at=latest.at.astimezone(local).isoformat(timespec="seconds"),
        )
        if entry.skip:
            item["skip"] = True
        else:
            item["label"] = entry.label
        items.append(item)
    body = yaml.safe_dump(
        {"messages": items}, allow_unicode=True, sort_keys=False, width=1_000_000, default_flow_style=False
    )
    # An empty `label:` reads as "fill me in" better than `label: null`.
    body = "\n".join(
        line[: -len(" null")] if line.endswith("label: null") else line for line in body.splitlines()
    )
    header = HEADER.format(
        since=since.astimezone(local).isoformat(timespec="minutes"),
        until=until.astimezone(local).isoformat(timespec="minutes"),
        path=path,
    )
    return header + body + "\n"
