"""The case service (bot/cases.py) over the real SQL case book and outbox, on SQLite and PostgreSQL."""

from datetime import datetime, timedelta, timezone

import pytest

from bot import cases as case_service
from bot.adapters.base import BackendUnavailable
from bot.adapters.outbox_sql import Outbox
from bot.adapters.sql import SqlCaseBook, SqlStore
from bot.cases import REPEAT_WINDOW, CaseIdExhausted, is_case_id, request_case
from bot.migrations import migrate
from bot.outbox import WriteStatus
from bot.records import CaseKind
from tests.conftest import JULIAN_AR, MARIANA_MX

NOW = datetime(2026, 11, 26, 16, 0, tzinfo=timezone.utc)


@pytest.fixture
def book(store) -> SqlCaseBook:
    return SqlCaseBook(store)


@pytest.fixture
def outbox(store) -> Outbox:
    return Outbox(store)


def opened_case(book, outbox, phone, kind, details, conversation_id, now=NOW) -> str:
    """The case's management ID, through the outbox; the case book answers, so it is applied."""
    outcome = request_case(book, outbox, phone, kind, details, conversation_id, now=now)
    assert outcome.status is WriteStatus.APPLIED
    return outcome.management_id


def test_a_case_gets_a_management_id_and_keeps_what_the_customer_asked(book, outbox):
    details = {"text": "quiero cancelar el PED-1001", "order_id": "PED-1001", "date": None}
    case_id = opened_case(book, outbox, MARIANA_MX, CaseKind.CANCEL_ORDER, details, MARIANA_MX, now=NOW)
    assert is_case_id(case_id) and case_id.startswith("GES-")
    case = book.case(case_id)
    assert (case.kind, case.customer_phone, case.conversation_id) == (
        CaseKind.CANCEL_ORDER,
        MARIANA_MX,
        MARIANA_MX,
    )
    assert case.details == {"text": "quiero cancelar el PED-1001", "order_id": "PED-1001"}
    assert (case.opened_at, case.status) == (NOW, "open")


def test_management_ids_are_unique_and_not_sequential(book, outbox):
    ids = [
        opened_case(book, outbox, None, CaseKind.HUMAN_HANDOFF, {"text": "asesor"}, f"web-{n}", now=NOW)
        for n in range(60)
    ]
    assert len(set(ids)) == 60
    assert all(is_case_id(case_id) for case_id in ids)
    assert ids != sorted(ids)


def test_asking_again_in_the_same_conversation_gives_the_same_case(book, outbox):
    first = opened_case(
        book, outbox, JULIAN_AR, CaseKind.HUMAN_HANDOFF, {"text": "asesor"}, JULIAN_AR, now=NOW
    )
    again = opened_case(
        book, outbox, JULIAN_AR, CaseKind.HUMAN_HANDOFF, {"text": "asesor!!"}, JULIAN_AR, now=NOW
    )
    assert again == first


def test_another_order_kind_or_day_opens_a_new_case(book, outbox):
    def cancel(order_id, now=NOW):
        return opened_case(
            book, outbox, JULIAN_AR, CaseKind.CANCEL_ORDER, {"order_id": order_id}, JULIAN_AR, now=now
        )

    first = cancel("PED-1003")
    assert cancel("PED-1005") != first
    assert (
        opened_case(
            book, outbox, JULIAN_AR, CaseKind.RETURN_REQUEST, {"order_id": "PED-1003"}, JULIAN_AR, now=NOW
        )
        != first
    )
    assert cancel("PED-1003", now=NOW + REPEAT_WINDOW + timedelta(minutes=1)) != first


def test_an_id_already_taken_is_drawn_again(book, outbox, monkeypatch):
    drawn = iter(["GES-AAAAAAAA", "GES-AAAAAAAA", "GES-BBBBBBBB"])
    monkeypatch.setattr(case_service, "new_case_id", lambda: next(drawn))
    assert opened_case(book, outbox, None, CaseKind.HUMAN_HANDOFF, {}, "one", now=NOW) == "GES-AAAAAAAA"
    assert opened_case(book, outbox, None, CaseKind.HUMAN_HANDOFF, {}, "two", now=NOW) == "GES-BBBBBBBB"


def test_a_broken_random_source_fails_loudly(book, outbox, monkeypatch):
    opened_case(book, outbox, None, CaseKind.HUMAN_HANDOFF, {}, "one", now=NOW)
    taken = book.recent_open_cases("one", CaseKind.HUMAN_HANDOFF, NOW)[0].id
    monkeypatch.setattr(case_service, "new_case_id", lambda: taken)
    with pytest.raises(CaseIdExhausted):
        opened_case(book, outbox, None, CaseKind.HUMAN_HANDOFF, {}, "two", now=NOW)


def test_a_database_with_only_the_migrations_holds_cases(tmp_path, outbox):
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    migrate(url)  # no demo loader: the table is the migrations', as in production
    store = SqlStore(url)
    case_id = opened_case(
        SqlCaseBook(store), outbox, None, CaseKind.RETURN_REQUEST, {"text": "devolver"}, "c1"
    )
    assert SqlCaseBook(store).case(case_id).kind is CaseKind.RETURN_REQUEST
    store.dispose()


def test_database_down_is_backend_unavailable(tmp_path):
    store = SqlStore("postgresql+psycopg2://nobody@127.0.0.1:1/none?connect_timeout=2")
    with pytest.raises(BackendUnavailable):
        request_case(SqlCaseBook(store), Outbox(store), None, CaseKind.HUMAN_HANDOFF, {}, "c1", now=NOW)


def test_card_data_in_a_cases_details_is_stored_masked(book, outbox):
    from bot.masking import CARD_MASK

    details = {"text": "cobren el pedido a la 4111 1111 1111 1111 porfa", "order_id": "PED-1001"}
    case_id = opened_case(book, outbox, MARIANA_MX, CaseKind.CANCEL_ORDER, details, MARIANA_MX)
    stored = book.case(case_id).details["text"]
    assert "4111" not in stored and CARD_MASK in stored
