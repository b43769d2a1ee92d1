"""Signed identity claims: who a conversation has proved to be, bound to its sender, expiring.

A slot is only a value in a tracker, and a tracker can be made up (a POST to the action server,
a SlotSet through Rasa's HTTP API). So a verified identity is not a customer id in a slot but a
claim over (kind, sender, customer, issued, expires, how) with an HMAC-SHA256 under
IDENTITY_SECRET. Only the verification steps issue claims; every action that shows or changes a
customer's data checks one: the signature (compared in constant time), the kind, the
conversation's sender and the expiry against the clock's now. A claim that fails any check is
worth nothing. Time is an input here: nothing reads the clock.

Three kinds: IDENTIFIED (an order number and document matched a customer; the one-time code to that
customer's number on file is still to come), VERIFIED (the code was answered) and ORDER_OWNER (the
order a form works on was found among the sender's own; `how` names the order), which lets a form
finish its write from what it learned when the CRM/ERP stops answering at the last step.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import datetime, timedelta

IDENTIFIED = "identified"
VERIFIED = "verified"
ORDER_OWNER = "order_owner"
KINDS = frozenset({IDENTIFIED, VERIFIED, ORDER_OWNER})
# How long an order number + document identification lasts while the code is asked for.
IDENTIFIED_TTL = timedelta(minutes=30)
# How long a form may rely on "this order is the sender's" without asking the CRM/ERP again.
ORDER_OWNER_TTL = timedelta(hours=2)
VERSION = "v1"
# A claim issued this far in the future (clocks of replicas drifting apart) is still accepted.
CLOCK_SKEW = timedelta(seconds=60)
# Keys derived for this purpose only, so IDENTITY_SECRET reused elsewhere signs nothing here.
_PURPOSE = b"autoservicio identity claim " + VERSION.encode()


@dataclass(frozen=True)
class IdentityClaim:
    kind: str
    sender: str  # the conversation's sender id (Twilio's From, the REST channel's sender)
    customer_id: str
    issued_at: float  # epoch seconds
    expires_at: float
    how: str  # "sms_code", "order_document+sms_code", "order_document"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class IdentitySigner:
    """Issues and checks claims under one secret."""

    def __init__(self, secret: str) -> None:
        if not secret:
            raise ValueError("an identity signer needs a secret (IDENTITY_SECRET)")
        self._key = hmac.new(secret.encode(), _PURPOSE, hashlib.sha256).digest()

    def _mac(self, signed: str) -> str:
        return _b64(hmac.new(self._key, signed.encode(), hashlib.sha256).digest())

    def issue(self, kind: str, sender: str, customer_id: str, how: str, now: datetime, ttl: timedelta) -> str:
        """The claim as text for a slot: `v1.<payload>.<mac>`."""
        if kind not in KINDS:
            raise ValueError(f"unknown claim kind {kind!r}")
        issued = now.timestamp()
        payload = {
            "k": kind,
            "s": sender,
            "c": customer_id,
            "i": issued,
            "e": issued + ttl.total_seconds(),
            "h": how,
        }
        body = _b64(json.dumps(payload, separators=(",", ":"), sort_keys=True).encode())
        signed = f"{VERSION}.{body}"
        return f"{signed}.{self._mac(signed)}"

    def verify(self, token: object, kind: str, sender: str, now: datetime) -> IdentityClaim | None:
        """The claim in `token` if it is ours, of `kind`, for `sender` and unexpired at `now`;
        None otherwise (made up, altered, another conversation's, expired, or not a claim)."""
        if not isinstance(token, str) or token.count(".") != 2:
            return None
        version, body, mac = token.split(".")
        if version != VERSION:
            return None
        if not hmac.compare_digest(self._mac(f"{version}.{body}").encode(), mac.encode()):
            return None
        try:
            payload = json.loads(_unb64(body))
            claim = IdentityClaim(
                kind=str(payload["k"]),
                sender=str(payload["s"]),
                customer_id=str(payload["c"]),
                issued_at=float(payload["i"]),
                expires_at=float(payload["e"]),
                how=str(payload["h"]),
            )
        except (ValueError, KeyError, TypeError, binascii.Error):
            return None
        moment = now.timestamp()
        if claim.kind != kind or not hmac.compare_digest(claim.sender.encode(), sender.encode()):
            return None
        if not claim.issued_at - CLOCK_SKEW.total_seconds() <= moment < claim.expires_at:
            return None
        return claim
