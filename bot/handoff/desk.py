"""Delivers handoff packets to an external desk (HANDOFF_WEBHOOK_URL), signed, retried, never lost.

A handoff's delivery is written in the same transaction as the handoff (handoff_deliveries), so
a desk that is down only delays it: `deliver_due` (run every few seconds by the console process)
sends what is due, each claimed with a lease so two processes never send the same one, and on
failure schedules the next attempt with exponential backoff. The desk gets
`X-Handoff-Timestamp: <Unix seconds of the attempt>`,
`X-Handoff-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>" with HANDOFF_WEBHOOK_SECRET>`
(the timestamp is signed, so a captured POST replayed later is refused by `verify`) and
`X-Handoff-Id` (to drop a repeat within the tolerance, or one whose answer was lost on the way back).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from datetime import datetime, timedelta

import requests

from bot.handoff.store import HandoffStore

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Handoff-Signature"
TIMESTAMP_HEADER = "X-Handoff-Timestamp"
# How old a signed POST a desk still accepts, and how far ahead of its clock: the two clocks
# differ by seconds, a delivery's network time by less; a replay minutes later is refused.
TOLERANCE = timedelta(minutes=5)
FUTURE_SKEW = timedelta(minutes=1)
FIRST_RETRY = timedelta(seconds=5)
LONGEST_RETRY = timedelta(minutes=10)


def sign(body: bytes, secret: str, timestamp: int) -> str:
    """The signature of one POST: HMAC-SHA256 over "<timestamp>.<body>" (Stripe's scheme)."""
    signed = str(timestamp).encode() + b"." + body
    return "sha256=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def verify(
    body: bytes,
    timestamp: str | None,
    signature: str | None,
    secret: str,
    now: datetime,
    *,
    tolerance: timedelta = TOLERANCE,
    future_skew: timedelta = FUTURE_SKEW,
) -> bool:
    """What a desk runs on each POST (the headers' values as received, its own clock's `now`):
    True only for a signature of this body at this timestamp, made at most `tolerance` ago and
    at most `future_skew` ahead. Compared in constant time."""
    if not timestamp or not signature or not timestamp.isascii() or not timestamp.isdecimal():
        return False
    moment = int(timestamp)
    current = now.timestamp()
    if moment < current - tolerance.total_seconds() or moment > current + future_skew.total_seconds():
        return False
    return hmac.compare_digest(sign(body, secret, moment).encode(), signature.encode())


def retry_delay(attempts: int) -> timedelta:
    """5 s, 10 s, 20 s … up to 10 minutes between attempts."""
    return min(FIRST_RETRY * (2 ** max(attempts - 1, 0)), LONGEST_RETRY)


def post_signed(
    url: str,
    body: bytes,
    headers: dict[str, str],
    secret: str | None,
    moment: datetime,
    timeout_s: float,
    names: tuple[str, str] = (TIMESTAMP_HEADER, SIGNATURE_HEADER),
    who: str = "desk",
) -> tuple[bool, str]:
    """POST `body` as JSON, signed at `moment` when there is a secret (`names`: the timestamp
    and signature headers); whether the receiver accepted it (2xx) and, if not, why. Each attempt
    is signed at its own moment: a retry is a new POST, never a replay. Shared by the desk's
    deliveries and the KPI alerts' webhook."""
    headers = {"Content-Type": "application/json", **headers}
    if secret:
        timestamp = int(moment.timestamp())
        headers[names[0]] = str(timestamp)
        headers[names[1]] = sign(body, secret, timestamp)
    try:
        answer = requests.post(url, data=body, headers=headers, timeout=timeout_s)
    except requests.RequestException as failure:
        return False, f"{who} unreachable: {type(failure).__name__}"
    return 200 <= answer.status_code < 300, f"{who} answered {answer.status_code}"


def deliver_due(
    store: HandoffStore, url: str, secret: str | None, now: datetime, timeout_s: float = 10
) -> int:
    """Send every due delivery once; returns how many the desk accepted (2xx)."""
    moment = now
    accepted = 0
    for handoff_id in store.claim_due_deliveries(moment):
        handoff = store.get(handoff_id)
        if handoff is None:
            continue
        body = json.dumps(handoff.packet, ensure_ascii=False, sort_keys=True).encode()
        ok, error = post_signed(url, body, {"X-Handoff-Id": handoff_id}, secret, moment, timeout_s)
        if ok:
            store.delivered(handoff_id, moment)
            accepted += 1
            continue
        attempts = (store.delivery(handoff_id) or {}).get("attempts", 0) + 1
        store.delivery_failed(handoff_id, error, moment + retry_delay(attempts))
        logger.warning("handoff %s not delivered to the desk (%s); attempt %d", handoff_id, error, attempts)
    return accepted
