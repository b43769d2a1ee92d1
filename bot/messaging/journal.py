"""The inbound journal: every message Twilio delivered, stored before the webhook answers 2xx.

Twilio retries a webhook until it gets a 2xx and never after, so what was acknowledged must
survive any crash. The webhook inserts one row per MessageSid (a unique key: the durable
de-duplication, shared by every replica) and answers only once the row is committed; a
database error answers 5xx and Twilio delivers again. Workers then take the rows of a
conversation one at a time, oldest first, under a lease in the same table:

- `take_next(phone)` leases the conversation's oldest unfinished row, and only that one: a
  newer message never overtakes an older one that is still unfinished (being processed by
  another replica, or waiting to be retried), so order per conversation holds across restarts;
- the lease (`claimed_by`, `lease_until`, on the clock) is taken with one atomic UPDATE … WHERE,
  so two replicas never process the same row, and renewed while the row is processed; a row
  whose lease expired (its process died) is taken again by whoever looks next;
- `finish` marks it done; `retry_later` gives it back with a backoff (`lease_until` then says
  when it may be taken again); after `MAX_ATTEMPTS` failures of its own (an outage of the action
  server, Redis or the database does not count) it is marked failed and logged;
- `prune` deletes finished rows after `RETENTION` (a week: Twilio stops retrying long before).

Card numbers never reach this table: the Body is stored masked (bot.masking), with a flag saying
it held card data, which is all the inbound rules need to route it to the card_data intent.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from bot.adapters.sql import SqlStore, from_db_time, to_db_time
from bot.clock import Clock
from bot.deep_links import is_link_payload
from bot.masking import depends_on_previous_card, mask_card_data, mask_sensitive
from bot.messaging.buttons import is_button_id
from bot.messaging.inbound import Channel, InboundMessage, Location, Media

logger = logging.getLogger(__name__)

metadata = sa.MetaData()

ACCEPTED, DONE, FAILED = "accepted", "done", "failed"
LEASE = timedelta(seconds=15)  # renewed every LEASE / 3 while a row is processed
MAX_ATTEMPTS = 12  # then the row is marked failed: a poison message must not block its conversation
BACKOFF_S = (1, 2, 4, 8, 15, 30)  # then 30 s between tries
# Finished rows are kept this long, then deleted: far longer than Twilio goes on retrying a
# delivery, so the de-duplication still holds, and the table does not grow without end.
RETENTION = timedelta(days=7)
# How long after a message with card data a lone 3-4 digit message is read as its security code
# (the inbound memory's MEMORY_TTL_S).
AFTER_CARD = timedelta(hours=24)

inbound_journal = sa.Table(
    "inbound_journal",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),  # arrival order
    sa.Column("message_sid", sa.String(64), nullable=False, unique=True),
    sa.Column("phone", sa.String(20), nullable=False),
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("address", sa.String(64)),  # the From the customer wrote from (whatsapp:+521…)
    sa.Column("body", sa.Text, nullable=False),  # card data masked
    sa.Column("card_data", sa.Boolean, nullable=False),  # the Body as written held card data
    sa.Column("details", sa.Text),  # JSON: profile_name, wa_id, media, location
    sa.Column("status", sa.String(16), nullable=False),  # accepted | done | failed
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("received_at", sa.DateTime, nullable=False),
    sa.Column("claimed_by", sa.String(64)),
    sa.Column("lease_until", sa.DateTime),  # leased until, or (unclaimed) not to be retried before
    sa.Column("finished_at", sa.DateTime),
    sa.Column("last_error", sa.String(500)),
    sa.Index("ix_inbound_journal_conversation", "phone", "status", "id"),
    sa.Index("ix_inbound_journal_status", "status", "lease_until"),
)


class DuplicateMessage(Exception):
    """This MessageSid is already in the journal: Twilio delivered it again."""


@dataclass(frozen=True)
class JournalEntry:
    id: int
    message: InboundMessage  # its text is the stored, masked Body
    address: str | None
    attempts: int  # including the attempt that took it
    received_at: datetime

    @property
    def replayed(self) -> bool:
        """Taken before: an earlier attempt may have reached Rasa or sent replies."""
        return self.attempts > 1


def _details(message: InboundMessage) -> str:
    location = message.location
    address = location.address if location is not None else None
    return json.dumps(
        {
            "profile_name": message.profile_name,
            "wa_id": message.wa_id,
            "media": [[m.url, m.content_type] for m in message.media],
            "location": None
            if location is None
            else [location.latitude, location.longitude, address and mask_sensitive(address)],
            # Only an id in the form the bot gives its buttons (or a template's button, a signed
            # link) is kept: anything else could not name an option, and a forged one could
            # carry what must not be stored (a card).
            "tapped_id": message.tapped_id if _kept_tap(message.tapped_id) else None,
        },
        ensure_ascii=False,
    )


def _kept_tap(tapped_id: str | None) -> bool:
    if is_button_id(tapped_id):
        return True
    return is_link_payload(tapped_id) and mask_sensitive(tapped_id or "") == tapped_id


def _entry(row: sa.engine.Row) -> JournalEntry:
    details = json.loads(row.details or "{}")
    location = details.get("location")
    message = InboundMessage(
        sid=row.message_sid,
        phone=row.phone,
        channel=Channel(row.channel),
        text=row.body,
        profile_name=details.get("profile_name"),
        wa_id=details.get("wa_id"),
        media=tuple(Media(url, kind) for url, kind in details.get("media") or []),
        location=None if location is None else Location(location[0], location[1], location[2]),
        card_data=bool(row.card_data),
        tapped_id=details.get("tapped_id"),
    )
    return JournalEntry(row.id, message, row.address, row.attempts, from_db_time(row.received_at))


class InboundJournal:
    """The inbound_journal table; see the module docstring. Synchronous: call it off the loop."""

    def __init__(self, store: SqlStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    @property
    def store(self) -> SqlStore:
        """The database the journal lives in: the channel keeps its other tables there too."""
        return self._store

    def _now(self) -> datetime:
        return to_db_time(self._clock.now())

    def accept(self, message: InboundMessage, address: str | None) -> int:
        """Store `message` durably; raise DuplicateMessage for a MessageSid already stored, or
        BackendUnavailable when the database cannot be reached (the webhook answers 5xx)."""
        try:
            return self._insert(message, address)
        except sa.exc.IntegrityError as error:  # the unique MessageSid: the transaction rolled back
            raise DuplicateMessage(message.sid) from error

    def _insert(self, message: InboundMessage, address: str | None) -> int:
        with self._store.connect() as conn:
            # A lone security code right after a card number is masked too: the conversation's
            # previous message, in arrival order, says whether it held card data (if it came
            # within AFTER_CARD, as long as the inbound memory remembers a card). Looked up only
            # for a message that could be one (3-4 digits alone): one query less for the others.
            masked = mask_card_data(message.text)
            if depends_on_previous_card(masked):
                previous = conn.execute(
                    sa.select(inbound_journal.c.card_data)
                    .where(
                        inbound_journal.c.phone == message.phone,
                        inbound_journal.c.received_at >= to_db_time(self._clock.now() - AFTER_CARD),
                    )
                    .order_by(inbound_journal.c.id.desc())
                    .limit(1)
                ).scalar()
                masked = mask_card_data(message.text, after_card=bool(previous))
            result = conn.execute(
                inbound_journal.insert().values(
                    message_sid=message.sid,
                    phone=message.phone,
                    channel=message.channel.value,
                    address=address,
                    body=masked.text,
                    card_data=masked.changed or message.card_data,
                    details=_details(message),
                    status=ACCEPTED,
                    attempts=0,
                    received_at=self._now(),
                )
            )
            return int(result.inserted_primary_key[0])

    def conversations_due(self, limit: int = 200) -> list[str]:
        """Phones with a row that may be taken now: new, retry due, or its lease expired."""
        now = self._now()
        query = (
            sa.select(inbound_journal.c.phone)
            .where(inbound_journal.c.status == ACCEPTED)
            .where(sa.or_(inbound_journal.c.lease_until.is_(None), inbound_journal.c.lease_until < now))
            .group_by(inbound_journal.c.phone)
            .order_by(sa.func.min(inbound_journal.c.id))
            .limit(limit)
        )
        with self._store.connect() as conn:
            return [row.phone for row in conn.execute(query)]

    def take_next(self, phone: str, worker: str) -> JournalEntry | None:
        """Lease the conversation's oldest unfinished row for `worker`; None when there is none, or
        when it is leased by another worker or waits for its retry (it must go first)."""
        with self._store.connect() as conn:
            return self._take_next(conn, phone, worker)

    def finish_and_take_next(self, entry_id: int, worker: str, phone: str) -> JournalEntry | None:
        """`finish(entry_id)`, then `take_next(phone)`, in one transaction: what the worker does
        between two messages of a conversation, one round of commit instead of two."""
        with self._store.connect() as conn:
            self._finish(conn, entry_id, worker)
            return self._take_next(conn, phone, worker)

    def _take_next(self, conn: sa.engine.Connection, phone: str, worker: str) -> JournalEntry | None:
        now = self._now()
        free = sa.or_(inbound_journal.c.lease_until.is_(None), inbound_journal.c.lease_until < now)
        lease = {"claimed_by": worker, "lease_until": now + LEASE, "attempts": inbound_journal.c.attempts + 1}
        oldest = (
            sa.select(inbound_journal.c.id)
            .where(inbound_journal.c.phone == phone, inbound_journal.c.status == ACCEPTED)
            .order_by(inbound_journal.c.id)
            .limit(1)
        )
        if conn.dialect.name == "postgresql":
            # One statement: the oldest unfinished row, leased only if it is free. Two workers racing
            # for it: the second waits for the first's row lock, then finds the row leased (READ
            # COMMITTED re-checks the WHERE on the row as the first left it) and takes nothing.
            row = conn.execute(
                inbound_journal.update()
                .where(inbound_journal.c.id == oldest.scalar_subquery(), inbound_journal.c.status == ACCEPTED)
                .where(free)
                .values(**lease)
                .returning(*inbound_journal.c)
            ).first()
            return None if row is None else _entry(row)
        row = conn.execute(
            sa.select(inbound_journal.c.id, inbound_journal.c.lease_until).where(
                inbound_journal.c.id == oldest.scalar_subquery()
            )
        ).first()
        if row is None or (row.lease_until is not None and row.lease_until >= now):
            return None
        taken = conn.execute(
            inbound_journal.update()
            .where(inbound_journal.c.id == row.id, inbound_journal.c.status == ACCEPTED)
            .where(free)
            .values(**lease)
        ).rowcount
        if taken != 1:
            return None  # another replica took it between the two statements
        return _entry(conn.execute(sa.select(inbound_journal).where(inbound_journal.c.id == row.id)).first())

    def renew(self, entry_id: int, worker: str) -> bool:
        """Extend the lease; False when it was lost (expired and taken by another worker)."""
        with self._store.connect() as conn:
            return (
                conn.execute(
                    inbound_journal.update()
                    .where(inbound_journal.c.id == entry_id, inbound_journal.c.claimed_by == worker)
                    .where(inbound_journal.c.status == ACCEPTED)
                    .values(lease_until=self._now() + LEASE)
                ).rowcount
                == 1
            )

    def finish(self, entry_id: int, worker: str) -> None:
        with self._store.connect() as conn:
            self._finish(conn, entry_id, worker)

    def _finish(self, conn: sa.engine.Connection, entry_id: int, worker: str) -> None:
        conn.execute(
            inbound_journal.update()
            .where(inbound_journal.c.id == entry_id, inbound_journal.c.claimed_by == worker)
            # What the customer wrote is in the tracker now: the journal keeps only what
            # de-duplication and the next message's card check need. (The first half of a
            # card split over two messages is not masked by its own screening; it stays
            # here only while its row is in flight.)
            .values(
                status=DONE,
                claimed_by=None,
                lease_until=None,
                finished_at=self._now(),
                body="",
                details=None,
            )
        )

    def retry_later(self, entry: JournalEntry, worker: str, error: str, *, outage: bool = False) -> bool:
        """Give the row back to be taken again after a backoff; False when it was given up.

        `outage`: the failure came from a system being down (the action server, Redis, the
        database), not from the message: such a row is retried for as long as the outage lasts."""
        give_up = entry.attempts >= MAX_ATTEMPTS and not outage
        delay = BACKOFF_S[min(entry.attempts, len(BACKOFF_S)) - 1]
        values = {"claimed_by": None, "last_error": error[:500]}
        if give_up:
            values.update(status=FAILED, lease_until=None, finished_at=self._now())
        else:
            values["lease_until"] = self._now() + timedelta(seconds=delay)
        with self._store.connect() as conn:
            conn.execute(
                inbound_journal.update()
                .where(inbound_journal.c.id == entry.id, inbound_journal.c.claimed_by == worker)
                .values(**values)
            )
        if give_up:
            logger.error(
                "message %s of %s given up after %d attempts: %s",
                entry.message.sid,
                entry.message.phone,
                entry.attempts,
                error,
            )
        return not give_up

    def prune(self, older_than: timedelta = RETENTION) -> int:
        """Delete rows finished (done or failed) more than `older_than` ago; how many."""
        with self._store.connect() as conn:
            return conn.execute(
                inbound_journal.delete()
                .where(inbound_journal.c.status.in_([DONE, FAILED]))
                .where(inbound_journal.c.finished_at < self._now() - older_than)
            ).rowcount

    def status_of(self, message_sid: str) -> str | None:
        with self._store.connect() as conn:
            return conn.execute(
                sa.select(inbound_journal.c.status).where(inbound_journal.c.message_sid == message_sid)
            ).scalar()

    def stored_body(self, message_sid: str) -> str | None:
        with self._store.connect() as conn:
            return conn.execute(
                sa.select(inbound_journal.c.body).where(inbound_journal.c.message_sid == message_sid)
            ).scalar()
