"""Reads the day and time a customer asks for ("pasado mañana por la tarde", "el 15") in their zone.

dateparser (Spanish, future dates preferred, relative to the customer's local now) does the
parsing. A thin normalisation runs first, only for what dateparser gets wrong on its own:

- the part of the day ("por la tarde", "en la mañana", "temprano", "de noche") is taken out and
  kept apart, so "mañana" left in the text means tomorrow, not the morning;
- a clock time ("a las 10", "16:00", "3 pm") is taken out and kept apart (dateparser reads
  "3 de enero a las 10" as the year 2110);
- articles and "próximo"/"que viene" around a weekday are dropped ("el martes" fails,
  "martes" works, and with future dates preferred it is already the next one);
- "pasado mañana" becomes "en 2 dias" (dateparser has no "pasado mañana");
- "la semana que viene" / "la próxima semana" means the week from next Monday;
- a bare day of the month ("el 15", "el viernes 4") is this month's if it is still to come,
  otherwise next month's (dateparser picks the past one).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

import dateparser

# Parts of the day and the window start hours they cover, [from, to).
DAYPARTS: dict[str, tuple[int, int]] = {"manana": (6, 12), "tarde": (12, 19), "noche": (19, 24)}

_DAYPART_PHRASES = [
    (re.compile(r"\b(?:por|en|a|de|durante) la (manana|tarde|noche)\b"), None),
    (re.compile(r"\b(?:de|en|a la) (tarde|noche)\b"), None),
    (re.compile(r"\btemprano(?:ito)?\b"), "manana"),
    (re.compile(r"\b(mediodia)\b"), "tarde"),
    (re.compile(r"\b(tarde|noche)\b"), None),
]
_CLOCK = re.compile(
    r"\b(?:a las? |tipo |como a las |desde las |despues de las |antes de las )?"
    r"(\d{1,2})(?:[:.h](\d{2}))?\s*(am|pm|a\.m\.|p\.m\.|hs|hrs|h)?(?=\s|$)"
)
_WEEKDAYS = ["lunes", "martes", "miercoles", "jueves", "viernes", "sabado", "domingo"]
_NEXT_WEEK = re.compile(r"\b(?:la )?(?:semana que viene|proxima semana|semana proxima|otra semana)\b")
_DAY_OF_MONTH = re.compile(
    r"^(?:(?:el|para el|dia|el dia) )?(?:(?:" + "|".join(_WEEKDAYS) + r") )?(\d{1,2})$"
)
_DROP = re.compile(
    r"\b(?:el|la|los|las|para|este|esta|proximo|proxima|que viene|entrante|mejor|porfa|pls|"
    r"x fa|por favor|si|puede ser|se puede|dia)\b"
)


@dataclass(frozen=True)
class DateRequest:
    """What the customer asked for: a day (or a week from a day), maybe a part of it or an hour."""

    day: date
    daypart: str | None = None  # a key of DAYPARTS
    at: time | None = None
    whole_week: bool = False  # "la semana que viene": any day of the week starting on `day`

    def accepts_start(self, start: time) -> bool:
        """Whether a window starting at `start` fits the asked part of the day (any, if none)."""
        if self.daypart is None:
            return True
        low, high = DAYPARTS[self.daypart]
        return low <= start.hour < high


def _normalise(text: str) -> str:
    """Lower case without accents ("mañana" → "manana"), keeping "/" and ":" of "15/12", "16:00"."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(re.sub(r"[^\w\s/:.]|(?<!\d)[.:]|[.:](?!\d)", " ", plain).split())


def _take_clock(text: str) -> tuple[str, time | None]:
    for match in _CLOCK.finditer(text):
        hour, minute, suffix = int(match[1]), int(match[2] or 0), (match[3] or "").replace(".", "")
        prefixed = match[0].strip()[0].isalpha()
        # A bare number is a clock time only with "a las", a suffix or minutes ("el 15" is a day).
        if not (prefixed or suffix or match[2]) or hour > 23 or minute > 59:
            continue
        if suffix == "pm" and hour < 12:
            hour += 12
        elif not suffix and 1 <= hour <= 7:
            hour += 12  # "a las 3": nobody receives parcels at 3 in the morning
        return (text[: match.start()] + " " + text[match.end() :]).strip(), time(hour, minute)
    return text, None


def _take_daypart(text: str) -> tuple[str, str | None]:
    # "pasado mañana por la mañana", "mañana en la tarde": the part of the day comes off first.
    for pattern, fixed in _DAYPART_PHRASES:
        match = pattern.search(text)
        if match:
            daypart = fixed or match[1]
            return (text[: match.start()] + " " + text[match.end() :]).strip(), daypart
    return text, None


def _day_of_month(number: int, today: date) -> date | None:
    year, month = today.year, today.month
    for _ in range(2):
        try:
            candidate = date(year, month, number)
        except ValueError:
            candidate = None
        if candidate and candidate >= today:
            return candidate
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return None


def interpret_date(text: str, local_now: datetime) -> DateRequest | None:
    """The day (and part of day or hour) `text` asks for, relative to the customer's `local_now`.

    None when the text holds no date (the caller then treats it as something else).
    """
    today = local_now.date()
    folded = _normalise(text)
    rest, at = _take_clock(folded)
    rest, daypart = _take_daypart(rest)
    if at is not None and daypart is None:
        daypart = next((name for name, (low, high) in DAYPARTS.items() if low <= at.hour < high), None)

    if _NEXT_WEEK.search(rest):
        monday = today + timedelta(days=7 - today.weekday())
        return DateRequest(monday, daypart, at, whole_week=True)
    rest = re.sub(r"\bpasado manana\b", "en 2 dias", rest)
    rest = " ".join(_DROP.sub(" ", rest).split())

    match = _DAY_OF_MONTH.match(rest)
    if match:
        day = _day_of_month(int(match[1]), today)
        return DateRequest(day, daypart, at) if day else None
    if not rest:
        # Only a part of the day or an hour ("en la tarde", "a las 10"): today's.
        return DateRequest(today, daypart, at) if (daypart or at) else None
    parsed = dateparser.parse(
        rest,
        languages=["es"],
        settings={
            "PREFER_DATES_FROM": "future",
            "RELATIVE_BASE": local_now.replace(tzinfo=None),
            "DATE_ORDER": "DMY",
            "RETURN_AS_TIMEZONE_AWARE": False,
            "PREFER_DAY_OF_MONTH": "first",
        },
    )
    if parsed is None:
        return None
    return DateRequest(parsed.date(), daypart, at)


# Words that can open a date phrase inside a longer message ("pasame la entrega al jueves a la
# tarde"): weekdays, "hoy", "mañana" as a day, "pasado mañana", a day of the month, "15/12",
# "la semana que viene".
_DAY_WORD = re.compile(
    r"\b(?:" + "|".join(_WEEKDAYS) + r"|hoy|pasado manana|(?<!la )manana|"
    r"(?:el|para el|dia) \d{1,2}\b|\d{1,2}/\d{1,2}|(?:la )?semana que viene|(?:la )?proxima semana)"
)
# The longest phrase tried from such a word on: "jueves 4 por la tarde a las 16:00".
_PHRASE_WORDS = 8
# Where a message's clauses part: a "no" in one ("no voy a estar el jueves") is about its own day.
_CLAUSE_BREAK = re.compile(r"[,;!?¿¡\n]+|\.(?!\d)|\b(?:pero|mejor|sino|entonces)\b")


def find_date(text: str, local_now: datetime) -> DateRequest | None:
    """The day asked for somewhere in `text`, a whole message ("necesito cambiar la entrega de
    las zapatillas al jueves a la tarde"), or None. The last day phrase wins ("llega mañana
    pero no voy a estar, pasalo al viernes" means Friday), read from its first word to as far
    as `interpret_date` still understands it. A part of the day alone ("a la tarde no estoy") is
    no day, and neither is a day in a clause with a "no" ("no voy a estar el jueves", "el jueves
    no puedo"): the day they cannot. A message of a few words reads as `interpret_date` reads it.
    """
    whole = interpret_date(text, local_now) if len(text.split()) <= 3 else None
    return whole if whole is not None else _day_phrase_in(text, local_now)


def read_answer(text: str, local_now: datetime) -> DateRequest | None:
    """The day (or hour) an answer to "¿cuándo te queda mejor?" asks for: the whole message read
    as a date ("a las 4 de la tarde", only a time, is today's), else the day phrase in it as
    `find_date` finds it. Each reading is made once."""
    whole = interpret_date(text, local_now)
    return whole if whole is not None else _day_phrase_in(text, local_now)


def _day_phrase_in(text: str, local_now: datetime) -> DateRequest | None:
    """`find_date` past its short-message reading: the last day phrase of a clause without "no"."""
    clauses = [_normalise(clause) for clause in _CLAUSE_BREAK.split(text.lower())]
    for clause in reversed(clauses):
        if "no" in clause.split():
            continue
        for match in reversed(list(_DAY_WORD.finditer(clause))):
            words = clause[match.start() :].split()[:_PHRASE_WORDS]
            for end in range(len(words), 0, -1):
                found = interpret_date(" ".join(words[:end]), local_now)
                if found is not None:
                    return found
    return None
