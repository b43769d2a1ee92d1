"""Media URLs (bot/media_links.py) on a fixed clock: what they open, for whom, until when, and
that nothing but our own signature opens anything."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from itsdangerous import URLSafeSerializer

from bot.clock import FixedClock
from bot.media_links import (
    INVOICE,
    MEDIA_PATH,
    MEDIA_SALT,
    UPLOAD,
    ExpiredMediaLink,
    ForgedMediaLink,
    MediaLinkSigner,
)
from bot.payments import PaymentLinkSigner

SECRET = "media-secret-for-tests"
BASE = "https://bot.example.test"
MOMENT = datetime(2026, 11, 26, 16, 0, tzinfo=timezone.utc)


def signer(secret: str = SECRET) -> MediaLinkSigner:
    return MediaLinkSigner(secret, BASE, timedelta(minutes=60))


def token_of(url: str) -> str:
    return url.split(MEDIA_PATH + "/", 1)[1].split("/", 1)[0]


def test_a_signed_url_opens_what_it_names_for_whom_it_names_under_the_public_base():
    link = signer().sign(INVOICE, "F-2001", "C-001", MOMENT, filename="factura-F-2001.pdf")
    assert link.url.startswith(f"{BASE}{MEDIA_PATH}/") and link.url.endswith("/factura-F-2001.pdf")
    assert link.expires_at == MOMENT + timedelta(minutes=60)
    grant = signer().verify(token_of(link.url), MOMENT)
    assert (grant.kind, grant.ref, grant.owner, grant.expires_at) == (
        INVOICE,
        "F-2001",
        "C-001",
        link.expires_at,
    )


def test_it_works_until_its_expiry_on_the_clock_given_and_not_a_second_after():
    clock = FixedClock(MOMENT)
    token = token_of(signer().sign(UPLOAD, "abc", "+525512345678", clock.now()).url)
    clock.advance(timedelta(minutes=59, seconds=59))
    assert signer().verify(token, clock.now()).ref == "abc"
    clock.advance(timedelta(seconds=1))
    with pytest.raises(ExpiredMediaLink):
        signer().verify(token, clock.now())


@pytest.mark.parametrize(
    "forge",
    [
        lambda token: token[:-2] + ("AA" if not token.endswith("AA") else "BB"),  # signature altered
        lambda token: "not-a-token",
        lambda token: "",
        # Our payload, signed with another key
        lambda token: URLSafeSerializer("guessed", salt=MEDIA_SALT).dumps(
            {"k": INVOICE, "r": "F-2003", "o": "C-001", "exp": 4102444800}
        ),
        # Our key, another purpose's salt (a payment link's token never opens media)
        lambda token: (
            PaymentLinkSigner(SECRET, BASE, timedelta(hours=1)).sign(_invoice(), MOMENT).url.rsplit("/", 1)[1]
        ),
        # Our key and salt, a kind we never issue
        lambda token: URLSafeSerializer(SECRET, salt=MEDIA_SALT).dumps(
            {"k": "file", "r": "/etc/passwd", "o": "x", "exp": 4102444800}
        ),
        # Our key and salt, an expiry that is no number
        lambda token: URLSafeSerializer(SECRET, salt=MEDIA_SALT).dumps(
            {"k": INVOICE, "r": "F", "o": "C", "exp": "x"}
        ),
    ],
)
def test_anything_we_did_not_sign_is_forged(forge):
    genuine = token_of(signer().sign(INVOICE, "F-2001", "C-001", MOMENT).url)
    with pytest.raises(ForgedMediaLink):
        signer().verify(forge(genuine), MOMENT)


def test_a_forged_token_is_refused_as_forged_even_when_it_claims_to_be_expired():
    # The signature is judged before the expiry inside is believed.
    old = URLSafeSerializer("guessed", salt=MEDIA_SALT).dumps({"k": INVOICE, "r": "F", "o": "C", "exp": 1})
    with pytest.raises(ForgedMediaLink):
        signer().verify(old, MOMENT)


def test_another_secret_opens_nothing_and_unknown_kinds_are_not_signed():
    token = token_of(signer().sign(INVOICE, "F-2001", "C-001", MOMENT).url)
    with pytest.raises(ForgedMediaLink):
        signer("rotated-secret").verify(token, MOMENT)
    with pytest.raises(ValueError):
        signer().sign("file", "x", "y", MOMENT)


def _invoice():
    from decimal import Decimal

    from bot.records import Invoice, InvoiceStatus

    day = MOMENT.date()
    return Invoice("F-2001", "C-001", Decimal("10.00"), "MXN", day, day, InvoiceStatus.OPEN)
