"""The notifications table: every event received, its decision, when it is due, its attempts and
its result, so a crash between receiving and sending loses nothing and a restart resumes.

Status: pending (due at `due_at`; deferred ones too, with the reason) → sent (with Twilio's sid) |
skipped (with the reason) | held (the sender refused it for now, e.g. outside WhatsApp's 24-hour
window: a template is needed; never silently dropped) | failed (with the error).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from bot.adapters.sql import SqlStore, from_db_time, lease_due_rows, to_db_time
from bot.notifications.events import NotificationEvent, parse_event

metadata = sa.MetaData()

notifications = sa.Table(
    "notifications",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("source", sa.String(120), nullable=False),
    sa.Column("event_id", sa.String(120), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("phone", sa.String(20)),  # as received, then the number it was sent to
    sa.Column("customer_id", sa.String(64)),
    sa.Column("payload", sa.JSON, nullable=False),  # the event as received (events.to_payload)
    sa.Column("status", sa.String(16), nullable=False),  # pending | sent | skipped | held | failed
    sa.Column("reason", sa.String(300)),  # why deferred, skipped, held or failed
    sa.Column("due_at", sa.DateTime, nullable=False),
    sa.Column("locked_until", sa.DateTime),  # a worker is deciding or sending it
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("message_sid", sa.String(64)),
    sa.Column("send_status", sa.String(24)),  # the sender's result (queued, outbox, unknown…)
    sa.Column("received_at", sa.DateTime, nullable=False),
    sa.Column("finished_at", sa.DateTime),
    # For analytics (0023): the channel it went on, the reasons it was deferred for at least
    # once (comma-separated: quiet_hours, daily_cap), and until when its deep links worked.
    sa.Column("channel", sa.String(16)),
    sa.Column("deferred", sa.String(64)),
    sa.Column("link_expires_at", sa.DateTime),
    sa.UniqueConstraint("source", "event_id", name="uq_notifications_event"),
    sa.Index("ix_notifications_due", "status", "due_at"),
    sa.Index("ix_notifications_sent", "phone", "status", "finished_at"),
)

FINAL = ("sent", "skipped", "held", "failed")


@dataclass(frozen=True)
class StoredNotification:
    id: int
    event: NotificationEvent
    status: str
    reason: str | None
    due_at: datetime
    attempts: int
    phone: str | None
    message_sid: str | None
    send_status: str | None
    finished_at: datetime | None


class NotificationStore:
    """The notifications table on the assistant's database (DATABASE_URL)."""

    def __init__(self, store: SqlStore) -> None:
        self._store = store

    def receive(self, event: NotificationEvent, now: datetime) -> tuple[int, bool]:
        """Store `event` as pending, due now; (its id, True) — or (the first one's id, False) when
        the same (source, event_id) was received before: it is never stored or sent twice."""
        db_now = to_db_time(now)
        try:
            with self._store.connect() as conn:
                result = conn.execute(
                    notifications.insert().values(
                        source=event.source,
                        event_id=event.event_id,
                        kind=event.kind.value,
                        phone=event.phone,
                        customer_id=event.customer_id,
                        payload=event.to_payload(),
                        status="pending",
                        due_at=db_now,
                        attempts=0,
                        received_at=db_now,
                    )
                )
            return int(result.inserted_primary_key[0]), True
        except sa.exc.IntegrityError:
            found = self.by_event(event.source, event.event_id)
            if found is None:  # not a duplicate after all: some other constraint
                raise
            return found.id, False

    def claim_due(self, now: datetime, lease: timedelta, limit: int = 20) -> list[StoredNotification]:
        """Lease up to `limit` due notifications to this caller, oldest due first; safe with several
        workers at once. A worker that dies leaves its lease to expire, and another takes over."""
        with self._store.connect() as conn:
            rows = lease_due_rows(
                conn,
                notifications,
                due_column=notifications.c.due_at,
                now=now,
                lease=lease,
                limit=limit,
                order_by=(notifications.c.due_at, notifications.c.id),
            )
        return sorted((_stored(row) for row in rows), key=lambda item: (item.due_at, item.id))

    def _update(self, row_id: int, **values: Any) -> None:
        with self._store.connect() as conn:
            conn.execute(notifications.update().where(notifications.c.id == row_id).values(**values))

    def defer(self, row_id: int, until: datetime, reason: str) -> None:
        """Due again at `until`; `reason` joins the reasons it was ever deferred for (analytics)."""
        with self._store.connect() as conn:
            before = conn.execute(
                sa.select(notifications.c.deferred).where(notifications.c.id == row_id)
            ).scalar()
            reasons = sorted({*(before or "").split(","), reason} - {""})
            values = {"due_at": to_db_time(until), "reason": reason, "locked_until": None}
            conn.execute(
                notifications.update()
                .where(notifications.c.id == row_id)
                .values(**values, deferred=",".join(reasons)[:64])
            )

    def retry_later(self, row_id: int, attempts: int, until: datetime, error: str) -> None:
        self._update(
            row_id, attempts=attempts, due_at=to_db_time(until), reason=error[:300], locked_until=None
        )

    def finish(
        self,
        row_id: int,
        status: str,
        now: datetime,
        *,
        attempts: int,
        reason: str | None = None,
        phone: str | None = None,
        message_sid: str | None = None,
        send_status: str | None = None,
        channel: str | None = None,
        link_expires_at: datetime | None = None,
    ) -> None:
        assert status in FINAL, status
        values: dict[str, Any] = {
            "status": status,
            "reason": reason[:300] if reason else None,
            "attempts": attempts,
            "locked_until": None,
            "finished_at": to_db_time(now),
            "message_sid": message_sid,
            "send_status": send_status,
        }
        if phone:
            values["phone"] = phone
        if channel:
            values["channel"] = channel
        if link_expires_at is not None:
            values["link_expires_at"] = to_db_time(link_expires_at)
        self._update(row_id, **values)

    def sent_between(self, phone: str, start: datetime, end: datetime) -> int:
        """How many notifications went to `phone` in [start, end): the daily cap's count."""
        query = (
            sa.select(sa.func.count())
            .select_from(notifications)
            .where(
                notifications.c.phone == phone,
                notifications.c.status == "sent",
                notifications.c.finished_at >= to_db_time(start),
                notifications.c.finished_at < to_db_time(end),
            )
        )
        with self._store.connect() as conn:
            return int(conn.execute(query).scalar() or 0)

    def by_event(self, source: str, event_id: str) -> StoredNotification | None:
        query = sa.select(notifications).where(
            notifications.c.source == source, notifications.c.event_id == event_id
        )
        with self._store.connect() as conn:
            row = conn.execute(query).first()
        return None if row is None else _stored(row)

    def get(self, row_id: int) -> StoredNotification | None:
        with self._store.connect() as conn:
            row = conn.execute(sa.select(notifications).where(notifications.c.id == row_id)).first()
        return None if row is None else _stored(row)

    def all(self) -> list[StoredNotification]:
        with self._store.connect() as conn:
            rows = conn.execute(sa.select(notifications).order_by(notifications.c.id)).all()
        return [_stored(row) for row in rows]


def _stored(row: sa.engine.Row) -> StoredNotification:
    return StoredNotification(
        id=row.id,
        event=parse_event(row.payload),
        status=row.status,
        reason=row.reason,
        due_at=from_db_time(row.due_at),
        attempts=row.attempts,
        phone=row.phone,
        message_sid=row.message_sid,
        send_status=row.send_status,
        finished_at=from_db_time(row.finished_at),
    )
