"""Tracker and lock stores that Rasa builds from the assistant's settings (DATABASE_URL, REDIS_URL).

endpoints.yml names these classes, so the database and Redis are configured in one place,
the environment, and the embedded defaults need no configuration at all.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rasa.core.brokers.broker import EventBroker
from rasa.core.lock_store import InMemoryLockStore, LockStore, RedisLockStore
from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.constants import REQUESTED_SLOT
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import (
    ActiveLoop,
    Event,
    SessionStarted,
    SlotSet,
    UserUttered,
    deserialise_events,
)
from rasa.shared.core.trackers import DialogueStateTracker
from redis.connection import SSLConnection, parse_url
from sqlalchemy.engine import make_url
from sqlalchemy.orm import sessionmaker

from bot.adapters.sql import create_engine, is_sqlite_file
from bot.masking import (
    CARD_MASK,
    CARRIED_CARD_DIGITS,
    SECRET_MASK,
    mask_card_data,
    mask_carried_card,
    mask_sensitive,
)
from bot.settings import Settings
from bot.wiring import wiring


def tracker_store_arguments(database_url: str) -> dict[str, Any]:
    """SQLTrackerStore's keyword arguments for a SQLAlchemy URL."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    return {
        "dialect": url.drivername,
        "host": url.host,
        "port": url.port,
        "db": url.database,
        "username": url.username,
        "password": url.password,
        "query": dict(url.query) or None,
    }


@dataclass
class _SessionEvents:
    """The events of a conversation's latest session, as stored up to row `last_id`."""

    last_id: int
    events: list[Event]


class SettingsTrackerStore(SQLTrackerStore):
    """Rasa's SQL tracker store on DATABASE_URL (SQLite under var/ when unset).

    Rasa rebuilds the tracker from every stored event of the session on each message, and
    turning JSON back into events costs more than everything the policies do: a conversation
    of 70 turns spent 40 ms of CPU per message there. This store keeps each recent
    conversation's deserialised events and reads only the rows added since (by this process or
    another replica), so a message costs the same at turn 70 as at turn 3. Every call still
    builds a new tracker object: nothing is shared between a message being processed and,
    say, an HTTP API read of the same conversation.
    """

    # Conversations whose events stay in memory (most recently used first out).
    CACHED_CONVERSATIONS = 500

    def __init__(
        self,
        domain: Domain | None = None,
        event_broker: EventBroker | None = None,
        settings: Settings | None = None,
        **_endpoint_kwargs: Any,
    ) -> None:
        settings = settings or wiring().settings
        super().__init__(
            domain=domain,
            event_broker=event_broker,
            **tracker_store_arguments(settings.database_url),
        )
        if is_sqlite_file(self.engine.url):
            # Rasa's engine opens a connection per session on a SQLite file: pool them instead.
            url = self.engine.url
            self.engine.dispose()
            self.engine = create_engine(url)
            self.sessionmaker = sessionmaker(bind=self.engine)
        self._sessions: OrderedDict[str, _SessionEvents] = OrderedDict()
        self._sessions_lock = threading.Lock()  # the channel's worker thread and the HTTP API

    async def _retrieve(
        self, sender_id: str, fetch_events_from_all_sessions: bool
    ) -> DialogueStateTracker | None:
        if fetch_events_from_all_sessions or not self.domain:
            return await super()._retrieve(sender_id, fetch_events_from_all_sessions)
        with self._sessions_lock:
            cached = self._sessions.pop(sender_id, None)
        cached = self._load_session(sender_id) if cached is None else self._catch_up(sender_id, cached)
        if cached is None:
            return None
        with self._sessions_lock:
            self._sessions[sender_id] = cached
            while len(self._sessions) > self.CACHED_CONVERSATIONS:
                self._sessions.popitem(last=False)
        return DialogueStateTracker.from_events(sender_id, list(cached.events), self.domain.slots)

    def _load_session(self, sender_id: str) -> _SessionEvents | None:
        with self.session_scope() as session:
            rows = self._event_query(session, sender_id, fetch_events_from_all_sessions=False).all()
        if not rows:
            return None
        return _SessionEvents(rows[-1].id, deserialise_events([json.loads(row.data) for row in rows]))

    def _catch_up(self, sender_id: str, cached: _SessionEvents) -> _SessionEvents | None:
        with self.session_scope() as session:
            rows = (
                session.query(self.SQLEvent)
                .filter(self.SQLEvent.sender_id == sender_id, self.SQLEvent.id > cached.last_id)
                .order_by(self.SQLEvent.id)
                .all()
            )
        if not rows:
            return cached
        if any(row.type_name == SessionStarted.type_name for row in rows):
            # A new session began: which earlier events still belong to it is the SQL
            # store's rule (by timestamp), so ask it rather than guess.
            return self._load_session(sender_id)
        new_events = deserialise_events([json.loads(row.data) for row in rows])
        return _SessionEvents(rows[-1].id, cached.events + new_events)

    async def stream_events(self, tracker: DialogueStateTracker) -> None:
        """The new events to the event broker (analytics, docs/kpis.md), masked as they are
        stored: Rasa's own streams them as they came, card data and one-time codes included."""
        if self.event_broker is None:
            return
        stored = await self.retrieve(tracker.sender_id)
        first_new = len(stored.events) if stored else 0
        await self._stream_new_events(
            self.event_broker, masked_events(list(tracker.events), first_new), tracker.sender_id
        )

    # --- payments (issue 6): nothing secret is ever written -------------------------------
    def _additional_events(self, session: Any, tracker: DialogueStateTracker) -> Iterator[Event]:
        """The events to store, with card data, one-time codes and document digits masked.

        The channels already turn card data into the card_data intent; this is the second line,
        for anything that reaches Rasa another way (its HTTP API). A message that answers the
        code question (the form's requested_slot) is stored as a mask, never as the code.
        """
        new = list(super()._additional_events(session, tracker))
        first_new = len(tracker.events) - len(new)
        events = list(tracker.events)
        stored = [(index, event) for index, event in carried_card_rewrites(events) if index < first_new]
        for index, masked in stored:
            self._rewrite_stored_user_event(session, tracker.sender_id, events[index], masked)
        return iter(masked_events(events, first_new))

    def _rewrite_stored_user_event(self, session: Any, sender_id: str, old: Event, masked: Event) -> None:
        """A card split across two messages: the first, stored before the second completed the
        card, gets its digits masked in place (one UPDATE of its row, in the save's transaction)."""
        rows = (
            session.query(self.SQLEvent)
            .filter(self.SQLEvent.sender_id == sender_id, self.SQLEvent.type_name == UserUttered.type_name)
            .order_by(self.SQLEvent.id.desc())
            .limit(5)
            .all()
        )
        for row in rows:
            if json.loads(row.data).get("text") == old.as_dict().get("text"):
                row.data = json.dumps(masked.as_dict())
                break
        with self._sessions_lock:  # the cached events hold the old text
            self._sessions.pop(sender_id, None)


# --- payments (issue 6) ---
# Slots whose answers are secrets: the message that answers them and their values are masked.
SECRET_SLOTS = {"otp_code", "identity_document"}


def _masked_user(event: UserUttered, secret_answer: bool, after_card: bool) -> tuple[UserUttered, bool]:
    data = event.as_dict()
    text = data.get("text") or ""
    masked = mask_card_data(text, after_card=after_card)
    new_text = SECRET_MASK if secret_answer and not text.startswith("/") else masked.text
    if new_text == text:
        return event, masked.card
    parse_data = dict(data.get("parse_data") or {})
    parse_data["text"] = new_text
    parse_data["entities"] = [
        {**entity, "value": SECRET_MASK} if str(entity.get("value", "")) in text else entity
        for entity in parse_data.get("entities") or []
    ]
    data["text"], data["parse_data"] = new_text, parse_data
    return Event.from_parameters(data), masked.card or CARD_MASK in text


def carried_card_rewrites(events: list[Event]) -> list[tuple[int, Event]]:
    """The customer messages that began a card the next message completed (its metadata says
    how many digits it took, bot.masking.CARRIED_CARD_DIGITS), with those digits masked."""
    rewrites: list[tuple[int, Event]] = []
    previous: int | None = None
    for index, event in enumerate(events):
        if not isinstance(event, UserUttered):
            continue
        carried = (event.metadata or {}).get(CARRIED_CARD_DIGITS)
        if previous is not None and isinstance(carried, int) and carried > 0:
            before = events[previous]
            text = mask_carried_card(before.text or "", carried)
            if text != before.text:
                data = before.as_dict()
                parse_data = {**(data.get("parse_data") or {}), "text": text, "entities": []}
                data["text"], data["parse_data"] = text, parse_data
                rewrites.append((previous, Event.from_parameters(data)))
        previous = index
    return rewrites


def masked_events(events: list[Event], first_new: int) -> list[Event]:
    """events[first_new:] safe to store: card data, codes and document digits masked (also the
    first part of a card split across two messages, when both are new)."""
    events = list(events)
    for index, masked in carried_card_rewrites(events):
        if index >= first_new:
            events[index] = masked
    requested: str | None = None
    after_card = False
    out: list[Event] = []
    for index, event in enumerate(events):
        if isinstance(event, UserUttered):
            masked, card = _masked_user(event, requested in SECRET_SLOTS, after_card)
            after_card = card or CARD_MASK in (event.text or "")
            event = masked if index >= first_new else event
        elif isinstance(event, SlotSet):
            if event.key == REQUESTED_SLOT:
                requested = event.value
            elif event.key in SECRET_SLOTS and event.value is not None and index >= first_new:
                event = SlotSet(event.key, SECRET_MASK, event.timestamp, event.metadata)
            elif isinstance(event.value, str) and index >= first_new:
                value = mask_sensitive(event.value)
                if value != event.value:
                    event = SlotSet(event.key, value, event.timestamp, event.metadata)
        elif isinstance(event, ActiveLoop) and event.name is None:
            requested = None
        if index >= first_new:
            out.append(event)
    return out


def lock_store_for(settings: Settings) -> LockStore:
    """Rasa's Redis lock store when REDIS_URL is set (shared by replicas), else in-process."""
    if not settings.redis_url:
        return InMemoryLockStore()
    options = parse_url(settings.redis_url)
    return RedisLockStore(
        host=options.get("host", "localhost"),
        port=int(options.get("port", 6379)),
        db=int(options.get("db", 0)),
        username=options.get("username"),
        password=options.get("password"),
        use_ssl=options.get("connection_class") is SSLConnection,
    )


class SettingsLockStore:
    """endpoints.yml's lock store type: constructing it yields the store `lock_store_for` picks."""

    def __new__(cls, endpoint_config: Any = None) -> LockStore:  # type: ignore[misc]
        return lock_store_for(wiring().settings)
