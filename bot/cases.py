"""Opens cases: a customer's request that a person of the team follows up, with a management ID.

A case goes through the outbox (`request_case`): never lost when the case book is down. The
outbox worker records its own `failed_write` cases straight into the assistant's case book
(`record_failed_write`): a case about the outbox cannot wait in it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from bot.adapters.base import BackendUnavailable, CaseBook
from bot.adapters.outbox_sql import Outbox
from bot.adapters.rest.wire import case_from_wire, case_to_wire  # the outbox keeps the contract's shape
from bot.management_ids import is_management_id, new_management_id
from bot.masking import mask_sensitive
from bot.outbox import WriteConflict, WriteKind, WriteOutcome, WriteStatus, submit_write
from bot.records import Case, CaseKind

# A case's ID is a management ID; the names its callers know.
new_case_id = new_management_id
is_case_id = is_management_id

# A customer who asks again (double-sent "asesor", or back an hour later) gets the same case.
REPEAT_WINDOW = timedelta(hours=24)
_ATTEMPTS = 5


class CaseIdExhausted(RuntimeError):
    """No unused management ID after several draws: the ID space or the random source is broken."""


def _clean(details: Mapping[str, str | None]) -> dict[str, str]:
    """The details as stored: blanks dropped, card data masked (the channels screen what reaches
    Rasa already; a case is read by people and other systems, so it is masked here again)."""
    return {key: mask_sensitive(str(value)) for key, value in details.items() if value not in (None, "")}


def _new_case(
    phone: str | None, kind: CaseKind, details: dict[str, str], conversation_id: str, now: datetime
) -> Case:
    return Case(
        id=new_case_id(),
        kind=kind,
        conversation_id=conversation_id,
        customer_phone=phone,
        details=details,
        opened_at=now,
    )


# --- the write kind: a case added to the case book ------------------------------------------------


def _apply_case_add(cases: CaseBook, payload: Mapping[str, Any]) -> None:
    if not cases.add(case_from_wire(payload)):
        raise WriteConflict(f"case id {payload.get('id')} is taken", code="id_taken")


CASE_ADD = WriteKind("case.add", _apply_case_add, system="cases", confirmation="utter_write_confirmed")


# --- cases through the outbox: never lost when the CRM is down ----------------------------------


def request_case(
    cases: CaseBook,
    outbox: Outbox,
    phone: str | None,
    kind: CaseKind,
    details: Mapping[str, str | None],
    conversation_id: str,
    now: datetime,
) -> WriteOutcome:
    """Open a case for the customer writing from `phone`, through the outbox: if the case book
    cannot be reached, the case is queued with its management ID and applied when it comes back.

    The same request again in the same conversation within REPEAT_WINDOW (same kind, same order
    number) returns the case already open, or the one still queued, instead of a second one.
    """
    details = _clean(details)
    try:
        for case in cases.recent_open_cases(conversation_id, kind, now - REPEAT_WINDOW):
            if case.details.get("order_id") == details.get("order_id"):
                return WriteOutcome(WriteStatus.APPLIED, case.id)
    except BackendUnavailable:
        pass  # cannot look: the queued ones below still prevent a double while it is down
    for entry in outbox.pending_for(conversation_id, CASE_ADD.name):
        queued = entry.payload
        if queued.get("kind") == kind.value and queued.get("details", {}).get("order_id") == details.get(
            "order_id"
        ):
            return WriteOutcome(WriteStatus.QUEUED, entry.management_id)
    for _ in range(_ATTEMPTS):
        case = _new_case(phone, kind, details, conversation_id, now)
        try:
            return submit_write(
                CASE_ADD,
                case_to_wire(case),
                system=cases,
                outbox=outbox,
                conversation_id=conversation_id,
                customer_phone=phone,
                management_id=case.id,
                now=now,
            )
        except WriteConflict:
            continue  # the id was taken: draw another
    raise CaseIdExhausted(f"no free management ID after {_ATTEMPTS} draws")


# --- the outbox worker's own record of a write that finally failed --------------------------------


def record_failed_write(
    book: CaseBook,
    phone: str | None,
    details: Mapping[str, str | None],
    conversation_id: str,
    now: datetime,
) -> str:
    """Open a `failed_write` case in the assistant's own case book and return its management ID.

    Written straight to `book` (beside the outbox, in the assistant's database): the worker
    calls this when a queued write gives up, so the case cannot itself wait in the outbox. A
    second failure in the same conversation within REPEAT_WINDOW joins the case already open.
    """
    details = _clean(details)
    for case in book.recent_open_cases(conversation_id, CaseKind.FAILED_WRITE, now - REPEAT_WINDOW):
        if case.details.get("order_id") == details.get("order_id"):
            return case.id
    for _ in range(_ATTEMPTS):
        case = _new_case(phone, CaseKind.FAILED_WRITE, details, conversation_id, now)
        if book.add(case):
            return case.id
    raise CaseIdExhausted(f"no free management ID after {_ATTEMPTS} draws")
