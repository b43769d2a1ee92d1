"""Money per country, signed payment links (tampering and expiry), promise dates and when a
person is needed: the payment rules that need no database. The SQL ERP's payment tables are
tests/integration/test_payments.py."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from itsdangerous import URLSafeSerializer

from bot.money import currency_of, format_due_date, format_money
from bot.payments import (
    LINK_SALT,
    InvalidPaymentLink,
    PaymentLinkSigner,
    needs_a_person,
    needs_person_for,
    parse_promise_date,
    verify_payment_link,
)
from bot.records import Invoice, InvoiceStatus
from tests.conftest import NOW

SECRET = "link-secret-for-tests"
SIGNER = PaymentLinkSigner(SECRET, "https://pagos.example.test/pagar", timedelta(hours=24))
INVOICE = Invoice(
    "F-9001", "C-001", Decimal("1234.50"), "MXN", date(2026, 11, 20), date(2026, 12, 1), InvoiceStatus.OPEN
)
# A fixed moment for what is read against a calendar: promise dates, a link's expiry.
THURSDAY_MORNING = datetime(2026, 11, 26, 10, 0, tzinfo=ZoneInfo("America/Mexico_City"))


@pytest.mark.parametrize(
    ("country", "expected"),
    [
        ("AR", "$ 1.234,50"),
        ("PE", "S/ 1,234.50"),
        ("MX", "$1,234.50"),
        ("CO", "$ 1.234,50"),
        ("CL", "$1.234"),  # pesos chilenos have no cents (babel rounds half to even)
    ],
)
def test_amounts_are_written_in_each_country_s_own_way(country, expected):
    assert format_money(Decimal("1234.50"), currency_of(country), country) == expected


def test_due_dates_are_spanish():
    assert format_due_date(date(2026, 11, 30)) == "lunes 30 de noviembre"


def test_a_signed_link_carries_invoice_amount_and_expiry():
    now = datetime(2026, 11, 26, 16, 0, tzinfo=timezone.utc)
    link = SIGNER.sign(INVOICE, now)
    assert link.url.startswith("https://pagos.example.test/pagar/")
    verified = verify_payment_link(link.url, SECRET, now + timedelta(hours=23))
    assert (verified.invoice_id, verified.amount, verified.currency) == ("F-9001", Decimal("1234.50"), "MXN")


def test_an_expired_link_is_rejected():
    now = datetime(2026, 11, 26, 16, 0, tzinfo=timezone.utc)
    link = SIGNER.sign(INVOICE, now)
    with pytest.raises(InvalidPaymentLink, match="expired"):
        verify_payment_link(link.url, SECRET, now + timedelta(hours=24, seconds=1))


def test_a_link_with_a_changed_amount_is_rejected():
    now = datetime(2026, 11, 26, 16, 0, tzinfo=timezone.utc)
    link = SIGNER.sign(INVOICE, now)
    token = link.url.rsplit("/", 1)[1]
    payload, signature = token.rsplit(".", 1)
    forged = URLSafeSerializer("someone-else", salt=LINK_SALT).dumps(
        {"inv": "F-9001", "amt": "1.00", "cur": "MXN", "exp": 4_000_000_000}
    )
    for tampered in (f"{forged.rsplit('.', 1)[0]}.{signature}", forged, token[:-2] + "xx"):
        with pytest.raises(InvalidPaymentLink):
            verify_payment_link(f"https://pagos.example.test/pagar/{tampered}", SECRET, now)


def test_a_link_signed_for_another_purpose_is_rejected():
    other = URLSafeSerializer(SECRET, salt="something-else").dumps(
        {"inv": "F-9001", "amt": "1.00", "cur": "MXN", "exp": 4_000_000_000}
    )
    with pytest.raises(InvalidPaymentLink):
        verify_payment_link(f"https://x/{other}", SECRET, THURSDAY_MORNING)


def test_amounts_above_the_threshold_go_to_a_person():
    assert needs_a_person(INVOICE, Decimal("1000"))
    assert not needs_a_person(INVOICE, Decimal("100000"))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("el viernes", date(2026, 11, 27)),
        ("te pago el lunes", date(2026, 11, 30)),
        ("15/12", date(2026, 12, 15)),
        ("mañana", date(2026, 11, 27)),
        ("pasado mañana", date(2026, 11, 28)),
        ("el 5 de diciembre", date(2026, 12, 5)),
    ],
)
def test_promise_dates_are_read_in_spanish_in_the_customer_s_zone(text, expected):
    assert parse_promise_date(text, "America/Mexico_City", THURSDAY_MORNING) == expected


def test_a_promise_in_the_past_or_unreadable_is_none():
    assert parse_promise_date("ayer", "America/Lima", THURSDAY_MORNING) is None
    assert parse_promise_date("cuando pueda", "America/Lima", NOW) is None


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("no reconozco este cobro", "dispute"),
        ("me cobraron de más!!", "dispute"),
        ("puedo pagar en cuotas?", "installments"),
        ("quiero un plan de pagos", "installments"),
        ("mandame el link", None),
        ("cuanto debo", None),
    ],
)
def test_disputes_and_installment_plans_are_recognised(text, reason):
    found = needs_person_for(text)
    assert (found.value if found else None) == reason
