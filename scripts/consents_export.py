"""Writes the consent log of a period as CSV (`make consents`; docs/notifications.md, "Consents").

`make consents [FROM=2026-11-01] [TO=2026-12-01] [OUT=results/consents/x.csv]`: the changes of the
days [FROM, TO) in BOT_TIMEZONE, by default the 30 days up to and including today. This command is
the clock's edge: it reads the project's clock once (BOT_NOW moves it in development).
"""

from __future__ import annotations

import argparse
import sys
from datetime import date, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.adapters.sql import SqlStore  # noqa: E402
from bot.analytics.kpis import days_period  # noqa: E402
from bot.clock import SystemClock  # noqa: E402
from bot.consents.export import write_csv  # noqa: E402
from bot.consents.store import ConsentBook  # noqa: E402
from bot.settings import Settings, SettingsError  # noqa: E402

DEFAULT_DAYS = 30


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="first", help="first day, 2026-11-01 (default: 30 days before --to)")
    parser.add_argument("--to", dest="last", help="the day after the last one (default: tomorrow)")
    parser.add_argument("--out", type=Path, help="the CSV file (default results/consents/<from>_<to>.csv)")
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
    except SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    clock = SystemClock(settings.clock_shift)
    zone = settings.bot_timezone
    tomorrow = clock.now().astimezone(ZoneInfo(zone)).date() + timedelta(days=1)
    try:
        first = date.fromisoformat(args.first) if args.first else None
        last = date.fromisoformat(args.last) if args.last else None
    except ValueError as error:
        print(f"error: FROM/TO: {error} (give days like 2026-11-01)", file=sys.stderr)
        return 2
    period = days_period(first, last, tomorrow, zone, DEFAULT_DAYS)
    if period.end <= period.start:
        print("error: TO must come after FROM", file=sys.stderr)
        return 2
    entries = ConsentBook(SqlStore(settings.database_url), clock).log_between(period.start, period.end)
    out = args.out or ROOT / "results" / "consents" / f"{period.start.date()}_{period.end.date()}.csv"
    out = out if out.is_absolute() else Path.cwd() / out
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8", newline="") as stream:
        count = write_csv(entries, stream)
    print(
        f"{count} consent changes from {period.start.date()} to {period.end.date()} "
        f"(the last day excluded, {zone}): {out}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
