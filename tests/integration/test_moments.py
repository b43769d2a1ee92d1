"""The date-sensitive behaviour over the demo data at moments that break clocks
(tests/moment_helpers.py: a Saturday night, a public holiday, the last day of a month, the cutoff
hour, New Year's Eve, and both daylight-saving changes of Chile), on SQLite and PostgreSQL.

Each test runs at every moment, on a clock that stands still there (bot/clock.FixedClock): the
demo loaded relative to that day, order status, reschedule windows in Mexico, one-time-code
expiry. The rules that need no database are tests/unit/test_moments.py.
"""

from __future__ import annotations

import asyncio
from datetime import time, timedelta

import pytest
from cryptography.fernet import Fernet
from rasa_sdk.executor import CollectingDispatcher

from actions import order_status as order_status_action
from bot.adapters.sql import SqlCaseBook, SqlCrm, SqlErp, SqlOtpSecrets
from bot.backends import Backends
from bot.clock import FixedClock, local_day
from bot.demo import load_demo
from bot.order_status import describe
from bot.scheduling import CalendarRules, DeliveryCalendar
from bot.settings import DEFAULT_DEMO_DATA
from bot.verification import CheckOutcome, CodeVerifier, MemoryAttemptStore
from tests.action_helpers import DOMAIN, tracker
from tests.conftest import MARIANA_MX
from tests.moment_helpers import MEXICO, MOMENTS, Moment, check_offers


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


# --- rescheduling: cutoff, days ahead, holidays --------------------------------------------------


def test_reschedule_windows_in_mexico_follow_the_cutoff_holidays_and_days_ahead(demo_then, moment):
    zone = demo_then.erp.delivery_zone_of("PED-1010")
    calendar = DeliveryCalendar.load(demo_then.erp, zone, CalendarRules(18, 14), moment.at)
    check_offers(calendar, moment.at)


# --- the handoff's business hours ----------------------------------------------------------------


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
