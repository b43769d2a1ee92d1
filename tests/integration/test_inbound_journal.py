"""The inbound journal on SQLite and PostgreSQL: de-duplication by MessageSid, card data masked
before it is stored, one row per conversation at a time in arrival order, leases that two
workers never share and that a dead worker loses."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest

from bot.clock import FixedClock
from bot.handoff.config import load_config
from bot.masking import CARD_MASK, CVV_MASK
from bot.messaging.inbound import parse_inbound
from bot.messaging.inbound_rules import ConversationState, Route, decide
from bot.messaging.journal import LEASE, MAX_ATTEMPTS, RETENTION, DuplicateMessage, InboundJournal
from tests.conftest import JULIAN_AR, MARIANA_MX, NOW
from tests.fake_twilio import inbound_form

CARD = "4111 1111 1111 1111"


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
def journal(store, clock) -> InboundJournal:
    return InboundJournal(store, clock)


def accept(journal: InboundJournal, phone: str, body: str, sid: str | None = None) -> str:
    form = inbound_form(phone, body, sid=sid)
    journal.accept(parse_inbound(form, "MX"), form["From"])
    return form["MessageSid"]


def test_a_message_sid_is_stored_once(journal):
    sid = accept(journal, MARIANA_MX, "hola")
    with pytest.raises(DuplicateMessage):
        accept(journal, MARIANA_MX, "hola", sid=sid)
    entry = journal.take_next(MARIANA_MX, "w1")
    assert entry.message.sid == sid and journal.take_next(MARIANA_MX, "w2") is None


def test_card_data_is_masked_before_it_is_stored_and_still_routed_as_card_data(journal):
    card_sid = accept(journal, MARIANA_MX, f"mi tarjeta es {CARD}")
    cvv_sid = accept(journal, MARIANA_MX, "123")  # its security code, in the next message
    assert journal.stored_body(card_sid) == f"mi tarjeta es {CARD_MASK}"
    assert journal.stored_body(cvv_sid) == CVV_MASK
    entry = journal.take_next(MARIANA_MX, "w1")
    assert CARD.replace(" ", "") not in entry.message.text.replace(" ", "")
    decision = decide(entry.message, ConversationState(), load_config(None))
    assert decision.route is Route.TO_BOT and decision.text == "/card_data" and decision.held_card_data


def test_a_conversation_is_processed_oldest_first_and_one_row_at_a_time(journal):
    first, second = accept(journal, MARIANA_MX, "hola"), accept(journal, MARIANA_MX, "gracias")
    other = accept(journal, JULIAN_AR, "hola")
    taken = journal.take_next(MARIANA_MX, "w1")
    assert taken.message.sid == first
    # The newer message waits while the older one is leased, by this worker or another one.
    assert journal.take_next(MARIANA_MX, "w1") is None and journal.take_next(MARIANA_MX, "w2") is None
    assert journal.take_next(JULIAN_AR, "w2").message.sid == other  # other conversations go on
    journal.finish(taken.id, "w1")
    assert journal.take_next(MARIANA_MX, "w2").message.sid == second


def test_finishing_a_row_and_taking_the_next_is_one_step_that_keeps_the_order(journal):
    first, second = accept(journal, MARIANA_MX, "hola"), accept(journal, MARIANA_MX, "gracias")
    taken = journal.take_next(MARIANA_MX, "w1")
    # Another worker's finish does not count: the row stays leased and the next one waits.
    assert journal.finish_and_take_next(taken.id, "w2", MARIANA_MX) is None
    assert journal.status_of(first) == "accepted"
    following = journal.finish_and_take_next(taken.id, "w1", MARIANA_MX)
    assert journal.status_of(first) == "done" and following.message.sid == second
    assert following.attempts == 1 and journal.take_next(MARIANA_MX, "w2") is None
    assert journal.finish_and_take_next(following.id, "w1", MARIANA_MX) is None  # none left
    assert journal.status_of(second) == "done"


def test_a_dead_workers_lease_expires_and_the_row_is_taken_again(journal, clock):
    sid = accept(journal, MARIANA_MX, "hola")
    assert journal.take_next(MARIANA_MX, "dead").attempts == 1
    assert journal.conversations_due() == []
    clock.advance(LEASE + timedelta(seconds=1))
    assert journal.conversations_due() == [MARIANA_MX]
    again = journal.take_next(MARIANA_MX, "alive")
    assert again.message.sid == sid and again.attempts == 2 and again.replayed
    assert not journal.renew(again.id, "dead")  # the dead worker cannot take it back
    journal.finish(again.id, "dead")  # nor finish it
    assert journal.status_of(sid) == "accepted"
    journal.finish(again.id, "alive")
    assert journal.status_of(sid) == "done"


def test_a_failed_row_waits_for_its_backoff_and_is_given_up_after_the_last_attempt(journal, clock):
    sid = accept(journal, MARIANA_MX, "hola")
    later = accept(journal, MARIANA_MX, "gracias")
    for attempt in range(1, MAX_ATTEMPTS + 1):
        entry = journal.take_next(MARIANA_MX, "w1")
        assert entry.message.sid == sid and entry.attempts == attempt  # never the newer one first
        retried = journal.retry_later(entry, "w1", "action server down")
        assert retried is (attempt < MAX_ATTEMPTS)
        if retried:
            assert journal.take_next(MARIANA_MX, "w1") is None  # its backoff is not over
            clock.advance(timedelta(seconds=31))
    assert journal.status_of(sid) == "failed"
    assert journal.take_next(MARIANA_MX, "w1").message.sid == later


def test_concurrent_workers_never_take_the_same_row(journal):
    accept(journal, MARIANA_MX, "hola")
    with ThreadPoolExecutor(8) as pool:
        taken = list(pool.map(lambda n: journal.take_next(MARIANA_MX, f"w{n}"), range(16)))
    assert len([entry for entry in taken if entry is not None]) == 1


def test_finished_rows_are_deleted_after_the_retention_and_unfinished_ones_never(journal, clock):
    done = accept(journal, MARIANA_MX, "hola")
    journal.finish(journal.take_next(MARIANA_MX, "w1").id, "w1")
    waiting = accept(journal, JULIAN_AR, "hola")
    clock.advance(RETENTION - timedelta(minutes=1))
    assert journal.prune() == 0
    clock.advance(timedelta(minutes=2))
    assert journal.prune() == 1
    assert journal.status_of(done) is None and journal.status_of(waiting) == "accepted"


def test_an_outage_is_retried_for_as_long_as_it_lasts(journal, clock):
    sid = accept(journal, MARIANA_MX, "hola")
    for _ in range(MAX_ATTEMPTS + 3):
        entry = journal.take_next(MARIANA_MX, "w1")
        assert journal.retry_later(entry, "w1", "action server down", outage=True)
        clock.advance(timedelta(seconds=31))
    assert journal.status_of(sid) == "accepted"


def test_a_finished_row_keeps_no_text_and_a_code_long_after_a_card_is_not_masked(journal, clock):
    card_sid = accept(journal, MARIANA_MX, f"mi tarjeta es {CARD}")
    entry = journal.take_next(MARIANA_MX, "w1")
    journal.finish(entry.id, "w1")
    assert journal.stored_body(card_sid) == ""  # the tracker holds what was written now
    clock.advance(timedelta(hours=25))  # the next day: "1007" is an order number, not a CVV
    later = accept(journal, MARIANA_MX, "1007")
    assert journal.stored_body(later) == "1007"
    clock.advance(timedelta(minutes=1))
    card_again = accept(journal, MARIANA_MX, f"otra vez {CARD}")
    cvv = accept(journal, MARIANA_MX, "123")
    assert journal.stored_body(cvv) == CVV_MASK and CARD_MASK in journal.stored_body(card_again)
