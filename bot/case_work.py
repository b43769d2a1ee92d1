"""Agents working cases: the statuses a case goes through, its SLA against the project's clock,
and every change (assignment, status, internal note, message to the customer, rating) recorded
in the case's history by the case book in the same transaction.

Plain functions over a CaseBook and the catalogue (bot/case_types.py): the console calls them,
and action_record_satisfaction records a closed case's rating through `rate_case`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bot.adapters.base import CaseBook
from bot.case_types import CaseCatalogue, CaseType
from bot.masking import mask_sensitive
from bot.records import Case, CaseEvent

OPEN, IN_PROGRESS, WAITING_CUSTOMER, RESOLVED, CLOSED = (
    "open",
    "in_progress",
    "waiting_customer",
    "resolved",
    "closed",
)
STATUSES = (OPEN, IN_PROGRESS, WAITING_CUSTOMER, RESOLVED, CLOSED)
# open → in_progress → waiting_customer → resolved / closed; a case waiting on the customer goes
# back to in_progress when they answer, and a resolved one may be reopened until it is closed.
# Closed is final: the customer was asked to rate it.
TRANSITIONS: dict[str, tuple[str, ...]] = {
    OPEN: (IN_PROGRESS, WAITING_CUSTOMER, RESOLVED, CLOSED),
    IN_PROGRESS: (WAITING_CUSTOMER, RESOLVED, CLOSED),
    WAITING_CUSTOMER: (IN_PROGRESS, RESOLVED, CLOSED),
    RESOLVED: (IN_PROGRESS, CLOSED),
    CLOSED: (),
}
FINISHED = (RESOLVED, CLOSED)
MAX_TEXT = 2000


class CaseChangeRefused(ValueError):
    """The change cannot be made; `reason` is a short code the console turns into Spanish."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class WorkedCase:
    """A case as an agent sees it: its type from the catalogue and its SLA now."""

    case: Case
    type: CaseType
    due_at: datetime
    breached: bool  # not finished and past its due moment
    missing: list[str]  # required data the case does not carry

    @property
    def next_statuses(self) -> tuple[str, ...]:
        return TRANSITIONS.get(self.case.status, ())


def worked(case: Case, catalogue: CaseCatalogue, now: datetime) -> WorkedCase:
    case_type = catalogue.type_of(case)
    due = case_type.due_at(case)
    breached = case.status not in FINISHED and now > due
    return WorkedCase(case, case_type, due, breached, case_type.missing(case))


def find_cases(
    book: CaseBook,
    catalogue: CaseCatalogue,
    now: datetime,
    *,
    type_id: str | None = None,
    status: str | None = None,
    breached_only: bool = False,
    limit: int = 500,
) -> list[WorkedCase]:
    """Cases newest first, filtered by catalogue type, status and SLA breach (judged at `now`,
    the project's clock)."""
    statuses = (status,) if status in STATUSES else ()
    found = [worked(case, catalogue, now) for case in book.list_cases(statuses, limit)]
    return [
        item
        for item in found
        if (type_id is None or item.type.id == type_id) and (not breached_only or item.breached)
    ]


def _clean(text: str) -> str:
    cleaned = (text or "").replace("\r\n", "\n").strip()[:MAX_TEXT]
    if not cleaned:
        raise CaseChangeRefused("empty")
    return mask_sensitive(cleaned)


def assign_case(book: CaseBook, case: Case, agent: str, by: str, now: datetime) -> None:
    """Give the case to `agent` (the one acting, or another agent)."""
    if case.status == CLOSED:
        raise CaseChangeRefused("closed")
    detail = f"{case.assigned_to or 'sin asignar'} → {agent}"
    if not book.assign(case.id, agent, CaseEvent(case.id, now, by, "assigned", detail)):
        raise CaseChangeRefused("missing")


def change_status(book: CaseBook, case: Case, to_status: str, by: str, now: datetime) -> None:
    """Move the case to `to_status` if the workflow allows it from the status the agent saw."""
    if to_status not in TRANSITIONS.get(case.status, ()):
        raise CaseChangeRefused("transition")
    event = CaseEvent(case.id, now, by, "status", f"{case.status} → {to_status}")
    if not book.move(case.id, case.status, to_status, event):
        raise CaseChangeRefused("stale")  # another agent changed it meanwhile


def add_note(book: CaseBook, case: Case, text: str, by: str, now: datetime) -> None:
    """An internal note: in the history for agents, never sent to the customer."""
    if not book.add_event(CaseEvent(case.id, now, by, "note", _clean(text))):
        raise CaseChangeRefused("missing")


def message_text(text: str) -> str:
    """What an agent's message to the customer will read (trimmed, card data masked), or refused."""
    return _clean(text)[:1600]


def record_message(book: CaseBook, case: Case, text: str, by: str, now: datetime) -> None:
    """The message the customer was sent, in the history marked as visible to them."""
    book.add_event(CaseEvent(case.id, now, by, "message", text, customer_visible=True))


def record_rating_asked(book: CaseBook, case: Case, by: str, now: datetime) -> bool:
    return book.request_rating(case.id, CaseEvent(case.id, now, by, "rating_requested", "1-5"))


def rate_case(book: CaseBook, conversation_id: str, score: int, now: datetime) -> Case | None:
    """Record the customer's answer on the conversation's closed case awaiting its rating; the
    case, or None if no case of theirs was asked."""
    case = book.awaiting_rating(conversation_id)
    if case is None:
        return None
    event = CaseEvent(case.id, now, "cliente", "rated", f"{score}/5", customer_visible=True)
    return case if book.record_rating(case.id, score, event) else None
