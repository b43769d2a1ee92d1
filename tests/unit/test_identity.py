"""Identity claims (bot/identity.py) and the bound on identity-question guesses
(bot.verification.IdentityGuesses), in bot/ terms: no Rasa, time given."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.clock import FixedClock
from bot.identity import IDENTIFIED, VERIFIED, IdentitySigner
from bot.settings import Settings, SettingsError, require_identity_secret
from bot.verification import IdentityGuesses, MemoryAttemptStore

NOW = datetime(2026, 11, 26, 16, 0, tzinfo=timezone.utc)
SECRET = "a-long-random-identity-secret"
SENDER = "+525500000000"
SIGNER = IdentitySigner(SECRET)


def issued(kind=VERIFIED, sender=SENDER, customer="C-001", how="sms_code", ttl=timedelta(minutes=60)) -> str:
    return SIGNER.issue(kind, sender, customer, how, NOW, ttl)


def test_a_claim_issued_here_verifies_for_its_sender_until_it_expires():
    claim = SIGNER.verify(issued(), VERIFIED, SENDER, NOW + timedelta(minutes=59))
    assert (claim.customer_id, claim.sender, claim.how) == ("C-001", SENDER, "sms_code")
    assert claim.expires_at == NOW.timestamp() + 3600
    assert SIGNER.verify(issued(), VERIFIED, SENDER, NOW + timedelta(minutes=60)) is None


def test_a_claim_is_worthless_for_another_sender():
    assert SIGNER.verify(issued(), VERIFIED, "+525512345678", NOW) is None


def test_a_claim_of_one_kind_is_not_the_other():
    assert SIGNER.verify(issued(kind=IDENTIFIED), VERIFIED, SENDER, NOW) is None
    assert SIGNER.verify(issued(kind=VERIFIED), IDENTIFIED, SENDER, NOW) is None


def test_a_claim_signed_with_another_secret_is_rejected():
    forged = IdentitySigner("someone-elses-secret").issue(
        VERIFIED, SENDER, "C-001", "sms_code", NOW, timedelta(hours=1)
    )
    assert SIGNER.verify(forged, VERIFIED, SENDER, NOW) is None


def test_an_altered_customer_or_expiry_breaks_the_signature():
    version, body, mac = issued(customer="C-009").split(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    for field, value in (("c", "C-001"), ("e", payload["e"] + 86400), ("s", "+525512345678")):
        changed = {**payload, field: value}
        new_body = base64.urlsafe_b64encode(json.dumps(changed).encode()).rstrip(b"=").decode()
        assert SIGNER.verify(f"{version}.{new_body}.{mac}", VERIFIED, changed["s"], NOW) is None


def test_a_claim_from_the_future_is_rejected_beyond_a_minute_of_clock_skew():
    later = SIGNER.issue(
        VERIFIED, SENDER, "C-001", "sms_code", NOW + timedelta(minutes=5), timedelta(hours=1)
    )
    assert SIGNER.verify(later, VERIFIED, SENDER, NOW) is None
    skewed = SIGNER.issue(
        VERIFIED, SENDER, "C-001", "sms_code", NOW + timedelta(seconds=30), timedelta(hours=1)
    )
    assert SIGNER.verify(skewed, VERIFIED, SENDER, NOW) is not None


@pytest.mark.parametrize("value", [None, "", "C-001", 1.0, ["x"], "v1..", "v1.e30.", "v2.a.b", "a.b.c.d"])
def test_what_the_old_slots_held_or_anything_else_is_not_a_claim(value):
    assert SIGNER.verify(value, VERIFIED, SENDER, NOW) is None


@given(st.text(max_size=200))
def test_no_text_made_up_without_the_secret_verifies(text):
    assert SIGNER.verify(text, VERIFIED, SENDER, NOW) is None


def test_a_signer_without_a_secret_cannot_be_built():
    with pytest.raises(ValueError):
        IdentitySigner("")


def test_production_refuses_to_run_without_identity_secret():
    with pytest.raises(SettingsError, match="IDENTITY_SECRET"):
        require_identity_secret(Settings.from_env({"BOT_ENV": "production"}))
    require_identity_secret(Settings.from_env({"IDENTITY_SECRET": "s"}))


def test_guess_bounds_default_to_five_per_number_and_per_customer_a_day():
    settings = Settings.from_env({})
    assert (
        settings.identity_max_wrong_per_number,
        settings.identity_max_wrong_per_customer,
        settings.identity_guess_window_hours,
    ) == (5, 5, 24)
    with pytest.raises(SettingsError, match="IDENTITY_MAX_WRONG_PER_NUMBER"):
        Settings.from_env({"IDENTITY_MAX_WRONG_PER_NUMBER": "0"})


# --- identity-question guesses ----------------------------------------------------------------


def guesses(clock: FixedClock, per_number: int = 5, per_customer: int = 5) -> IdentityGuesses:
    return IdentityGuesses(MemoryAttemptStore(clock), per_number, per_customer, timedelta(hours=24))


def test_wrong_answers_from_one_number_stop_at_the_bound_whatever_the_form_run():
    clock = FixedClock(NOW)
    bound = guesses(clock)
    reached = [bound.wrong(SENDER, None) for _ in range(5)]
    assert reached == [False, False, False, False, True]
    assert bound.blocked(SENDER, None) and bound.blocked(SENDER, "C-001")
    assert not bound.blocked("+525511111111", None)


def test_wrong_answers_about_one_customer_stop_every_number():
    clock = FixedClock(NOW)
    bound = guesses(clock)
    for attempt in range(5):
        bound.wrong(f"+52550000000{attempt}", "C-002")
    assert bound.blocked("+525599999999", "C-002")  # a fresh number, the same target
    assert not bound.blocked("+525599999999", "C-001")
    assert not bound.blocked("+525599999999", None)


def test_the_bound_lifts_when_the_window_ends():
    clock = FixedClock(NOW)
    bound = guesses(clock, per_number=2)
    bound.wrong(SENDER, "C-001")
    clock.advance(timedelta(hours=23))
    assert bound.wrong(SENDER, None) is True and bound.blocked(SENDER, None)
    clock.advance(timedelta(hours=1, seconds=1))  # 24 h after the first wrong answer
    assert not bound.blocked(SENDER, None) and not bound.blocked(SENDER, "C-001")
