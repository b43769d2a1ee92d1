"""When the assistant hands a conversation to a person, and how long the customer will wait."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from functools import lru_cache

import holidays as holiday_calendars

from bot.choices import fold
from bot.handoff.config import HandoffConfig


class Reason(str, Enum):
    """Why a conversation went to a person; values are what the packet and the console show."""

    CUSTOMER_REQUEST = "customer_request"
    NOT_UNDERSTOOD = "not_understood"
    AMOUNT_OVER_THRESHOLD = "amount_over_threshold"
    VIP_CUSTOMER = "vip_customer"
    DISPUTE = "dispute"
    ANGRY_LANGUAGE = "angry_language"
    URGENT_LANGUAGE = "urgent_language"
    CANNOT_COMPLETE = "cannot_complete"
    BACKEND_UNAVAILABLE = "backend_unavailable"


def reason_of(value: str | None) -> Reason:
    """A reason from a slot or metadata value; anything unknown is the customer's own request."""
    try:
        return Reason(value)
    except ValueError:
        return Reason.CUSTOMER_REQUEST


@dataclass(frozen=True)
class Signals:
    """What is known about the conversation at one turn, as plain values."""

    intent: str | None = None
    text: str = ""
    amount: float | None = None
    customer_id: str | None = None
    not_understood_in_a_row: int = 0
    backend_unavailable: bool = False


def _has_phrase(text: str, phrases: tuple[str, ...]) -> bool:
    folded = fold(text)
    return any(re.search(rf"(?<!\w){re.escape(fold(phrase))}(?!\w)", folded) for phrase in phrases)


def language_reason(text: str, config: HandoffConfig) -> Reason | None:
    """Angry or urgent wording in a message: the channel hands such messages over at once."""
    if _has_phrase(text, config.angry_words):
        return Reason.ANGRY_LANGUAGE
    if _has_phrase(text, config.urgent_words):
        return Reason.URGENT_LANGUAGE
    return None


def handover_reason(signals: Signals, config: HandoffConfig) -> Reason | None:
    """The first rule of the configuration that says this turn goes to a person, if any."""
    if signals.intent == "human_handoff" or _has_phrase(signals.text, config.person_words):
        return Reason.CUSTOMER_REQUEST
    if signals.intent in config.dispute_intents:
        return Reason.DISPUTE
    if signals.backend_unavailable:
        return Reason.BACKEND_UNAVAILABLE
    if signals.amount is not None and config.amount_over is not None and signals.amount > config.amount_over:
        return Reason.AMOUNT_OVER_THRESHOLD
    if signals.intent in config.cannot_complete_intents:
        return Reason.CANNOT_COMPLETE
    if signals.customer_id is not None and signals.customer_id in config.vip_customers:
        return Reason.VIP_CUSTOMER
    if signals.not_understood_in_a_row >= config.failed_understandings:
        return Reason.NOT_UNDERSTOOD
    return language_reason(signals.text, config)


def parse_amount(value: object) -> float | None:
    """An amount entity ("$1.500", "20,000 pesos", "200 soles") as a number, if it has one."""
    digits = re.sub(r"[^\d.,]", "", str(value or ""))
    if not digits:
        return None
    # "1.500" and "1,500" are thousands in Latin America; a separator followed by one or two
    # digits at the end marks cents.
    cents = re.search(r"[.,](\d{1,2})$", digits)
    whole = digits[: cents.start()] if cents else digits
    number = re.sub(r"[.,]", "", whole)
    if not number:
        return None
    return float(number) + (int(cents.group(1)) / 10 ** len(cents.group(1)) if cents else 0)


# --- business hours and the wait ---------------------------------------------------------------


@lru_cache(maxsize=8)
def _public_holidays(country: str, year: int):
    return holiday_calendars.country_holidays(country, years=year)


def is_holiday(day, config: HandoffConfig) -> bool:
    if day in config.holiday_dates:
        return True
    return bool(config.holiday_country and day in _public_holidays(config.holiday_country, day.year))


def is_open(moment: datetime, config: HandoffConfig) -> bool:
    """Whether people are there to answer at `moment` (timezone-aware)."""
    local = moment.astimezone(config.zone)
    span = config.hours.get(local.weekday())
    if span is None or is_holiday(local.date(), config):
        return False
    return span[0] <= local.time() < span[1]


def next_opening(moment: datetime, config: HandoffConfig) -> datetime | None:
    """When people are next there to answer after `moment`; None if no day is ever open."""
    local = moment.astimezone(config.zone)
    for offset in range(0, 370):
        day = (local + timedelta(days=offset)).date()
        span = config.hours.get(day.weekday())
        if span is None or is_holiday(day, config):
            continue
        opening = datetime.combine(day, span[0], tzinfo=config.zone)
        if opening > local:
            return opening
    return None


@dataclass(frozen=True)
class WaitEstimate:
    """What the customer is told about the wait."""

    open_now: bool
    minutes: int  # once people are there: people ahead x minutes each / agents
    opens_at: datetime | None  # local time people are back, when closed now
    position: int  # 1 = next in line


# An agent whose console made an authenticated request this recently is connected (an open
# console page asks for news every two seconds).
PRESENCE_WINDOW = timedelta(minutes=5)


def estimate_wait(ahead: int, now: datetime, config: HandoffConfig, connected: int = 0) -> WaitEstimate:
    """The expected wait for a customer with `ahead` people waiting before them, shared among the
    `connected` agents (those with the console open); with nobody connected, among the agents
    the configuration puts on duty (people who will log in during business hours)."""
    agents = connected if connected > 0 else config.agents_on_duty
    minutes = math.ceil((ahead + 1) * config.minutes_per_conversation / agents)
    if is_open(now, config):
        return WaitEstimate(True, minutes, None, ahead + 1)
    return WaitEstimate(False, minutes, next_opening(now, config), ahead + 1)
