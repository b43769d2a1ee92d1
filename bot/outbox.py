"""No lost writes: every change for the CRM/ERP goes through a durable outbox and is applied once.

`submit_write` records the change in the outbox (bot/adapters/outbox_sql.py, the assistant's own
database) with an Idempotency-Key, then tries it at once. If the system is down, the customer
still gets the management ID and an honest "we registered it and will confirm here"; the worker
(bot/outbox_worker.py, `python -m bot.outbox_worker`, started by `make run`) retries it with
exponential backoff and jitter, always with the same key, so the system applies it once. When it
goes through, the customer gets a confirmation; when it finally fails (OUTBOX_MAX_ATTEMPTS or
OUTBOX_MAX_AGE_S), a case is opened in the assistant's own case book for a person to finish by
hand, and the customer is told so.

A kind of write is a `WriteKind` declared by the service that owns it (`case.add` in
bot/cases.py, `delivery.reschedule` in bot/scheduling.py, `contact.update` in
bot/contact_data.py, `billing.promise` in bot/payments.py, `order.cancel` in
bot/cancellation.py) and listed once in bot/write_kinds.py, where the worker finds how to apply
a queued one.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import Any, Literal

from bot.adapters.base import BackendUnavailable, idempotency_key
from bot.adapters.outbox_sql import Outbox
from bot.management_ids import new_management_id

logger = logging.getLogger(__name__)


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


# Which of the CRM/ERP a kind writes to: the attribute of the worker's backends it is applied on.
System = Literal["crm", "erp", "cases"]


@dataclass(frozen=True)
class WriteKind:
    """One kind of write: how to apply its payload to its system, and what the customer is told."""

    name: str
    apply: Callable[[Any, Mapping[str, Any]], None]  # (the system, payload); raises on failure
    system: System
    confirmation: str  # domain response sent when a queued write goes through
    failure: str = "utter_write_failed"  # ...when it finally fails (a case for a person is opened)
    conflict: str | None = None  # ...when it meets a WriteConflict on a retry; None: `failure`
    # Extra {placeholders} of those responses: these keys of the payload's "notice", how the
    # customer was told the change (management_id and case_id are always there).
    notice_fields: tuple[str, ...] = ()

    def values(self, payload: Mapping[str, Any]) -> dict[str, str]:
        notice = payload.get("notice") or {}
        return {name: str(notice.get(name, "")) for name in self.notice_fields}


def backoff(attempts: int, base_s: float, cap_s: float) -> float:
    """Seconds before the next attempt after `attempts` failed ones: doubling, capped, jittered."""
    return min(cap_s, base_s * 2 ** max(0, attempts - 1)) * random.uniform(0.5, 1.0)


def submit_write(
    kind: WriteKind,
    payload: Mapping[str, Any],
    *,
    system: Any,
    outbox: Outbox,
    conversation_id: str,
    customer_phone: str | None,
    management_id: str | None = None,
    now: datetime,
) -> WriteOutcome:
    """Record the change durably, try it once now, and keep it for the worker if the system is down.

    `management_id` is what the customer is told (a fresh GES-… when not given). Raises
    WriteRejected when the system refuses the change itself (nothing is queued), and
    BackendUnavailable when even the assistant's own database cannot record it.
    """
    if management_id is None:
        management_id = new_management_id()
    entry = outbox.add(kind.name, payload, management_id, conversation_id, customer_phone, now)
    try:
        with idempotency_key(entry.idempotency_key):
            kind.apply(system, payload)
    except WriteRejected as error:
        outbox.mark_failed(entry.id, 1, now, f"rejected: {error}", None)
        raise
    except BackendUnavailable as error:
        if not error.retryable:
            outbox.mark_failed(entry.id, 1, now, f"rejected: {error}", None)
            raise WriteRejected(str(error)) from error
        logger.warning("outbox: %s %s queued after a failed attempt: %s", kind.name, management_id, error)
        outbox.retry_later(entry.id, 1, now + timedelta(seconds=backoff(1, 2.0, 600)), str(error))
        return WriteOutcome(WriteStatus.QUEUED, management_id)
    outbox.mark_applied(entry.id, 1, now)
    return WriteOutcome(WriteStatus.APPLIED, management_id)
