"""How the CRM/ERP signs the events it POSTs to the assistant: the handoff desk's scheme
(HMAC-SHA256 over "<timestamp>.<body>", bot/handoff/desk.py) under headers of its own."""

from __future__ import annotations

from datetime import datetime

from bot.handoff import desk

SIGNATURE_HEADER = "X-Notify-Signature"
TIMESTAMP_HEADER = "X-Notify-Timestamp"


def signed_headers(body: bytes, secret: str, now: datetime) -> dict[str, str]:
    """The headers a sender of events adds to a POST of `body` (tests, `make notify-demo`)."""
    timestamp = int(now.timestamp())
    return {TIMESTAMP_HEADER: str(timestamp), SIGNATURE_HEADER: desk.sign(body, secret, timestamp)}


def is_signed(body: bytes, timestamp: str | None, signature: str | None, secret: str, now: datetime) -> bool:
    """True only for a signature of this body made at most five minutes ago (replays are refused)."""
    return desk.verify(body, timestamp, signature, secret, now)
