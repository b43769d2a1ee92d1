"""The outbox's table and repository: writes for the CRM/ERP kept in the assistant's own database.

What a write means and how it is applied is not known here: bot/outbox.py submits them and
bot/outbox_worker.py retries them.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from bot.adapters.sql import SqlStore, from_db_time, lease_due_rows, to_db_time

metadata = sa.MetaData()

outbox_writes = sa.Table(
    "outbox_writes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("idempotency_key", sa.String(64), nullable=False, unique=True),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("payload", sa.JSON, nullable=False),
    sa.Column("management_id", sa.String(32), nullable=False),
    sa.Column("conversation_id", sa.String(255), nullable=False),
    sa.Column("customer_phone", sa.String(20)),
    sa.Column("status", sa.String(16), nullable=False),  # pending | applied | failed
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt_at", sa.DateTime, nullable=False),
    sa.Column("locked_until", sa.DateTime),  # a worker (or the submitter) is trying it
    sa.Column("last_error", sa.String(500)),
    sa.Column("failure_case_id", sa.String(16)),  # the case opened when it finally failed
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("finished_at", sa.DateTime),
    sa.Index("ix_outbox_writes_due", "status", "next_attempt_at"),
    sa.Index("ix_outbox_writes_conversation", "conversation_id", "kind"),
)

# Longer than one attempt can take (connect + read timeout), so a write is never tried twice at
# once; a submitter or worker that died mid-attempt leaves it to another after this.
LEASE = timedelta(seconds=60)


@dataclass(frozen=True)
class OutboxEntry:
    id: int
    idempotency_key: str
    kind: str
    payload: dict[str, Any]
    management_id: str
    conversation_id: str
    customer_phone: str | None
    status: str
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    failure_case_id: str | None
    created_at: datetime


def _entry(row: sa.engine.Row) -> OutboxEntry:
    return OutboxEntry(
        id=row.id,
        idempotency_key=row.idempotency_key,
        kind=row.kind,
        payload=dict(row.payload),
        management_id=row.management_id,
        conversation_id=row.conversation_id,
        customer_phone=row.customer_phone,
        status=row.status,
        attempts=row.attempts,
        next_attempt_at=from_db_time(row.next_attempt_at),
        last_error=row.last_error,
        failure_case_id=row.failure_case_id,
        created_at=from_db_time(row.created_at),
    )


class Outbox:
    """The `outbox_writes` table on the assistant's database (DATABASE_URL)."""

    def __init__(self, store: SqlStore) -> None:
        self.store = store

    def add(
        self,
        kind: str,
        payload: Mapping[str, Any],
        management_id: str,
        conversation_id: str,
        customer_phone: str | None,
        now: datetime,
    ) -> OutboxEntry:
        """A new pending write, leased to its submitter for its first attempt."""
        values = {
            "idempotency_key": str(uuid.uuid4()),
            "kind": kind,
            "payload": dict(payload),
            "management_id": management_id,
            "conversation_id": conversation_id,
            "customer_phone": customer_phone,
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": to_db_time(now),
            "locked_until": to_db_time(now + LEASE),
            "created_at": to_db_time(now),
        }
        with self.store.connect() as conn:
            new_id = conn.execute(outbox_writes.insert().values(**values)).inserted_primary_key[0]
            return _entry(conn.execute(sa.select(outbox_writes).where(outbox_writes.c.id == new_id)).one())

    def get(self, entry_id: int) -> OutboxEntry | None:
        with self.store.connect() as conn:
            row = conn.execute(sa.select(outbox_writes).where(outbox_writes.c.id == entry_id)).first()
        return _entry(row) if row else None

    def entries(self, status: str | None = None) -> list[OutboxEntry]:
        query = sa.select(outbox_writes).order_by(outbox_writes.c.id)
        if status:
            query = query.where(outbox_writes.c.status == status)
        with self.store.connect() as conn:
            return [_entry(row) for row in conn.execute(query)]

    def pending_for(self, conversation_id: str, kind: str) -> list[OutboxEntry]:
        query = (
            sa.select(outbox_writes)
            .where(
                outbox_writes.c.conversation_id == conversation_id,
                outbox_writes.c.kind == kind,
                outbox_writes.c.status == "pending",
            )
            .order_by(outbox_writes.c.id.desc())
        )
        with self.store.connect() as conn:
            return [_entry(row) for row in conn.execute(query)]

    def claim_due(self, now: datetime, limit: int = 20) -> list[OutboxEntry]:
        """Lease up to `limit` due writes to this caller; safe with several workers at once."""
        with self.store.connect() as conn:
            rows = lease_due_rows(
                conn,
                outbox_writes,
                due_column=outbox_writes.c.next_attempt_at,
                now=now,
                lease=LEASE,
                limit=limit,
                order_by=(outbox_writes.c.next_attempt_at,),
            )
        return sorted((_entry(row) for row in rows), key=lambda entry: entry.next_attempt_at)

    def _update(self, entry_id: int, **values: Any) -> None:
        with self.store.connect() as conn:
            conn.execute(outbox_writes.update().where(outbox_writes.c.id == entry_id).values(**values))

    def mark_applied(self, entry_id: int, attempts: int, now: datetime) -> None:
        self._update(
            entry_id, status="applied", attempts=attempts, locked_until=None, finished_at=to_db_time(now)
        )

    def retry_later(self, entry_id: int, attempts: int, at: datetime, error: str) -> None:
        self._update(
            entry_id,
            attempts=attempts,
            next_attempt_at=to_db_time(at),
            locked_until=None,
            last_error=error[:500],
        )

    def mark_failed(
        self, entry_id: int, attempts: int, now: datetime, error: str, case_id: str | None
    ) -> None:
        self._update(
            entry_id,
            status="failed",
            attempts=attempts,
            locked_until=None,
            last_error=error[:500],
            failure_case_id=case_id,
            finished_at=to_db_time(now),
        )
