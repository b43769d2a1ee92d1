"""Expiring signed URLs for the media the assistant serves Twilio: invoice PDFs and agents' files.

Twilio fetches a message's media from a public URL, without credentials of ours. The URL itself
is the credential: it names what it opens (`kind` and `ref`: an invoice id or a stored file's
random id), whom it was issued for (`owner`: the customer id of an invoice, the phone number a
file was sent to) and until when, signed with MEDIA_LINK_SECRET under a salt of its own (a token
signed for anything else, a payment link or a session, never opens media). Whoever serves it
checks the signature and the expiry here first, before any lookup, and then that the thing named
still belongs to `owner`. Time comes from the caller (the project clock): tests run at fixed
moments.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from itsdangerous import BadSignature, URLSafeSerializer

MEDIA_SALT = "autoservicio.media-link.v1"
MEDIA_PATH = "/webhooks/twilio/media"  # served by the Twilio channel's HTTP app (the Rasa server)
INVOICE = "invoice"  # ref: the invoice id; owner: the customer id
UPLOAD = "upload"  # ref: the stored file's id; owner: the E.164 number it was sent to
KINDS = (INVOICE, UPLOAD)


class ForgedMediaLink(ValueError):
    """Not a media URL we signed, or altered: answered 403."""


class ExpiredMediaLink(ValueError):
    """A media URL we signed whose time is over: answered 410."""


@dataclass(frozen=True)
class MediaGrant:
    """What a verified media URL opens."""

    kind: str
    ref: str
    owner: str
    expires_at: datetime


@dataclass(frozen=True)
class MediaLink:
    url: str
    expires_at: datetime


@dataclass(frozen=True)
class MediaLinkSigner:
    """Signs and checks media URLs; `base_url` is where Twilio reaches the Rasa server."""

    secret: str
    base_url: str
    ttl: timedelta

    def _serializer(self) -> URLSafeSerializer:
        return URLSafeSerializer(self.secret, salt=MEDIA_SALT)

    def sign(self, kind: str, ref: str, owner: str, now: datetime, filename: str = "") -> MediaLink:
        """A URL for `ref` of `kind`, for `owner`, working until now + ttl. `filename` (a clean
        name like `factura-F-2004.pdf`) ends the path, so the customer's phone shows it."""
        if kind not in KINDS:
            raise ValueError(f"unknown media kind {kind!r}")
        expires_at = now + self.ttl
        token = self._serializer().dumps(
            {"k": kind, "r": ref, "o": owner, "exp": int(expires_at.timestamp())}
        )
        tail = f"/{filename}" if filename else ""
        return MediaLink(f"{self.base_url.rstrip('/')}{MEDIA_PATH}/{token}{tail}", expires_at)

    def verify(self, token: str, now: datetime) -> MediaGrant:
        """What `token` opens, if we signed it and it has not expired; raises ForgedMediaLink or
        ExpiredMediaLink otherwise (the signature is checked before the expiry is believed)."""
        try:
            data = self._serializer().loads(token)
            grant = MediaGrant(
                kind=str(data["k"]),
                ref=str(data["r"]),
                owner=str(data["o"]),
                expires_at=datetime.fromtimestamp(int(data["exp"]), timezone.utc),
            )
        except (BadSignature, KeyError, TypeError, ValueError, OverflowError) as error:
            raise ForgedMediaLink("not a media link we signed") from error
        if grant.kind not in KINDS:
            raise ForgedMediaLink(f"unknown media kind {grant.kind!r}")
        if now >= grant.expires_at:
            raise ExpiredMediaLink("the media link has expired")
        return grant
