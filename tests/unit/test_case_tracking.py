"""bot/case_tracking.py and the management IDs customers type back: whose case, and what of it
they read (on an in-memory case book, at a fixed moment)."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.adapters.base import CaseBook
from bot.case_tracking import Found, describe_case, look_up_case
from bot.case_types import case_catalogue
from bot.management_ids import find_management_id, new_management_id
from bot.records import Case, CaseEvent, CaseKind

MEXICO = ZoneInfo("America/Mexico_City")
NOW = datetime(2026, 11, 26, 10, 0, tzinfo=MEXICO)
OWNER, OTHER = "+525512345678", "+5491123456789"


class MemoryBook(CaseBook):
    def __init__(self, *cases: Case) -> None:
        self.cases = {case.id: case for case in cases}

    def add(self, case: Case) -> bool:
        return self.cases.setdefault(case.id, case) is case

    def case(self, case_id: str) -> Case | None:
        return self.cases.get(case_id)

    def recent_open_cases(self, conversation_id, kind, since):
        return []

    def cases_of_phone(self, phone: str, limit: int = 50) -> list[Case]:
        mine = [case for case in self.cases.values() if case.customer_phone == phone]
        return sorted(mine, key=lambda case: case.opened_at, reverse=True)[:limit]


def a_case(phone=OWNER, kind=CaseKind.RETURN_REQUEST, hours_ago=2, status="open", **details) -> Case:
    return Case(new_management_id(), kind, phone, phone, details, NOW - timedelta(hours=hours_ago), status)


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("GES-7F3K2Q9M", "GES-7F3K2Q9M"),
        ("como va el ges-7f3k2q9m porfa?", "GES-7F3K2Q9M"),
        ("mi caso es GES 7F3K2Q9M", "GES-7F3K2Q9M"),
        ("GES7F3K2Q9M!!", "GES-7F3K2Q9M"),
        ("GES-7F3K2Q9", None),  # too short
        ("GES-7F3K2Q9MX", None),  # too long
        ("GES-0F3K2Q9M", None),  # 0 is not in the alphabet (nor O, 1, I, L)
        ("XGES-7F3K2Q9M", None),
        ("como va mi caso", None),
    ],
)
def test_a_management_id_is_found_as_people_type_it(text, found):
    assert find_management_id(text) == found


def test_only_the_owner_finds_a_case_and_a_stranger_hears_it_does_not_exist():
    case = a_case()
    book = MemoryBook(case)
    catalogue = case_catalogue()
    assert look_up_case(book, catalogue, OWNER, case.id).case == case
    assert look_up_case(book, catalogue, OTHER, case.id).found is Found.NOT_FOUND
    assert look_up_case(book, catalogue, None, case.id).found is Found.NOT_FOUND
    assert look_up_case(book, catalogue, OTHER, "GES-22222222") == look_up_case(
        book, catalogue, OTHER, case.id
    )


def test_open_cases_are_offered_newest_first_and_finished_ones_left_out():
    older, newer = a_case(hours_ago=9), a_case(kind=CaseKind.PAYMENT_PROBLEM, hours_ago=1)
    book = MemoryBook(older, newer, a_case(hours_ago=3, status="closed"), a_case(OTHER))
    lookup = look_up_case(book, case_catalogue(), OWNER)
    assert lookup.found is Found.CHOOSE and lookup.choices == (newer, older)
    refunds = look_up_case(book, case_catalogue(), OWNER, types=("refund", "return"))
    assert refunds.found is Found.ONE and refunds.case == older
    assert look_up_case(MemoryBook(), case_catalogue(), OWNER).found is Found.NONE


def test_the_deadline_is_the_catalogues_sla_from_the_opening_on_the_given_clock():
    case = a_case(hours_ago=2)  # a return: 72 hours
    on_time = describe_case(case, case_catalogue(), [], NOW, MEXICO)
    assert (
        on_time.situation == "on_time" and on_time.values["due"] == "el domingo 29 de noviembre a las 08:00"
    )
    late = describe_case(case, case_catalogue(), [], NOW + timedelta(hours=71), MEXICO)
    assert late.situation == "late"
    assert describe_case(case, case_catalogue(), [], NOW + timedelta(hours=69), MEXICO).situation == "on_time"


def test_the_history_shows_what_the_customer_may_read_and_never_an_internal_note():
    case = a_case()
    events = [
        CaseEvent(case.id, NOW, "ana", "assigned", "sin asignar → ana"),
        CaseEvent(case.id, NOW, "ana", "status", "open → waiting_customer"),
        CaseEvent(case.id, NOW, "ana", "note", "no creerle, ya pidio 3 devoluciones"),
        CaseEvent(case.id, NOW, "ana", "message", "Mandanos una foto del producto", customer_visible=True),
        CaseEvent(case.id, NOW, "ana", "rating_requested", "1-5"),
    ]
    history = describe_case(case, case_catalogue(), events, NOW, MEXICO).values["history"]
    lines = history.splitlines()
    assert [line.split(": ", 1)[1] for line in lines] == [
        "Abrimos tu gestión",
        "La tomó ana",
        "Pasó a esperando una respuesta tuya",
        "Te escribimos: «Mandanos una foto del producto»",
    ]
    assert "creerle" not in history
