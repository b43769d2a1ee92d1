"""Delivers handoff packets to an external desk (HANDOFF_WEBHOOK_URL), signed, retried, never lost.

A handoff's delivery is written in the same transaction as the handoff (handoff_deliveries), so
a desk that is down only delays it: `deliver_due` (run every few seconds by the console process)
sends what is due, each claimed with a lease so two processes never send the same one, and on
failure schedules the next attempt with exponential backoff. The desk gets
`X-Handoff-Signature: sha256=<hex HMAC-SHA256 of the body with HANDOFF_WEBHOOK_SECRET>` and
`X-Handoff-Id` (to drop a repeat if its answer was lost on the way back).
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
FIRST_RETRY = timedelta(seconds=5)
LONGEST_RETRY = timedelta(minutes=10)


def sign(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def retry_delay(attempts: int) -> timedelta:
    """5 s, 10 s, 20 s … up to 10 minutes between attempts."""
    return min(FIRST_RETRY * (2 ** max(attempts - 1, 0)), LONGEST_RETRY)


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
        headers = {"Content-Type": "application/json", "X-Handoff-Id": handoff_id}
        if secret:
            headers[SIGNATURE_HEADER] = sign(body, secret)
        try:
            answer = requests.post(url, data=body, headers=headers, timeout=timeout_s)
            ok, error = 200 <= answer.status_code < 300, f"desk answered {answer.status_code}"
        except requests.RequestException as failure:
            ok, error = False, f"desk unreachable: {type(failure).__name__}"
        if ok:
            store.delivered(handoff_id, moment)
            accepted += 1
            continue
        attempts = (store.delivery(handoff_id) or {}).get("attempts", 0) + 1
        store.delivery_failed(handoff_id, error, moment + retry_delay(attempts))
        logger.warning("handoff %s not delivered to the desk (%s); attempt %d", handoff_id, error, attempts)
    return accepted
