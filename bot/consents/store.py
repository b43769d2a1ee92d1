"""The consent tables: what each number receives now (`consents`) and every change that led there
(`consent_log`, append-only: this module only ever inserts into it), on the assistant's database.

A change and its log row are written in one transaction, so the table never says what the log
cannot explain. A change made by an inbound message carries its MessageSid: the message replayed
after a crash (the inbound journal's at-least-once processing) finds its row and logs nothing twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from bot.adapters.sql import SqlStore, from_db_time, to_db_time, upsert
from bot.clock import Clock
from bot.masking import mask_sensitive
from bot.messaging.inbound import Channel

metadata = sa.MetaData()

# One row per (number, topic, channel) the customer chose for; a missing row is the topic's default.
consents = sa.Table(
    "consents",
    metadata,
    sa.Column("phone", sa.String(20), primary_key=True),
    sa.Column("topic", sa.String(40), primary_key=True),
    sa.Column("channel", sa.String(16), primary_key=True),  # whatsapp | sms
    sa.Column("granted", sa.Boolean, nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False),
)

# Who changed what, when (the project clock, UTC), through which channel and with which message.
consent_log = sa.Table(
    "consent_log",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.DateTime, nullable=False),
    sa.Column("phone", sa.String(20), nullable=False),  # who: the number it applies to
    sa.Column("topic", sa.String(40), nullable=False),  # a topic id, or "*" for BAJA / ALTA
    sa.Column("channel", sa.String(16), nullable=False),  # the channel the consent is for
    sa.Column("granted", sa.Boolean, nullable=False),
    sa.Column("via", sa.String(16), nullable=False),  # the channel the customer wrote from
    sa.Column("source", sa.String(24), nullable=False),  # keyword (BAJA/ALTA) | preferences | operator
    sa.Column("message_id", sa.String(64)),  # the inbound MessageSid that did it
    sa.Column("message_text", sa.String(200)),  # what it said, card data masked
    sa.Index("ix_consent_log_at", "at"),
    sa.Index("ix_consent_log_phone", "phone", "at"),
    sa.Index("ix_consent_log_message", "message_id", "topic", "channel", unique=True),
)


@dataclass(frozen=True)
class ConsentChange:
    """One change as its channel or action asks for it."""

    phone: str
    topic: str
    channel: Channel
    granted: bool
    via: str  # whatsapp | sms | rest …: where the customer wrote it
    source: str  # keyword | preferences | operator
    message_id: str | None = None
    message_text: str = ""


@dataclass(frozen=True)
class LoggedConsent:
    id: int
    at: datetime
    phone: str
    topic: str
    channel: str
    granted: bool
    via: str
    source: str
    message_id: str | None
    message_text: str | None


class ConsentBook:
    """Current consents and their log; the clock stamps every change."""

    def __init__(self, store: SqlStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    def choices(self, phone: str) -> dict[tuple[str, str], bool]:
        """The number's own choices by (topic, channel); what is missing is the topic's default."""
        query = sa.select(consents.c.topic, consents.c.channel, consents.c.granted).where(
            consents.c.phone == phone
        )
        with self._store.connect() as conn:
            return {(row.topic, row.channel): bool(row.granted) for row in conn.execute(query)}

    def change(self, change: ConsentChange) -> bool:
        """Record `change`: the current table (not for BAJA / ALTA, which the channel keeps in
        channel_contacts) and a log row. False when this message's change was logged before."""
        now = to_db_time(self._clock.now())
        text = mask_sensitive(change.message_text or "")[:200] or None
        with self._store.connect() as conn:
            if change.message_id and self._logged(conn, change):
                return False
            if change.topic != "*":
                upsert(
                    conn, consents,
                    {"phone": change.phone, "topic": change.topic, "channel": change.channel.value},
                    {"granted": change.granted, "updated_at": now},
                )  # fmt: skip
            conn.execute(
                consent_log.insert().values(
                    at=now, phone=change.phone, topic=change.topic, channel=change.channel.value,
                    granted=change.granted, via=change.via, source=change.source,
                    message_id=change.message_id, message_text=text,
                )
            )  # fmt: skip
        return True

    @staticmethod
    def _logged(conn: sa.engine.Connection, change: ConsentChange) -> bool:
        query = sa.select(consent_log.c.id).where(
            consent_log.c.message_id == change.message_id,
            consent_log.c.topic == change.topic,
            consent_log.c.channel == change.channel.value,
        )
        return conn.execute(query).first() is not None

    def log_between(self, start: datetime, end: datetime) -> list[LoggedConsent]:
        """The log rows of [start, end), oldest first: what the CSV export writes."""
        return self._log(consent_log.c.at >= to_db_time(start), consent_log.c.at < to_db_time(end))

    def log_for(self, phone: str) -> list[LoggedConsent]:
        """One number's log, oldest first (support and tests)."""
        return self._log(consent_log.c.phone == phone)

    def _log(self, *where: sa.ColumnElement) -> list[LoggedConsent]:
        query = sa.select(consent_log).where(*where).order_by(consent_log.c.at, consent_log.c.id)
        with self._store.connect() as conn:
            rows = conn.execute(query).all()
        return [
            LoggedConsent(
                id=row.id,
                at=from_db_time(row.at),
                phone=row.phone,
                topic=row.topic,
                channel=row.channel,
                granted=bool(row.granted),
                via=row.via,
                source=row.source,
                message_id=row.message_id,
                message_text=row.message_text,
            )  # fmt: skip
            for row in rows
        ]
