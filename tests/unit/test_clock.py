"""Time is an input: one clock module reads the wall clock, everything else is handed "now"."""

from __future__ import annotations

import ast
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from bot.clock import FixedClock, SystemClock, local_day, on_clock_timeline, parse_moment, shift_to
from bot.settings import Settings, SettingsError

ROOT = Path(__file__).resolve().parents[2]
CHECKED = ("bot", "actions", "connectors")
CLOCK_MODULE = ROOT / "bot" / "clock.py"

# Calls that read the wall clock. time.monotonic and time.perf_counter stay allowed: they measure
# durations (timeouts, circuit cool-downs) and never say what day or hour it is.
WALL_CLOCK = {
    ("datetime", "now"),
    ("datetime", "utcnow"),
    ("datetime", "today"),
    ("date", "today"),
    ("time", "time"),
    ("time", "time_ns"),
    ("time", "localtime"),
    ("time", "gmtime"),
    ("time", "ctime"),
    ("time", "asctime"),
}
WALL_CLOCK_NAMES = {"time", "time_ns", "localtime", "gmtime", "ctime", "asctime"}  # from time import …


def wall_clock_reads(source: str) -> list[int]:
    """Line numbers where `source` reads (or takes a reference to) the wall clock."""
    tree = ast.parse(source)
    from_time: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "time":
            from_time |= {
                alias.asname or alias.name for alias in node.names if alias.name in WALL_CLOCK_NAMES
            }
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            owner = node.value
            name = owner.attr if isinstance(owner, ast.Attribute) else getattr(owner, "id", None)
            if (name, node.attr) in WALL_CLOCK:
                lines.append(node.lineno)
        elif isinstance(node, ast.Name) and node.id in from_time and isinstance(node.ctx, ast.Load):
            lines.append(node.lineno)
    return sorted(lines)


def test_only_the_clock_module_reads_the_wall_clock():
    found = []
    for folder in CHECKED:
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path == CLOCK_MODULE:
                continue
            for line in wall_clock_reads(path.read_text(encoding="utf-8")):
                found.append(f"{path.relative_to(ROOT)}:{line}")
    assert found == [], "read the time from bot/clock.py's Clock instead:\n" + "\n".join(found)


@pytest.mark.parametrize(
    "source",
    [
        "from datetime import datetime, timezone\nx = datetime.now(timezone.utc)",
        "import datetime\nx = datetime.datetime.now()",
        "from datetime import date\nx = date.today()",
        "import time\nx = time.time()",
        "import time\ndef f(clock=time.time): ...",
        "from time import time\nx = time()",
        "from time import time as wall\nx = wall()",
        "from datetime import datetime\nx = datetime.utcnow()",
    ],
)
def test_the_check_finds_every_way_of_reading_the_wall_clock(source):
    assert wall_clock_reads(source) != []


@pytest.mark.parametrize(
    "source",
    [
        "import time\nx = time.monotonic()",
        "import time\ntime.sleep(1)",
        "from datetime import datetime\nx = datetime(2026, 1, 1)",
        "def f(now):\n    return now.date()",
    ],
)
def test_the_check_leaves_durations_and_given_moments_alone(source):
    assert wall_clock_reads(source) == []


# --- the clocks ------------------------------------------------------------------------------


def test_a_fixed_clock_stands_still_until_moved():
    clock = FixedClock(datetime(2026, 12, 31, 23, 59, tzinfo=timezone.utc))
    assert clock.now() == clock.now() == datetime(2026, 12, 31, 23, 59, tzinfo=timezone.utc)
    clock.advance(timedelta(minutes=2))
    assert clock.now() == datetime(2027, 1, 1, 0, 1, tzinfo=timezone.utc)
    assert clock.monotonic() == 120.0
    clock.set(datetime(2027, 1, 1, 1, 1, tzinfo=timezone.utc))
    assert clock.monotonic() == 3720.0


def test_a_fixed_clock_refuses_a_moment_without_a_zone():
    with pytest.raises(ValueError):
        FixedClock(datetime(2026, 12, 31, 23, 59))


def test_a_shifted_system_clock_reads_the_moment_it_was_moved_to():
    target = datetime(2030, 2, 28, 21, 0, tzinfo=timezone.utc)
    clock = SystemClock(shift_to(target))
    assert abs((clock.now() - target).total_seconds()) < 5
    assert clock.now().tzinfo is not None


def test_moments_are_read_with_their_offset_and_kept_in_utc():
    moment = parse_moment("2026-12-31T23:30:00-03:00")
    assert moment == datetime(2027, 1, 1, 2, 30, tzinfo=timezone.utc)
    assert local_day(moment, "America/Santiago") == datetime(2026, 12, 31).date()
    with pytest.raises(ValueError, match="UTC offset"):
        parse_moment("2026-12-31T23:30:00")
    with pytest.raises(ValueError, match="ISO 8601"):
        parse_moment("mañana")


# --- BOT_NOW: a whole stack at another moment, in development only ----------------------------


def test_bot_now_moves_the_clock_in_development():
    settings = Settings.from_env({"BOT_ENV": "development", "BOT_NOW": "2031-01-01T00:00:00-03:00"})
    now = SystemClock(settings.clock_shift).now()
    assert abs((now - datetime(2031, 1, 1, 3, 0, tzinfo=timezone.utc)).total_seconds()) < 5


def test_a_given_shift_wins_so_that_every_process_of_a_stack_agrees():
    settings = Settings.from_env(
        {"BOT_ENV": "development", "BOT_NOW": "2031-01-01T00:00:00-03:00", "BOT_CLOCK_SHIFT_S": "3600"}
    )
    assert settings.clock_shift == timedelta(hours=1)


def test_production_runs_on_real_time():
    assert Settings.from_env({"BOT_ENV": "production"}).clock_shift == timedelta(0)
    with pytest.raises(SettingsError, match="BOT_ENV=development"):
        Settings.from_env({"BOT_ENV": "production", "BOT_NOW": "2031-01-01T00:00:00-03:00"})


@pytest.mark.parametrize("value", ["mañana", "2031-01-01", "2031-01-01T00:00:00"])
def test_a_bot_now_that_is_not_a_moment_says_how_to_write_one(value):
    with pytest.raises(SettingsError, match="BOT_NOW"):
        Settings.from_env({"BOT_ENV": "development", "BOT_NOW": value})


def test_rasa_stamps_move_onto_the_clocks_timeline():
    events = [
        {"event": "user", "text": "hola", "timestamp": 1_800_000_000.5},
        {"event": "action", "name": "action_listen"},  # no stamp: left alone
    ]
    moved = on_clock_timeline(events, timedelta(days=-4))
    assert moved[0]["timestamp"] == 1_800_000_000.5 - 4 * 86400
    assert moved[0]["text"] == "hola" and moved[1] == events[1]
    assert events[0]["timestamp"] == 1_800_000_000.5  # the tracker's own events are not changed
    assert on_clock_timeline(events, timedelta(0)) is events  # production: nothing to move
