"""A customer following their own cases: which cases are theirs, and each one told in plain
Spanish (its status, who has it, what happens next and by when, and its history).

Identity is the channel's phone: a case is shown only to the phone that opened it, and someone
else's management ID gets exactly the answer of one that does not exist. Only what the customer
may read goes out: status changes, assignments and the messages an agent sent them; internal
notes never. Deadlines are the catalogue's SLA from the case's opening, on the project clock.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from zoneinfo import ZoneInfo

from bot.adapters.base import CaseBook
from bot.case_types import CaseCatalogue
from bot.case_work import FINISHED, IN_PROGRESS, OPEN, WAITING_CUSTOMER, worked
from bot.records import Case, CaseEvent
from bot.spanish_time import moment_phrase

# The cases a customer is still waiting on: offered as options when there are several.
FOLLOWED = (OPEN, IN_PROGRESS, WAITING_CUSTOMER)
# The history told in a message stays short enough for one WhatsApp bubble and a few SMS.
MAX_HISTORY_LINES = 6

# How the customer reads a status (the agents' console has its own words for them).
STATUS_WORDS = {
    "open": "recibida, esperando que la tome una persona del equipo",
    "in_progress": "en curso: una persona del equipo la está trabajando",
    "waiting_customer": "esperando una respuesta tuya",
    "resolved": "resuelta",
    "closed": "cerrada",
}


class Found(str, Enum):
    ONE = "one"  # one case to describe
    CHOOSE = "choose"  # several open cases: ask which
    NONE = "none"  # no open case of theirs
    NOT_FOUND = "not_found"  # no such case *for this phone* (also: someone else's)


@dataclass(frozen=True)
class CaseLookup:
    found: Found
    case: Case | None = None
    choices: tuple[Case, ...] = ()


def look_up_case(
    book: CaseBook,
    catalogue: CaseCatalogue,
    phone: str | None,
    management_id: str | None = None,
    types: Collection[str] = (),
) -> CaseLookup:
    """The case the sender of `phone` asks about: the one named by `management_id`, or their
    open cases (only those of the catalogue `types`, when given)."""
    if management_id:
        case = book.case(management_id) if phone else None
        if case is None or case.customer_phone != phone:
            return CaseLookup(Found.NOT_FOUND)
        return CaseLookup(Found.ONE, case)
    mine = book.cases_of_phone(phone) if phone else []
    followed = [
        case
        for case in mine
        if case.status in FOLLOWED and (not types or catalogue.type_of(case).id in types)
    ]
    if not followed:
        return CaseLookup(Found.NONE)
    if len(followed) == 1:
        return CaseLookup(Found.ONE, followed[0])
    return CaseLookup(Found.CHOOSE, choices=tuple(followed))


def choice_title(case: Case, catalogue: CaseCatalogue) -> str:
    """`GES-7F3K2Q9M · Devolución (PED-1002)`: one line that tells cases apart."""
    order = case.details.get("order_id")
    label = catalogue.type_of(case).label
    return f"{case.id} · {label}" + (f" ({order})" if order else "")


@dataclass(frozen=True)
class CaseView:
    """What to say about one case: a situation name and the values its message needs."""

    situation: str  # on_time, late, finished
    values: dict[str, str] = field(default_factory=dict)


def describe_case(
    case: Case,
    catalogue: CaseCatalogue,
    history: list[CaseEvent],
    now: datetime,
    zone: ZoneInfo,
    locale: str = "es",
) -> CaseView:
    """The case as its owner reads it, times in their zone."""
    view = worked(case, catalogue, now)
    team = f"equipo de {view.type.team}"
    values = {
        "case_id": case.id,
        "label": view.type.label,
        "status": STATUS_WORDS.get(case.status, case.status),
        "who": f"{case.assigned_to}, del {team}" if case.assigned_to else f"el {team}",
        "next_step": view.type.next_step,
        "due": moment_phrase(view.due_at, zone, now, locale),
        "history": history_text(case, history, zone, now, locale),
    }
    if case.status in FINISHED:
        return CaseView("finished", values)
    return CaseView("late" if view.breached else "on_time", values)


def history_text(case: Case, history: list[CaseEvent], zone: ZoneInfo, now: datetime, locale: str) -> str:
    """One line per step the customer may see, oldest first; the latest MAX_HISTORY_LINES."""
    lines = [(case.opened_at, "Abrimos tu gestión")]
    for event in history:
        line = _history_line(event)
        if line:
            lines.append((event.at, line))
    shown = lines[-MAX_HISTORY_LINES:]
    return "\n".join(f"• {moment_phrase(at, zone, now, locale)}: {text}" for at, text in shown)


def _history_line(event: CaseEvent) -> str | None:
    target = event.detail.split("→")[-1].strip()
    if event.action == "status":
        return f"Pasó a {STATUS_WORDS.get(target, target).split(':')[0]}"
    if event.action == "assigned":
        return f"La tomó {target}"
    if event.action == "message" and event.customer_visible:
        return f"Te escribimos: «{_short(event.detail)}»"
    return None  # internal notes, ratings: not the customer's history


def _short(text: str, longest: int = 120) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= longest else flat[: longest - 1].rstrip() + "…"
