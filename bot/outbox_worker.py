"""The outbox worker: retries queued CRM/ERP writes until they go through or finally fail.

Its own process (`python -m connectors.outbox_worker`, started by `make run`). Each due write is leased,
applied with its Idempotency-Key through the kind found in bot/write_kinds.py, and its fate told
to the customer through the one MessageSender; see bot/outbox.py for the whole story.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from bot.adapters.base import BackendUnavailable, CaseBook, idempotency_key
from bot.adapters.outbox_sql import Outbox, OutboxEntry
from bot.cases import record_failed_write
from bot.messaging.inbound import Channel
from bot.messaging.sender import OutboundMessage
from bot.outbox import WriteConflict, WriteKind, WriteRejected, backoff
from bot.responses import render
from bot.write_kinds import WRITE_KINDS

logger = logging.getLogger(__name__)


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
        kinds: Mapping[str, WriteKind] = WRITE_KINDS,
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
        self.kinds = kinds  # how to apply each kind of write, by name

    async def run_once(self, stop: asyncio.Event | None = None) -> int:
        """Try every due write once; returns how many were tried. When `stop` is set (SIGTERM) the
        write in progress is finished and the round ends: the rest of the batch stays leased
        (bot/adapters/outbox_sql.py's LEASE) and is claimed again after it, here or elsewhere."""
        entries = await asyncio.to_thread(self.outbox.claim_due, self.clock())
        tried = 0
        for entry in entries:
            if stop is not None and stop.is_set():
                break
            await self._attempt(entry)
            tried += 1
        return tried

    async def run_forever(
        self, stop: asyncio.Event, poll_s: float = 1.0, on_round: Callable[[bool], None] | None = None
    ) -> None:
        """Rounds until `stop` is set; `on_round(reached_the_database)` after each one (the
        process's health endpoint reads it)."""
        while not stop.is_set():
            try:
                tried = await self.run_once(stop)
                ok = True
            except Exception:
                # The worker outlives any one failure (its database down, a bug in one write):
                # what it could not finish stays pending and is leased again later.
                logger.exception("outbox: a round failed; trying again")
                tried, ok = 0, False
            if on_round is not None:
                on_round(ok)
            if not tried:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stop.wait(), poll_s)

    def _apply(self, kind: WriteKind, entry: OutboxEntry) -> None:
        with idempotency_key(entry.idempotency_key):
            kind.apply(getattr(self.backends, kind.system), entry.payload)

    async def _attempt(self, entry: OutboxEntry) -> None:
        attempts = entry.attempts + 1
        kind = self.kinds.get(entry.kind)
        try:
            if kind is None:
                raise WriteRejected(f"unknown write kind {entry.kind!r}")
            await asyncio.to_thread(self._apply, kind, entry)
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
        details = {
            "write": entry.kind,
            "management_id": entry.management_id,
            "reason": reason[:300],
            "payload": json.dumps(entry.payload, ensure_ascii=False)[:1500],
        }
        case_id = await asyncio.to_thread(
            record_failed_write, self.failure_cases, entry.customer_phone, details,
            entry.conversation_id, self.clock(),
        )  # fmt: skip
        await asyncio.to_thread(self.outbox.mark_failed, entry.id, attempts, self.clock(), reason, case_id)
        logger.error(
            "outbox: %s %s failed for good after %d attempt(s) (%s); case %s opened",
            entry.kind, entry.management_id, attempts, reason, case_id,
        )  # fmt: skip
        await self._tell(entry, response, {"case_id": case_id})

    async def _tell(self, entry: OutboxEntry, response: str, values: dict[str, str]) -> None:
        kind = self.kinds.get(entry.kind)
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

    async def notify(phone: str | None, conversation_id: str, response: str, values: dict[str, str]) -> None:
        if phone is None:
            logger.info("outbox: %s is not a phone number; %s not sent", conversation_id, response)
            return
        contact = await asyncio.to_thread(messaging_store.contact, phone)
        channel = Channel(contact.last_channel) if contact and contact.last_channel else Channel.WHATSAPP
        # Perhaps a day later: outside the WhatsApp window the response's template (or the
        # generic one) goes out and the confirmation waits until the customer writes.
        message = OutboundMessage(
            phone, channel, body=render(response, **values), template=sender.templates.meant_for(response),
            template_values=values, source="outbox",
        )  # fmt: skip
        result = await sender.send(message)
        logger.info("outbox: %s to %s: %s", response, conversation_id, result.status)

    return notify
