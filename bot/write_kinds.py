"""Every kind of write the outbox carries, by name: where the worker finds how to apply a queued one.

Each kind is declared by the service that owns it; a new kind is one line here.
"""

from __future__ import annotations

from collections.abc import Mapping

from bot import cancellation, cases, contact_data, payments, scheduling
from bot.outbox import WriteKind

WRITE_KINDS: Mapping[str, WriteKind] = {
    kind.name: kind
    for kind in (
        cases.CASE_ADD,
        scheduling.RESCHEDULE,
        contact_data.CONTACT_UPDATE,
        payments.PROMISE,
        cancellation.ORDER_CANCEL,
    )
}
