"""Finding 7: a number not on file identifies itself with an order number and the last digits of
a document, and a hit sends a code to the customer and shows their number's last digits. The
wrong answers were counted per form run and the count started over, so the guesses were
unlimited: a new form run, a new session or a new number, and the guessing went on.

Now wrong answers are counted per sender number and per customer the order names, across form
runs and sessions, in a window (IDENTITY_MAX_WRONG_PER_NUMBER, IDENTITY_MAX_WRONG_PER_CUSTOMER,
5 each, in IDENTITY_GUESS_WINDOW_HOURS, 24), in the stack's Redis. Through the running stack's
REST channel: a second and a third session of the same number cannot keep guessing, and once a
customer's bound is reached a fresh number cannot either, not even with the right document.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis

from tests.conftest import JULIAN_AR, STACK_REDIS_URL
from tests.harness import is_response
from tests.stack_helpers import texts

pytestmark = pytest.mark.integration

ORDER = "PED-1004"  # Julián's (C-002): his document ends in 3456
RIGHT_DOCUMENT = "3456"
GUESS_KEYS = "autoservicio:identity-guess:*"


def forget_guesses() -> None:
    shared = redis.Redis.from_url(STACK_REDIS_URL)
    stale = list(shared.scan_iter(GUESS_KEYS)) + list(shared.scan_iter("autoservicio:otp:*C-002"))
    if stale:
        shared.delete(*stale)
    shared.close()


@pytest.fixture(autouse=True)
def no_earlier_guesses(stack) -> Iterator[None]:
    """The counts live in the stack's Redis, which outlives a test: start and leave it clean,
    so that no other test's customer is locked by these."""
    forget_guesses()
    yield
    forget_guesses()


def a_stranger() -> str:
    return "+5255" + str(uuid.uuid4().int)[:8]


def guess(stack, sender: str, document: str) -> str:
    """Order number, then a document: what the bot says to the document (or to the order, when
    it stops before asking)."""
    asked = texts(stack.say(sender, ORDER))
    if not is_response(asked, "utter_ask_identity_document"):
        return asked
    return texts(stack.say(sender, document))


def new_session(stack, sender: str) -> str:
    """A new conversation session of the same number, asking for the invoices again."""
    stack.say(sender, "/restart", command=True)
    asked = texts(stack.say(sender, "me mandas mis facturas?"))
    assert is_response(asked, "utter_ask_identity_order_id"), asked
    return asked


def test_a_second_and_third_session_cannot_keep_guessing(stack, fake_twilio):
    stranger = a_stranger()
    codes_before = len(fake_twilio.messages_to(JULIAN_AR))
    # Session 1: two wrong documents end the form run, as before.
    new_session(stack, stranger)
    assert is_response(guess(stack, stranger, "1111"), "utter_identity_mismatch")
    assert is_response(guess(stack, stranger, "2222"), "utter_identity_failed")
    # Session 2: the run's count starts over, the number's does not.
    new_session(stack, stranger)
    assert is_response(guess(stack, stranger, "3333"), "utter_identity_mismatch")
    assert is_response(guess(stack, stranger, "4444"), "utter_identity_failed")
    # Session 3: the fifth wrong answer reaches the bound; the bot says so and offers a person.
    new_session(stack, stranger)
    stopped = guess(stack, stranger, "5555")
    assert not is_response(stopped, "utter_identity_mismatch"), "a third session may still guess"
    assert is_response(stopped, "utter_identity_too_many_guesses"), stopped
    # Session 4: not even the right document is checked any more.
    new_session(stack, stranger)
    refused = guess(stack, stranger, RIGHT_DOCUMENT)
    assert not is_response(refused, "utter_otp_sent"), "the sixth guess of one number was checked"
    assert len(fake_twilio.messages_to(JULIAN_AR)) == codes_before  # no code went to Julián
    assert is_response(refused, "utter_identity_too_many_guesses"), refused


def test_new_numbers_cannot_keep_guessing_one_customers_document(stack, fake_twilio):
    codes_before = len(fake_twilio.messages_to(JULIAN_AR))
    for attempt in range(5):
        stranger = a_stranger()
        new_session(stack, stranger)
        said = guess(stack, stranger, f"{attempt}{attempt}{attempt}{attempt}")
        assert is_response(said, "utter_identity_mismatch") == (attempt < 4), said
    assert is_response(said, "utter_identity_too_many_guesses"), said
    fresh = a_stranger()
    new_session(stack, fresh)
    refused = guess(stack, fresh, RIGHT_DOCUMENT)
    assert not is_response(refused, "utter_otp_sent"), "a sixth number's guess at C-002 was checked"
    assert len(fake_twilio.messages_to(JULIAN_AR)) == codes_before
    assert is_response(refused, "utter_identity_too_many_guesses"), refused


def test_below_the_bounds_the_right_document_still_identifies(stack, fake_twilio):
    stranger = a_stranger()
    new_session(stack, stranger)
    assert is_response(guess(stack, stranger, "1111"), "utter_identity_mismatch")
    asked = guess(stack, stranger, RIGHT_DOCUMENT)
    assert is_response(asked, "utter_otp_sent"), asked  # the code goes to Julián's number on file
    stack.say(stranger, "cancelar")
