"""The desk webhook's signature covers a timestamp; `verify` is what a desk runs on each POST."""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, timedelta, timezone

import pytest

from bot.handoff.desk import FUTURE_SKEW, TOLERANCE, sign, verify

SECRET = "s3cret"
BODY = b'{"handoff_id": "HO-7F3K2Q9M", "customer": {"name": "Mariana"}}'
SENT = datetime(2026, 11, 26, 16, 0, tzinfo=timezone.utc)
STAMP = int(SENT.timestamp())
SIGNATURE = sign(BODY, SECRET, STAMP)


def test_a_fresh_post_is_accepted():
    assert verify(BODY, str(STAMP), SIGNATURE, SECRET, SENT + timedelta(seconds=2))


@pytest.mark.parametrize("late", [TOLERANCE + timedelta(seconds=1), timedelta(hours=3), timedelta(days=30)])
def test_a_post_replayed_after_the_tolerance_is_refused(late):
    assert not verify(BODY, str(STAMP), SIGNATURE, SECRET, SENT + late)


def test_the_tolerance_and_the_skew_are_inclusive_bounds_on_the_desks_clock():
    assert verify(BODY, str(STAMP), SIGNATURE, SECRET, SENT + TOLERANCE)
    assert verify(BODY, str(STAMP), SIGNATURE, SECRET, SENT - FUTURE_SKEW)
    assert not verify(BODY, str(STAMP), SIGNATURE, SECRET, SENT - FUTURE_SKEW - timedelta(seconds=1))
    an_hour_later = SENT + timedelta(hours=1)
    assert verify(BODY, str(STAMP), SIGNATURE, SECRET, an_hour_later, tolerance=timedelta(hours=2))


def test_a_replay_with_a_fresh_timestamp_header_does_not_match_the_signature():
    later = SENT + timedelta(hours=1)
    assert not verify(BODY, str(int(later.timestamp())), SIGNATURE, SECRET, later)


@pytest.mark.parametrize(
    ("body", "stamp", "signature", "secret"),
    [
        (BODY + b" ", str(STAMP), SIGNATURE, SECRET),  # another body
        (BODY, str(STAMP), SIGNATURE, "other"),  # another key
        (BODY, None, SIGNATURE, SECRET),  # no timestamp
        (BODY, str(STAMP), None, SECRET),  # no signature
        (BODY, f"{STAMP}.5", SIGNATURE, SECRET),  # not whole seconds
        (BODY, "١٧٩٦٠٤٧٨٨٤", SIGNATURE, SECRET),  # digits of another script
        (BODY, str(STAMP), "sha256=" + "0" * 64, SECRET),
    ],
)
def test_anything_else_is_refused(body, stamp, signature, secret):
    assert not verify(body, stamp, signature, secret, SENT)


def test_the_signature_is_over_timestamp_dot_body():
    expected = hmac.new(SECRET.encode(), f"{STAMP}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert "sha256=" + expected == SIGNATURE
