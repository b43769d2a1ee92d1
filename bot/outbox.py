"""No lost writes: every change for the CRM/ERP goes through a durable outbox and is applied once.

`submit_write` records the change in the `outbox_writes` table (the assistant's own database)
with an Idempotency-Key, then tries it at once. If the system is down, the customer still gets
the management ID and an honest "we registered it and will confirm here"; the worker
(`python -m bot.outbox`, started by `make run`) retries it with exponential backoff and jitter,
always with the same key, so the system applies it once. When it goes through, the customer
gets a confirmation; when it finally fails (OUTBOX_MAX_ATTEMPTS or OUTBOX_MAX_AGE_S), a case
is opened in the assistant's own case book for a person to finish by hand, and the customer is
told so.

A new kind of write is one function registered with `@write_kind(...)`; see `case.add`,
`delivery.reschedule`, `contact.update` and `billing.promise` below.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import random
import signal
import sys
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from enum import Enum
from functools import lru_cache
from typing import Any

import sqlalchemy as sa

from bot.adapters.base import BackendUnavailable, CaseBook, idempotency_key
from bot.adapters.rest.wire import (  # payloads use the contract's JSON shapes
    case_from_wire,
    change_from_wire,
    contact_change_from_wire,
)
from bot.adapters.sql import SqlCaseBook, SqlStore, from_db_time, to_db_time
from bot.clock import SystemClock
from bot.records import CaseKind, ContactField, RescheduleOutcome

logger = logging.getLogger(__name__)

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


class WriteStatus(str, Enum):
    APPLIED = "applied"  # the system has it now
    QUEUED = "queued"  # kept in the outbox; confirmed to the customer when it goes through


@dataclass(frozen=True)
class WriteOutcome:
    status: WriteStatus
    management_id: str


class WriteRejected(Exception):
    """The system refused this change for good (it is invalid, or conflicts): no retry can help."""


class WriteConflict(WriteRejected):
    """The change collides with what exists (e.g. its id is taken); the caller may redo it.

    `code` says which collision (`id_taken`, `window_full`...), for callers that answer each.
    """

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


def _no_values(_payload: Mapping[str, Any]) -> dict[str, str]:
    return {}


@dataclass(frozen=True)
class WriteKind:
    name: str
    apply: Callable[[Any, Mapping[str, Any]], None]  # (backends, payload); raises on failure
    confirmation: str  # domain response sent when a queued write goes through
    failure: str = "utter_write_failed"  # ...when it finally fails (a case for a person is opened)
    conflict: str | None = None  # ...when it meets a WriteConflict on a retry; None: `failure`
    # Extra {placeholders} of those responses, read from the payload (management_id and case_id
    # are always there).
    values: Callable[[Mapping[str, Any]], dict[str, str]] = _no_values


WRITE_KINDS: dict[str, WriteKind] = {}


def write_kind(
    name: str,
    confirmation: str,
    *,
    failure: str = "utter_write_failed",
    conflict: str | None = None,
    values: Callable[[Mapping[str, Any]], dict[str, str]] = _no_values,
) -> Callable:
    """Register `apply(backends, payload)` as the way to carry out writes of kind `name`."""

    def register(apply: Callable[[Any, Mapping[str, Any]], None]) -> Callable:
        WRITE_KINDS[name] = WriteKind(name, apply, confirmation, failure, conflict, values)
        return apply

    return register


# --- the writes the assistant makes -------------------------------------------------------------


@write_kind("case.add", confirmation="utter_write_confirmed")
def apply_case_add(backends: Any, payload: Mapping[str, Any]) -> None:
    if not backends.cases.add(case_from_wire(payload)):
        raise WriteConflict(f"case id {payload.get('id')} is taken", code="id_taken")


# --- reschedule: payload {"change": ScheduleChange as the contract writes it, "notice": {order_id,
# window}: how the customer was told the window, for the confirmation} ---


def _reschedule_notice(payload: Mapping[str, Any]) -> dict[str, str]:
    notice = payload.get("notice") or {}
    return {"order_id": str(notice.get("order_id", "")), "window": str(notice.get("window", ""))}


@write_kind(
    "delivery.reschedule",
    confirmation="utter_reschedule_confirmed_later",
    failure="utter_reschedule_queued_failed",
    conflict="utter_reschedule_queued_conflict",
    values=_reschedule_notice,
)
def apply_reschedule(backends: Any, payload: Mapping[str, Any]) -> None:
    change = change_from_wire(payload["change"])
    outcome = backends.erp.reschedule(change)
    if outcome is RescheduleOutcome.ID_TAKEN and any(
        done.id == change.id and done.new_slot_id == change.new_slot_id
        for done in backends.erp.schedule_history(change.order_id)
    ):
        # Applied by an attempt whose answer was lost (an ERP without idempotency keys, such as
        # the SQL one when the connection dropped at commit): this very change is there.
        return
    if outcome is not RescheduleOutcome.DONE:
        raise WriteConflict(f"reschedule {change.id}: {outcome.value}", code=outcome.value)


# --- contact data and promises to pay (issue 6) ---


def _contact_notice(payload: Mapping[str, Any]) -> dict[str, str]:
    notice = payload.get("notice") or {}
    return {"field": str(notice.get("field", "")), "new": str(notice.get("new", ""))}


@write_kind("contact.update", confirmation="utter_contact_confirmed_later", values=_contact_notice)
def apply_contact_update(backends: Any, payload: Mapping[str, Any]) -> None:
    change = contact_change_from_wire(payload["change"])
    if change.old is None:
        # Queued while the CRM could not even be read: the audit's old value is read now, before
        # the change (an HTTP CRM records it from its own data anyway).
        details = backends.crm.contact_details(change.customer_id)
        if details is None:
            raise WriteRejected(f"no customer {change.customer_id}")
        old = details.email if change.field is ContactField.EMAIL else details.address
        change = replace(change, old=old)
    backends.crm.update_contact(change, district=payload.get("district"))


def _promise_notice(payload: Mapping[str, Any]) -> dict[str, str]:
    return {"day": str((payload.get("notice") or {}).get("day", ""))}


@write_kind("billing.promise", confirmation="utter_promise_confirmed_later", values=_promise_notice)
def apply_promise(backends: Any, payload: Mapping[str, Any]) -> None:
    backends.erp.record_promise(
        payload["customer_id"],
        payload.get("invoice_id"),
        date.fromisoformat(payload["promised_for"]),
        payload["channel"],
        datetime.fromisoformat(payload["made_at"]),
    )


# --- the table ------------------------------------------------------------------------------------


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
        db_now = to_db_time(now)
        free = sa.or_(outbox_writes.c.locked_until.is_(None), outbox_writes.c.locked_until < db_now)
        due = (
            sa.select(outbox_writes.c.id)
            .where(outbox_writes.c.status == "pending", outbox_writes.c.next_attempt_at <= db_now, free)
            .order_by(outbox_writes.c.next_attempt_at)
            .limit(limit)
        )
        claimed = []
        with self.store.connect() as conn:
            for entry_id in conn.execute(due).scalars().all():
                taken = conn.execute(
                    outbox_writes.update()
                    .where(outbox_writes.c.id == entry_id, outbox_writes.c.status == "pending", free)
                    .values(locked_until=to_db_time(now + LEASE))
                )
                if taken.rowcount == 1:
                    claimed.append(entry_id)
            rows = conn.execute(sa.select(outbox_writes).where(outbox_writes.c.id.in_(claimed))).all()
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


def backoff(attempts: int, base_s: float, cap_s: float) -> float:
    """Seconds before the next attempt after `attempts` failed ones: doubling, capped, jittered."""
    return min(cap_s, base_s * 2 ** max(0, attempts - 1)) * random.uniform(0.5, 1.0)


# --- the service the actions call -----------------------------------------------------------------


@lru_cache(maxsize=1)
def default_outbox() -> Outbox:
    from bot.settings import current

    return Outbox(SqlStore(current().database_url))


def submit_write(
    kind: str,
    payload: Mapping[str, Any],
    *,
    conversation_id: str,
    customer_phone: str | None,
    management_id: str | None = None,
    backends: Any = None,
    outbox: Outbox | None = None,
    now: datetime,
) -> WriteOutcome:
    """Record the change durably, try it once now, and keep it for the worker if the system is down.

    `management_id` is what the customer is told (a fresh GES-… when not given). Raises
    WriteRejected when the system refuses the change itself (nothing is queued), and
    BackendUnavailable when even the assistant's own database cannot record it.
    """
    if kind not in WRITE_KINDS:
        raise ValueError(f"unknown write kind {kind!r}: register it with @write_kind")
    if management_id is None:
        from bot.cases import new_case_id

        management_id = new_case_id()
    if backends is None:
        from bot.backends import backends as current_backends

        backends = current_backends()
    outbox = outbox or default_outbox()
    entry = outbox.add(kind, payload, management_id, conversation_id, customer_phone, now)
    try:
        with idempotency_key(entry.idempotency_key):
            WRITE_KINDS[kind].apply(backends, payload)
    except WriteRejected as error:
        outbox.mark_failed(entry.id, 1, now, f"rejected: {error}", None)
        raise
    except BackendUnavailable as error:
        if not error.retryable:
            outbox.mark_failed(entry.id, 1, now, f"rejected: {error}", None)
            raise WriteRejected(str(error)) from error
        logger.warning("outbox: %s %s queued after a failed attempt: %s", kind, management_id, error)
        outbox.retry_later(entry.id, 1, now + timedelta(seconds=backoff(1, 2.0, 600)), str(error))
        return WriteOutcome(WriteStatus.QUEUED, management_id)
    outbox.mark_applied(entry.id, 1, now)
    return WriteOutcome(WriteStatus.APPLIED, management_id)


# --- the worker -------------------------------------------------------------------------------------

# (customer_phone, conversation_id, response name, values) -> message sent
Notify = Callable[[str | None, str, str, dict[str, str]], Awaitable[None]]


class OutboxWorker:
    """Retries due writes until they go through or finally fail; see the module docstring."""

    def __init__(
        self,
        outbox: Outbox,
        backends: Any,
        failure_cases: CaseBook,
        notify: Notify,
        clock: Callable[[], datetime],
        max_attempts: int = 20,
        max_age: timedelta = timedelta(hours=24),
        base_delay_s: float = 2.0,
        max_delay_s: float = 600.0,
    ) -> None:
        self.outbox = outbox
        self.backends = backends
        self.failure_cases = failure_cases  # the assistant's own: the CRM may be what is down
        self.notify = notify
        self.max_attempts = max_attempts
        self.max_age = max_age
        self.base_delay_s = base_delay_s
        self.max_delay_s = max_delay_s
        self.clock = clock

    async def run_once(self) -> int:
        """Try every due write once; returns how many were tried."""
        entries = await asyncio.to_thread(self.outbox.claim_due, self.clock())
        for entry in entries:
            await self._attempt(entry)
        return len(entries)

    async def run_forever(self, stop: asyncio.Event, poll_s: float = 1.0) -> None:
        while not stop.is_set():
            try:
                tried = await self.run_once()
            except Exception:
                # The worker outlives any one failure (its database down, a bug in one write):
                # what it could not finish stays pending and is leased again later.
                logger.exception("outbox: a round failed; trying again")
                tried = 0
            if not tried:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stop.wait(), poll_s)

    def _apply(self, entry: OutboxEntry) -> None:
        with idempotency_key(entry.idempotency_key):
            WRITE_KINDS[entry.kind].apply(self.backends, entry.payload)

    async def _attempt(self, entry: OutboxEntry) -> None:
        attempts = entry.attempts + 1
        kind = WRITE_KINDS.get(entry.kind)
        try:
            if kind is None:
                raise WriteRejected(f"unknown write kind {entry.kind!r}")
            await asyncio.to_thread(self._apply, entry)
        except Exception as error:
            if not isinstance(error, WriteRejected | BackendUnavailable):
                logger.exception("outbox: %s %s failed unexpectedly", entry.kind, entry.management_id)
            retryable = not isinstance(error, WriteRejected) and getattr(error, "retryable", True)
            too_old = self.clock() - entry.created_at >= self.max_age
            if retryable and attempts < self.max_attempts and not too_old:
                delay = backoff(attempts, self.base_delay_s, self.max_delay_s)
                logger.warning(
                    "outbox: %s %s attempt %d failed (%s); next in %.1f s",
                    entry.kind, entry.management_id, attempts, error, delay,
                )  # fmt: skip
                await asyncio.to_thread(
                    self.outbox.retry_later,
                    entry.id,
                    attempts,
                    self.clock() + timedelta(seconds=delay),
                    str(error),
                )
                return
            response = kind.failure if kind else "utter_write_failed"
            if kind and kind.conflict and isinstance(error, WriteConflict):
                response = kind.conflict
            await self._give_up(entry, attempts, str(error), response)
            return
        await asyncio.to_thread(self.outbox.mark_applied, entry.id, attempts, self.clock())
        logger.info("outbox: %s %s applied on attempt %d", entry.kind, entry.management_id, attempts)
        await self._tell(entry, kind.confirmation, {})

    async def _give_up(
        self, entry: OutboxEntry, attempts: int, reason: str, response: str = "utter_write_failed"
    ) -> None:
        from bot.cases import open_case

        details = {
            "write": entry.kind,
            "management_id": entry.management_id,
            "reason": reason[:300],
            "payload": json.dumps(entry.payload, ensure_ascii=False)[:1500],
        }
        case_id = await asyncio.to_thread(
            open_case, self.failure_cases, entry.customer_phone, CaseKind.FAILED_WRITE, details,
            entry.conversation_id, self.clock(),
        )  # fmt: skip
        await asyncio.to_thread(self.outbox.mark_failed, entry.id, attempts, self.clock(), reason, case_id)
        logger.error(
            "outbox: %s %s failed for good after %d attempt(s) (%s); case %s opened",
            entry.kind, entry.management_id, attempts, reason, case_id,
        )  # fmt: skip
        await self._tell(entry, response, {"case_id": case_id})

    async def _tell(self, entry: OutboxEntry, response: str, values: dict[str, str]) -> None:
        kind = WRITE_KINDS.get(entry.kind)
        try:
            values = {
                **(kind.values(entry.payload) if kind else {}),
                "management_id": entry.management_id,
                **values,
            }
            await self.notify(entry.customer_phone, entry.conversation_id, response, values)
        except Exception:
            # The write's fate is recorded either way; a message that cannot go out is logged.
            logger.exception("outbox: could not tell %s about %s", entry.conversation_id, entry.management_id)


def sender_notify(sender: Any, messaging_store: Any) -> Notify:
    """Tell the customer through the one MessageSender, on the channel they last wrote from."""
    from bot.messaging.inbound import Channel
    from bot.messaging.sender import OutboundMessage
    from bot.responses import render

    async def notify(phone: str | None, conversation_id: str, response: str, values: dict[str, str]) -> None:
        if phone is None:
            logger.info("outbox: %s is not a phone number; %s not sent", conversation_id, response)
            return
        contact = await asyncio.to_thread(messaging_store.contact, phone)
        channel = Channel(contact.last_channel) if contact and contact.last_channel else Channel.WHATSAPP
        await sender.send(OutboundMessage(phone, channel, body=render(response, **values)))

    return notify


def build_worker(settings: Any) -> tuple[OutboxWorker, Callable[[], Awaitable[None]]]:
    """The worker `make run` starts, and how to release what it holds."""
    from bot.backends import build_backends
    from bot.messaging.sender import MessageSender, transport_for
    from bot.messaging.store import MessagingStore

    clock = SystemClock(settings.clock_shift)
    store = SqlStore(settings.database_url)
    messaging = MessagingStore(store, clock)
    sender = MessageSender(settings, messaging, transport_for(settings), clock=clock)
    worker = OutboxWorker(
        Outbox(store),
        build_backends(settings),
        SqlCaseBook(store),
        sender_notify(sender, messaging),
        clock.now,
        max_attempts=settings.outbox_max_attempts,
        max_age=timedelta(seconds=settings.outbox_max_age_s),
    )

    async def close() -> None:
        await sender.transport.close()
        store.dispose()

    return worker, close


async def _serve(poll_s: float) -> None:
    from bot.settings import Settings

    settings = Settings.from_env()
    worker, close = build_worker(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    print(f"Outbox worker: retrying queued CRM/ERP writes (database {settings.database_url}).", flush=True)
    try:
        await worker.run_forever(stop, poll_s)
    finally:
        await close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--poll", type=float, default=1.0, help="seconds between looks when idle")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    asyncio.run(_serve(args.poll))
    return 0


if __name__ == "__main__":
    sys.exit(main())
