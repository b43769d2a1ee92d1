"""The date-sensitive rules at moments that break clocks (tests/moment_helpers.py), with no
database: windows told on Santiago's clock across both daylight-saving changes, reschedule offers
around the cutoff and New Year, the handoff's business hours, payment-link expiry. The half that
needs the demo data is tests/integration/test_moments.py."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from decimal import Decimal

import pytest

from bot.clock import local_day, parse_moment
from bot.handoff.config import load_config
from bot.handoff.rules import estimate_wait, is_open
from bot.payments import InvalidPaymentLink, PaymentLinkSigner, verify_payment_link
from bot.records import DeliveryWindow, Invoice, InvoiceStatus
from bot.spanish_time import window_phrase
from tests.moment_helpers import MEXICO, MOMENTS, SANTIAGO, Moment, check_offers
from tests.scheduling_helpers import calendar as synthetic_calendar


@pytest.fixture(params=MOMENTS, ids=[moment.name for moment in MOMENTS])
def moment(request) -> Moment:
    return request.param


def test_a_window_in_chile_is_told_on_santiagos_own_clock(moment):
    """Across a daylight-saving change the window keeps its local hours and "mañana" its day."""
    tomorrow = local_day(moment.at, "America/Santiago") + timedelta(days=1)
    window = DeliveryWindow(
        datetime.combine(tomorrow, time(14, 0), SANTIAGO), datetime.combine(tomorrow, time(18, 0), SANTIAGO)
    )
    phrase = window_phrase(window, SANTIAGO, moment.at)
    assert phrase.startswith("mañana ") and phrase.endswith("entre 14:00 y 18:00")
    assert f" {tomorrow.day} de " in phrase
    assert (window.end - window.start) == timedelta(hours=4)


def test_reschedule_windows_in_chile_follow_santiagos_clock(moment):
    check_offers(synthetic_calendar("CL", moment.at), moment.at)


def test_at_the_cutoff_hour_tomorrow_closes_and_a_second_earlier_it_is_still_open():
    cutoff = datetime(2026, 11, 26, 18, 0, tzinfo=MEXICO)
    for at, first in ((cutoff - timedelta(seconds=1), date(2026, 11, 27)), (cutoff, date(2026, 11, 28))):
        assert synthetic_calendar("MX", at).first_day == first


def test_new_years_day_is_never_offered_from_new_years_eve():
    eve = parse_moment("2026-12-30T10:00:00-06:00")
    days = {slot.window.start.astimezone(MEXICO).date() for slot in synthetic_calendar("MX", eve).bookable()}
    assert date(2027, 1, 1) not in days and date(2026, 12, 31) in days


def test_people_are_there_exactly_in_business_hours(moment):
    config = load_config(None)
    wait = estimate_wait(0, moment.at, config)
    assert wait.open_now is moment.handoff_open is is_open(moment.at, config)
    assert wait.opens_at == moment.handoff_reopens
    if wait.opens_at is not None:
        assert is_open(wait.opens_at, config)
        assert not is_open(wait.opens_at - timedelta(minutes=1), config)


def test_a_payment_link_lasts_its_whole_ttl_whatever_the_hour(moment):
    signer = PaymentLinkSigner("moments-secret", "https://pagos.example.test/pagar", timedelta(hours=24))
    day = moment.at.date()
    invoice = Invoice("F-1", "C-001", Decimal("10"), "MXN", day, day, InvoiceStatus.OPEN)
    link = signer.sign(invoice, moment.at)
    assert verify_payment_link(
        link.url, "moments-secret", moment.at + timedelta(hours=24) - timedelta(seconds=1)
    )
    with pytest.raises(InvalidPaymentLink, match="expired"):
        verify_payment_link(link.url, "moments-secret", moment.at + timedelta(hours=24, seconds=1))
