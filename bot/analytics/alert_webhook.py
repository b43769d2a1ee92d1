"""Posts fired KPI alerts to ALERT_WEBHOOK_URL, signed, retried, off every request's path.

Signed like the desk's webhook (bot/handoff/desk.py): `X-Alert-Timestamp: <Unix seconds of the
attempt>`, `X-Alert-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>" with
ALERT_WEBHOOK_SECRET>` and `X-Alert-Id` (to drop a repeat whose answer was lost). A receiver
checks it with `bot.handoff.desk.verify`. Run by the analytics consumer's alert task in a worker
thread, with a short timeout: a slow or dead webhook delays only its own retries.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime

from bot.analytics.alert_book import AlertBook
from bot.handoff.desk import post_signed, retry_delay

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Alert-Signature"
TIMESTAMP_HEADER = "X-Alert-Timestamp"
ID_HEADER = "X-Alert-Id"


def encoded(fields: dict) -> bytes:
    """The exact bytes posted (and signed): compact key order, UTF-8."""
    return json.dumps(fields, ensure_ascii=False, sort_keys=True).encode()


def deliver_due_alerts(book: AlertBook, url: str, secret: str, now: datetime, timeout_s: float = 5) -> int:
    """POST every due alert once; how many the webhook accepted (2xx)."""
    accepted = 0
    for alert in book.claim_due(now):
        body = encoded(alert.body())
        ok, error = post_signed(
            url,
            body,
            {ID_HEADER: str(alert.id)},
            secret,
            now,
            timeout_s,
            names=(TIMESTAMP_HEADER, SIGNATURE_HEADER),
            who="webhook",
        )
        if ok:
            book.delivered(alert.id, now)
            accepted += 1
            continue
        attempts = book.failed(alert.id, error, now + retry_delay(alert.attempts + 1))
        log.warning("KPI alert %s not delivered (%s); attempt %d", alert.id, error, attempts)
    return accepted
