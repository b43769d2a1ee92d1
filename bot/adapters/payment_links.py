"""Signed payment links: the embedded ERP signs them, the payment page checks them with the same key.

Kept in the adapter layer because the SQL ERP issues the links; bot/payments.py re-exports the
check for the services and the payment page.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from itsdangerous import BadSignature, URLSafeSerializer

from bot.records import Invoice, PaymentLink

# Binds signatures to this one purpose: a token signed for something else never opens a payment.
LINK_SALT = "autoservicio.payment-link.v1"


class InvalidPaymentLink(ValueError):
    """The link was not issued by us, was altered, or has expired."""


@dataclass(frozen=True)
class PaymentLinkSigner:
    """Signs payment links for the embedded ERP: invoice, amount, currency and expiry inside."""

    secret: str
    base_url: str
    ttl: timedelta

    def sign(self, invoice: Invoice, now: datetime) -> PaymentLink:
        expires_at = now + self.ttl
        token = URLSafeSerializer(self.secret, salt=LINK_SALT).dumps(
            {
                "inv": invoice.id,
                "amt": str(invoice.amount),
                "cur": invoice.currency,
                "exp": int(expires_at.timestamp()),
            }
        )
        return PaymentLink(
            url=f"{self.base_url.rstrip('/')}/{token}",
            invoice_id=invoice.id,
            amount=invoice.amount,
            currency=invoice.currency,
            expires_at=expires_at,
        )


@dataclass(frozen=True)
class VerifiedLink:
    invoice_id: str
    amount: Decimal
    currency: str
    expires_at: datetime


def verify_payment_link(url: str, secret: str, now: datetime) -> VerifiedLink:
    """What a payment link asks to pay, if we signed it and it has not expired.

    The payment page calls this before charging; anything else raises InvalidPaymentLink.
    """
    token = url.rstrip("/").rsplit("/", 1)[-1]
    try:
        data = URLSafeSerializer(secret, salt=LINK_SALT).loads(token)
        link = VerifiedLink(
            invoice_id=str(data["inv"]),
            amount=Decimal(data["amt"]),
            currency=str(data["cur"]),
            expires_at=datetime.fromtimestamp(int(data["exp"]), timezone.utc),
        )
    except (BadSignature, KeyError, TypeError, ValueError, ArithmeticError) as error:
        raise InvalidPaymentLink("not a payment link we signed") from error
    if now >= link.expires_at:
        raise InvalidPaymentLink("the payment link has expired")
    return link
