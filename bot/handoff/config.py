"""The handoff rules and business hours, read from bot/handoff_config.yml (or HANDOFF_CONFIG)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, time
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "handoff_config.yml"
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


class HandoffConfigError(ValueError):
    """The handoff configuration file has a value the assistant cannot use; the message says which."""


@dataclass(frozen=True)
class HandoffConfig:
    timezone: str = "America/Mexico_City"
    # weekday index (0 = Monday) -> (open, close), local time
    hours: dict[int, tuple[time, time]] = field(default_factory=dict)
    holiday_country: str | None = None
    holiday_dates: frozenset[date] = frozenset()
    agents_on_duty: int = 1
    minutes_per_conversation: int = 8
    amount_over: float | None = None
    vip_customers: frozenset[str] = frozenset()
    dispute_intents: frozenset[str] = frozenset()
    cannot_complete_intents: frozenset[str] = frozenset()
    angry_words: tuple[str, ...] = ()
    urgent_words: tuple[str, ...] = ()
    # "pasame con una persona" inside a message about something else ("me llegó roto, pasame con
    # una persona"): the customer asked for a person, whatever NLU read as the message's intent.
    person_words: tuple[str, ...] = ()
    failed_understandings: int = 2

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


def _clock(value: object, where: str) -> time:
    try:
        hours, minutes = str(value).split(":")
        return time(int(hours), int(minutes))
    except ValueError:
        raise HandoffConfigError(f"{where}: {value!r} is not a time like 09:00") from None


def parse_config(raw: dict, source: str = "handoff config") -> HandoffConfig:
    """A HandoffConfig from the YAML document's mapping; raises HandoffConfigError naming the field."""
    timezone = str(raw.get("timezone") or "America/Mexico_City")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise HandoffConfigError(f"{source}: timezone {timezone!r} is not an IANA time zone") from None
    hours: dict[int, tuple[time, time]] = {}
    for day, span in (raw.get("business_hours") or {}).items():
        if day not in WEEKDAYS:
            raise HandoffConfigError(
                f"{source}: business_hours.{day} is not a weekday ({', '.join(WEEKDAYS)})"
            )
        if not isinstance(span, list) or len(span) != 2:
            raise HandoffConfigError(f"{source}: business_hours.{day} must be [open, close]")
        opens, closes = _clock(span[0], f"business_hours.{day}"), _clock(span[1], f"business_hours.{day}")
        if closes <= opens:
            raise HandoffConfigError(f"{source}: business_hours.{day} closes before it opens")
        hours[WEEKDAYS.index(day)] = (opens, closes)
    holidays = raw.get("holidays") or {}
    try:
        dates = frozenset(date.fromisoformat(str(day)) for day in holidays.get("dates") or [])
    except ValueError as error:
        raise HandoffConfigError(f"{source}: holidays.dates: {error}") from None
    wait = raw.get("wait") or {}
    rules = raw.get("hand_over") or {}
    amount = rules.get("amount_over")
    agents = int(wait.get("agents_on_duty", 1))
    if agents < 1:
        raise HandoffConfigError(f"{source}: wait.agents_on_duty must be at least 1")
    return HandoffConfig(
        timezone=timezone,
        hours=hours,
        holiday_country=(str(holidays["country"]).upper() if holidays.get("country") else None),
        holiday_dates=dates,
        agents_on_duty=agents,
        minutes_per_conversation=int(wait.get("minutes_per_conversation") or 8),
        amount_over=float(amount) if amount is not None else None,
        vip_customers=frozenset(str(c) for c in rules.get("vip_customers") or []),
        dispute_intents=frozenset(rules.get("dispute_intents") or []),
        cannot_complete_intents=frozenset(rules.get("cannot_complete_intents") or []),
        angry_words=tuple(str(w).lower() for w in rules.get("angry_words") or []),
        urgent_words=tuple(str(w).lower() for w in rules.get("urgent_words") or []),
        person_words=tuple(str(w).lower() for w in rules.get("person_words") or []),
        failed_understandings=int(rules.get("failed_understandings") or 2),
    )


def load_config(path: Path | None = None) -> HandoffConfig:
    """The configuration at `path` (HANDOFF_CONFIG), or bot/handoff_config.yml."""
    path = path or DEFAULT_CONFIG
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as error:
        raise HandoffConfigError(f"HANDOFF_CONFIG={path}: cannot read it ({error.strerror})") from None
    return parse_config(raw, str(path))
