"""Spanish phrases for days, moments and delivery windows, in the customer's own time zone."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from babel import Locale, UnknownLocaleError
from babel.dates import format_date

from bot.records import DeliveryWindow

_RELATIVE_DAYS = {-1: "ayer", 0: "hoy", 1: "mañana", 2: "pasado mañana"}


def locale_for(country: str | None) -> str:
    """The babel locale for a Spanish-speaking customer of `country` (es_AR, es_PE, …)."""
    candidate = f"es_{(country or '').upper()}"
    try:
        Locale.parse(candidate)
        return candidate
    except (UnknownLocaleError, ValueError):
        return "es"


def day_phrase(day: date, today: date, locale: str = "es") -> str:
    """`mañana jueves 27 de noviembre`, `el lunes 1 de diciembre`, `el martes 5 de enero de 2027`."""
    pattern = "EEEE d 'de' MMMM" if day.year == today.year else "EEEE d 'de' MMMM 'de' y"
    written = format_date(day, pattern, locale=locale)
    relative = _RELATIVE_DAYS.get((day - today).days)
    return f"{relative} {written}" if relative else f"el {written}"


def moment_phrase(moment: datetime, zone: ZoneInfo, now: datetime, locale: str = "es") -> str:
    """`ayer martes 25 de noviembre a las 15:20`."""
    local = moment.astimezone(zone)
    return f"{day_phrase(local.date(), now.astimezone(zone).date(), locale)} a las {local:%H:%M}"


def window_phrase(window: DeliveryWindow, zone: ZoneInfo, now: datetime, locale: str = "es") -> str:
    """`mañana jueves 27 de noviembre entre 14:00 y 18:00`."""
    start, end = window.start.astimezone(zone), window.end.astimezone(zone)
    today = now.astimezone(zone).date()
    if start.date() == end.date() or end - start <= timedelta(hours=24) and end.time().hour == 0:
        return f"{day_phrase(start.date(), today, locale)} entre {start:%H:%M} y {end:%H:%M}"
    return (
        f"entre {day_phrase(start.date(), today, locale)} a las {start:%H:%M} "
        f"y {day_phrase(end.date(), today, locale)} a las {end:%H:%M}"
    )
