"""Opens cases: a customer's request that a person of the team follows up, with a management ID."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from datetime import datetime, timedelta

from bot.adapters.base import BackendUnavailable, CaseBook
from bot.adapters.rest.wire import case_to_wire
from bot.backends import Backends
from bot.outbox import WriteConflict, WriteOutcome, WriteStatus, default_outbox, submit_write
from bot.records import Case, CaseKind

PREFIX = "GES-"
# No 0/O, 1/I/L: the ID is read aloud and typed back by people.
ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
LENGTH = 8  # 31**8, about 40 bits: not guessable, still easy to read out
# A customer who asks again (double-sent "asesor", or back an hour later) gets the same case.
REPEAT_WINDOW = timedelta(hours=24)
_ATTEMPTS = 5


class CaseIdExhausted(RuntimeError):
    """No unused management ID after several draws: the ID space or the random source is broken."""


def new_case_id() -> str:
    """A random management ID such as GES-7F3K2Q9M, from the OS's secure random source."""
    return PREFIX + "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))


def is_case_id(text: str) -> bool:
    body = text.removeprefix(PREFIX)
    return text.startswith(PREFIX) and len(body) == LENGTH and all(ch in ALPHABET for ch in body)


def open_case(
    book: CaseBook,
    phone: str | None,
    kind: CaseKind,
    details: Mapping[str, str | None],
    conversation_id: str,
    now: datetime,
) -> str:
    """Open a case for the customer writing from `phone` and return its management ID.

    The same request again in the same conversation within REPEAT_WINDOW (same kind, same
    order number) returns the case already open instead of a second one.
    """
    details = {key: str(value) for key, value in details.items() if value not in (None, "")}
    for case in book.recent_open_cases(conversation_id, kind, now - REPEAT_WINDOW):
        if case.details.get("order_id") == details.get("order_id"):
            return case.id
    for _ in range(_ATTEMPTS):
        case = Case(
            id=new_case_id(),
            kind=kind,
            conversation_id=conversation_id,
            customer_phone=phone,
            details=details,
            opened_at=now,
        )
        if book.add(case):
            return case.id
    raise CaseIdExhausted(f"no free management ID after {_ATTEMPTS} draws")


# --- cases through the outbox: never lost when the CRM is down ----------------------------------


def request_case(
    backends: Backends,
    phone: str | None,
    kind: CaseKind,
    details: Mapping[str, str | None],
    conversation_id: str,
    now: datetime,
) -> WriteOutcome:
    """Open a case like `open_case`, but through the outbox: if the case book cannot be reached,
    the case is queued with its management ID and applied when it comes back.

    A repeat of the same request returns the case already open, or the one still queued.
    """
    outbox = backends.outbox or default_outbox()
    details = {key: str(value) for key, value in details.items() if value not in (None, "")}
    try:
        for case in backends.cases.recent_open_cases(conversation_id, kind, now - REPEAT_WINDOW):
            if case.details.get("order_id") == details.get("order_id"):
                return WriteOutcome(WriteStatus.APPLIED, case.id)
    except BackendUnavailable:
        pass  # cannot look: the queued ones below still prevent a double while it is down
    for entry in outbox.pending_for(conversation_id, "case.add"):
        queued = entry.payload
        if queued.get("kind") == kind.value and queued.get("details", {}).get("order_id") == details.get(
            "order_id"
        ):
            return WriteOutcome(WriteStatus.QUEUED, entry.management_id)
    for _ in range(_ATTEMPTS):
        case = Case(
            id=new_case_id(),
            kind=kind,
            conversation_id=conversation_id,
            customer_phone=phone,
            details=details,
            opened_at=now,
        )
        try:
            return submit_write(
                "case.add",
                case_to_wire(case),
                conversation_id=conversation_id,
                customer_phone=phone,
                management_id=case.id,
                backends=backends,
                outbox=outbox,
                now=now,
            )
        except WriteConflict:
            continue  # the id was taken: draw another
    raise CaseIdExhausted(f"no free management ID after {_ATTEMPTS} draws")
