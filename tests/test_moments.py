"""The date-sensitive behaviour at moments that break clocks: a Saturday night, a public holiday,
the last day of a month, the cutoff hour, New Year's Eve, and both daylight-saving changes of Chile.

Each test runs at every moment, on a clock that stands still there (bot/clock.FixedClock): the
demo loaded relative to that day, order status, reschedule windows and the cutoff, holidays,
the handoff's business hours, one-time-code expiry and payment-link expiry.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from cryptography.fernet import Fernet
from rasa_sdk.executor import CollectingDispatcher

from actions import order_status as order_status_action
from bot.adapters.sql import SqlCaseBook, SqlCrm, SqlErp, SqlOtpSecrets
from bot.backends import Backends
from bot.clock import FixedClock, local_day, parse_moment
from bot.demo import load_demo
from bot.handoff.config import load_config
from bot.handoff.rules import estimate_wait, is_open
from bot.order_status import describe
from bot.payments import InvalidPaymentLink, PaymentLinkSigner, verify_payment_link
from bot.records import DeliveryWindow, Invoice, InvoiceStatus
from bot.scheduling import CalendarRules, DeliveryCalendar, public_holidays
from bot.settings import DEFAULT_DEMO_DATA
from bot.spanish_time import window_phrase
from bot.verification import CheckOutcome, CodeVerifier, MemoryAttemptStore
from tests.conftest import MARIANA_MX
from tests.test_actions import DOMAIN, tracker
from tests.test_scheduling import calendar as synthetic_calendar

MEXICO = ZoneInfo("America/Mexico_City")
SANTIAGO = ZoneInfo("America/Santiago")


@dataclass(frozen=True)
class Moment:
    name: str
    at: datetime
    handoff_open: bool  # with bot/handoff_config.yml: Mon-Fri 9-19, Sat 9-14, MX holidays closed
    handoff_reopens: datetime | None  # when people are back, if closed


MOMENTS = [
    Moment(
        "saturday night",
        parse_moment("2026-11-28T22:30:00-06:00"),
        False,
        datetime(2026, 11, 30, 9, 0, tzinfo=MEXICO),  # Monday
    ),
    Moment(
        "public holiday",  # Christmas, a Friday
        parse_moment("2026-12-25T11:00:00-06:00"),
        False,
        datetime(2026, 12, 26, 9, 0, tzinfo=MEXICO),  # Saturday morning
    ),
    Moment("last day of a month", parse_moment("2026-11-30T17:45:00-06:00"), True, None),
    Moment("the cutoff hour", parse_moment("2026-11-26T18:00:00-06:00"), True, None),
    Moment(
        "new year's eve",  # the business's own closed day, then Mexico's New Year holiday
        parse_moment("2026-12-31T23:30:00-06:00"),
        False,
        datetime(2027, 1, 2, 9, 0, tzinfo=MEXICO),
    ),
    Moment(
        "chile's summer time ends",  # at midnight Santiago's clocks go back to 23:00
        parse_moment("2026-04-04T23:30:00-03:00"),
        False,
        datetime(2026, 4, 6, 9, 0, tzinfo=MEXICO),
    ),
    Moment(
        "chile's summer time starts",  # at midnight Santiago's clocks jump to 01:00
        parse_moment("2026-09-05T23:30:00-04:00"),
        False,
        datetime(2026, 9, 7, 9, 0, tzinfo=MEXICO),
    ),
]


@pytest.fixture(params=MOMENTS, ids=[moment.name for moment in MOMENTS])
def moment(request) -> Moment:
    return request.param


@pytest.fixture
def demo_then(store, settings, moment):
    """The demo loaded on the moment's own day, as `make run` would have loaded it then."""
    load_demo(store, DEFAULT_DEMO_DATA, settings, local_day(moment.at, settings.bot_timezone), force=True)
    return Backends(crm=SqlCrm(store), erp=SqlErp(store), cases=SqlCaseBook(store))


# --- demo data and order status ----------------------------------------------------------------


def test_the_demo_counts_its_days_from_the_moments_own_day(demo_then, moment, settings):
    order = demo_then.erp.order("PED-1001")  # "arrives tomorrow, 14:00-18:00"
    today = local_day(moment.at, settings.bot_timezone)
    start = order.window.start.astimezone(MEXICO)
    assert (start.date(), start.time()) == (today + timedelta(days=1), time(14, 0))


def test_an_order_arriving_tomorrow_is_on_time_and_said_to_arrive_tomorrow(demo_then, moment, settings):
    customer = demo_then.crm.customer_by_phone(MARIANA_MX)
    view = describe(demo_then.erp.order("PED-1001"), customer, moment.at, settings.bot_timezone)
    assert view.situation == "in_transit"
    assert view.values["eta"].startswith("mañana ") and view.values["eta"].endswith("entre 14:00 y 18:00")


def test_the_status_action_reads_the_same_clock_as_the_demo(demo_then, moment, wire):
    """The bug that turned CI red: the action read the machine's clock, the demo a fixed day."""
    wire(backends=demo_then, clock=FixedClock(moment.at))
    dispatcher = CollectingDispatcher()
    asyncio.run(
        order_status_action.ActionOrderStatus().run(dispatcher, tracker(MARIANA_MX, "mi pedido?"), DOMAIN)
    )
    assert dispatcher.messages[0]["response"] == "utter_order_in_transit"
    assert dispatcher.messages[0]["eta"].startswith("mañana ")


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


# --- rescheduling: cutoff, days ahead, holidays --------------------------------------------------


def check_offers(calendar: DeliveryCalendar, moment: datetime) -> None:
    zone = ZoneInfo(calendar.zone.timezone)
    local_now = moment.astimezone(zone)
    rules = calendar.rules
    first = local_now.date() + timedelta(days=1 if local_now.hour < rules.cutoff_hour else 2)
    last = local_now.date() + timedelta(days=rules.max_days_ahead)
    holidays = public_holidays(calendar.zone.country, first, last)
    offered = calendar.bookable()
    assert offered, "some window is always bookable within the days ahead"
    for slot in offered:
        day = slot.window.start.astimezone(zone).date()
        assert first <= day <= last, (day, first, last)
        assert day not in holidays, (day, holidays[day])
        assert day.weekday() != 6  # no deliveries on Sundays in these calendars
        assert slot.window.start > moment


def test_reschedule_windows_in_mexico_follow_the_cutoff_holidays_and_days_ahead(demo_then, moment):
    zone = demo_then.erp.delivery_zone_of("PED-1010")
    calendar = DeliveryCalendar.load(demo_then.erp, zone, CalendarRules(18, 14), moment.at)
    check_offers(calendar, moment.at)


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


# --- the handoff's business hours ----------------------------------------------------------------


def test_people_are_there_exactly_in_business_hours(moment):
    config = load_config(None)
    wait = estimate_wait(0, moment.at, config)
    assert wait.open_now is moment.handoff_open is is_open(moment.at, config)
    assert wait.opens_at == moment.handoff_reopens
    if wait.opens_at is not None:
        assert is_open(wait.opens_at, config)
        assert not is_open(wait.opens_at - timedelta(minutes=1), config)


# --- one-time codes and payment links ------------------------------------------------------------


def test_a_code_lasts_five_minutes_whatever_the_hour(store, moment):
    clock = FixedClock(moment.at)
    verifier = CodeVerifier(SqlOtpSecrets(store), MemoryAttemptStore(clock), Fernet.generate_key().decode())
    _, code = verifier.issue("C-001")
    clock.advance(timedelta(minutes=4, seconds=59))
    assert verifier.check("C-001", code).outcome is CheckOutcome.VERIFIED
    _, code = verifier.issue("C-001")
    clock.advance(timedelta(minutes=5, seconds=1))
    assert verifier.check("C-001", code).outcome is CheckOutcome.EXPIRED


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
