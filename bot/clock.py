"""Where "now" comes from: the one module of bot/ and actions/ allowed to read the wall clock.

Services receive the current moment as an argument (`now: datetime`, timezone-aware, UTC);
entrypoints (actions, channels, console, workers) get it from the one `Clock` the wiring builds.
Tests pin it with `FixedClock`, and a whole running stack can be set to another moment with
`BOT_NOW` (development only): every process of the stack then runs from that moment on.
"""

from __future__ import annotations

import threading
import time
from datetime import date, datetime, timedelta, timezone
from typing import Protocol
from zoneinfo import ZoneInfo


class Clock(Protocol):
    """The current moment. `now()` is timezone-aware (UTC); `monotonic()` measures durations."""

    def now(self) -> datetime: ...

    def monotonic(self) -> float: ...


class SystemClock:
    """The machine's clock, optionally moved by a fixed shift (the same in every process)."""

    def __init__(self, shift: timedelta = timedelta(0)) -> None:
        self.shift = shift

    def now(self) -> datetime:
        return datetime.now(timezone.utc) + self.shift

    def monotonic(self) -> float:
        return time.monotonic()


class FixedClock:
    """A clock that stands still until told to move: tests and simulations."""

    def __init__(self, moment: datetime) -> None:
        self._moment = _aware(moment)
        self._elapsed = 0.0
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._moment

    def monotonic(self) -> float:
        with self._lock:
            return self._elapsed

    def set(self, moment: datetime) -> None:
        with self._lock:
            self._elapsed += (_aware(moment) - self._moment).total_seconds()
            self._moment = _aware(moment)

    def advance(self, delta: timedelta) -> None:
        with self._lock:
            self._moment += delta
            self._elapsed += delta.total_seconds()


def on_clock_timeline(events: list[dict], shift: timedelta) -> list[dict]:
    """Rasa stamps its tracker events with the machine's clock; a stack moved by `BOT_NOW` runs
    `shift` away from it. The events with their stamps moved onto the clock's timeline, so a
    transcript shows the moment the rest of the assistant lived (in production the shift is 0
    and the events come back unchanged)."""
    if not shift:
        return events
    seconds = shift.total_seconds()
    return [
        {**event, "timestamp": event["timestamp"] + seconds}
        if isinstance(event.get("timestamp"), (int, float))
        else event
        for event in events
    ]


def local_day(now: datetime, zone: str) -> date:
    """The calendar day it is at `now` in the IANA time zone `zone`."""
    return now.astimezone(ZoneInfo(zone)).date()


def parse_moment(value: str) -> datetime:
    """An ISO 8601 moment with its UTC offset (`2026-12-31T23:30:00-03:00`), as UTC."""
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(f"{value!r} is not an ISO 8601 moment like 2026-12-31T23:30:00-03:00") from None
    if moment.tzinfo is None:
        raise ValueError(f"{value!r} has no UTC offset: write it like 2026-12-31T23:30:00-03:00")
    return moment.astimezone(timezone.utc)


def shift_to(moment: datetime) -> timedelta:
    """The shift that makes the system clock read `moment` right now."""
    return _aware(moment) - datetime.now(timezone.utc)


def _aware(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError(f"{moment!r} has no time zone: the clock works in aware datetimes")
    return moment.astimezone(timezone.utc)
