"""One-time codes: six digits, five minutes, once; three wrong tries lock; three sends per window.
Attempts run in memory with a frozen clock and, for the shared limits, against the real Redis."""

from __future__ import annotations

from datetime import timedelta

import pyotp
import pytest
from cryptography.fernet import Fernet

from bot.adapters.sql import SqlOtpSecrets, otp_secrets
from bot.clock import FixedClock
from bot.verification import (
    CheckOutcome,
    CodeVerifier,
    MemoryAttemptStore,
    RedisAttemptStore,
    SendOutcome,
)
from tests.conftest import NOW

KEY = Fernet.generate_key().decode()


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
def verifier(store, clock) -> CodeVerifier:
    return CodeVerifier(SqlOtpSecrets(store), MemoryAttemptStore(clock), KEY)


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


def test_a_code_is_six_digits_and_verifies_once(verifier):
    outcome, code = verifier.issue("C-001")
    assert outcome is SendOutcome.SENT
    assert len(code) == 6 and code.isdigit()
    assert verifier.check("C-001", code).outcome is CheckOutcome.VERIFIED
    assert verifier.check("C-001", code).outcome is CheckOutcome.EXPIRED  # single use


def test_a_code_expires_after_five_minutes(verifier, clock):
    _, code = verifier.issue("C-001")
    clock.advance(timedelta(minutes=5, seconds=1))
    assert verifier.check("C-001", code).outcome is CheckOutcome.EXPIRED


def test_a_code_still_works_just_before_five_minutes(verifier, clock):
    _, code = verifier.issue("C-001")
    clock.advance(timedelta(minutes=4, seconds=59))
    assert verifier.check("C-001", code).outcome is CheckOutcome.VERIFIED


def test_only_the_latest_code_works(verifier):
    _, first = verifier.issue("C-001")
    _, second = verifier.issue("C-001")
    assert first != second
    assert verifier.check("C-001", first).outcome is CheckOutcome.WRONG
    assert verifier.check("C-001", second).outcome is CheckOutcome.VERIFIED


def test_a_code_of_one_customer_does_not_verify_another(verifier):
    _, code = verifier.issue("C-001")
    verifier.issue("C-002")
    assert verifier.check("C-002", code).outcome is CheckOutcome.WRONG


def test_three_wrong_codes_lock_verification_for_fifteen_minutes(verifier, clock):
    _, code = verifier.issue("C-001")
    assert verifier.check("C-001", wrong(code)).tries_left == 2
    assert verifier.check("C-001", wrong(code)).tries_left == 1
    assert verifier.check("C-001", wrong(code)).outcome is CheckOutcome.LOCKED
    # Locked: even the right code fails, and no new code is sent.
    assert verifier.check("C-001", code).outcome is CheckOutcome.LOCKED
    assert verifier.issue("C-001") == (SendOutcome.LOCKED, None)
    clock.advance(timedelta(minutes=15, seconds=1))
    outcome, fresh = verifier.issue("C-001")
    assert outcome is SendOutcome.SENT
    assert verifier.check("C-001", fresh).outcome is CheckOutcome.VERIFIED


def test_a_right_code_clears_the_wrong_count(verifier):
    _, code = verifier.issue("C-001")
    verifier.check("C-001", wrong(code))
    verifier.check("C-001", wrong(code))
    assert verifier.check("C-001", code).outcome is CheckOutcome.VERIFIED
    _, code = verifier.issue("C-001")
    assert verifier.check("C-001", wrong(code)).tries_left == 2


def test_at_most_three_codes_are_sent_in_fifteen_minutes(verifier, clock):
    for _ in range(3):
        assert verifier.issue("C-001")[0] is SendOutcome.SENT
    assert verifier.issue("C-001") == (SendOutcome.TOO_MANY_SENDS, None)
    clock.advance(timedelta(minutes=15, seconds=1))
    assert verifier.issue("C-001")[0] is SendOutcome.SENT


def test_spaces_in_a_typed_code_are_forgiven(verifier):
    _, code = verifier.issue("C-001")
    assert verifier.check("C-001", f"{code[:3]} {code[3:]}").outcome is CheckOutcome.VERIFIED


def test_secrets_are_stored_encrypted_and_are_pyotp_hotp(store, verifier):
    _, code = verifier.issue("C-001")
    with store.connect() as conn:
        row = conn.execute(otp_secrets.select()).one()
    secret = Fernet(KEY).decrypt(bytes(row.secret)).decode()
    assert secret.encode() not in bytes(row.secret)
    assert pyotp.HOTP(secret, digits=6).at(row.counter) == code


def test_a_changed_key_is_an_unavailable_backend_not_a_crash(store, clock):
    from bot.adapters.base import BackendUnavailable

    first = CodeVerifier(SqlOtpSecrets(store), MemoryAttemptStore(clock), KEY)
    first.issue("C-001")
    other = CodeVerifier(SqlOtpSecrets(store), MemoryAttemptStore(clock), Fernet.generate_key().decode())
    with pytest.raises(BackendUnavailable):
        other.issue("C-001")


# --- the same limits in the real Redis, shared by replicas ---------------------------------


@pytest.fixture
def redis_verifier(store, redis_client) -> CodeVerifier:
    return CodeVerifier(SqlOtpSecrets(store), RedisAttemptStore(redis_client, prefix="test:otp:"), KEY)


def test_redis_counts_in_a_window_that_expires(redis_client):
    attempts = RedisAttemptStore(redis_client, prefix="test:otp:")
    assert [attempts.hit("k", timedelta(minutes=15)) for _ in range(3)] == [1, 2, 3]
    ttl = redis_client.ttl("test:otp:k")
    assert 14 * 60 < ttl <= 15 * 60  # set once, at the first hit


def test_redis_take_gives_a_value_to_one_caller_only(redis_client):
    attempts = RedisAttemptStore(redis_client, prefix="test:otp:")
    attempts.put("code", "7", timedelta(minutes=5))
    assert attempts.take("code") == "7"
    assert attempts.take("code") is None


def test_redis_limits_lock_after_three_wrong_codes_across_replicas(store, redis_client):
    # Two action-server replicas, one Redis: the wrong tries add up.
    one = CodeVerifier(SqlOtpSecrets(store), RedisAttemptStore(redis_client, prefix="test:otp:"), KEY)
    two = CodeVerifier(SqlOtpSecrets(store), RedisAttemptStore(redis_client, prefix="test:otp:"), KEY)
    _, code = one.issue("C-001")
    assert one.check("C-001", wrong(code)).outcome is CheckOutcome.WRONG
    assert two.check("C-001", wrong(code)).outcome is CheckOutcome.WRONG
    assert one.check("C-001", wrong(code)).outcome is CheckOutcome.LOCKED
    assert two.issue("C-001") == (SendOutcome.LOCKED, None)
    assert 14 * 60 < redis_client.ttl("test:otp:lock:C-001") <= 15 * 60


def test_redis_code_works_once_across_replicas(store, redis_client):
    one = CodeVerifier(SqlOtpSecrets(store), RedisAttemptStore(redis_client, prefix="test:otp:"), KEY)
    two = CodeVerifier(SqlOtpSecrets(store), RedisAttemptStore(redis_client, prefix="test:otp:"), KEY)
    _, code = one.issue("C-001")
    assert two.check("C-001", code).outcome is CheckOutcome.VERIFIED
    assert one.check("C-001", code).outcome is CheckOutcome.EXPIRED
    one.issue("C-001")
    assert 4 * 60 < redis_client.pttl("test:otp:code:C-001") / 1000 <= 5 * 60


def test_redis_allows_three_sends_per_window(redis_verifier):
    for _ in range(3):
        assert redis_verifier.issue("C-001")[0] is SendOutcome.SENT
    assert redis_verifier.issue("C-001") == (SendOutcome.TOO_MANY_SENDS, None)
