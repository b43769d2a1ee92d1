"""Prints the self-service KPIs of a period and writes them as CSV (`make report`; docs/kpis.md).

`make report [FROM=2026-11-23] [TO=2026-11-30] [ACTIVE=1200] [OUT=results/kpis/x]`: the days
[FROM, TO) in BOT_TIMEZONE, by default the seven full days before today. This command is the
clock's edge: it reads the project's clock once (BOT_NOW moves it in development) and hands the
period and that moment to the KPI code, which never reads a clock.

Before reporting it catches up with Rasa's SQL event broker (when EVENT_BROKER_URL is unset) and
copies the recent handoffs and cases, as the consumer (`make analytics`) does; `--no-catch-up`
reports on the analytics tables as they are.
"""

from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

from bot.adapters.sql import SqlStore  # noqa: E402
from bot.analytics.consumer import read_sql_broker, sync  # noqa: E402
from bot.analytics.kpis import Period, compute_kpis, days_period  # noqa: E402
from bot.analytics.report import render_text, write_csv  # noqa: E402
from bot.analytics.store import AnalyticsStore  # noqa: E402
from bot.clock import SystemClock  # noqa: E402
from bot.settings import Settings, SettingsError  # noqa: E402

DEFAULT_DAYS = 7


def period_of(first: str | None, last: str | None, today: date, zone: str) -> Period:
    """[FROM, TO) as midnights in `zone`; by default the DEFAULT_DAYS full days before `today`."""
    parse = date.fromisoformat
    return days_period(
        parse(first) if first else None, parse(last) if last else None, today, zone, DEFAULT_DAYS
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="first", help="first day, 2026-11-23 (default: 7 days before --to)")
    parser.add_argument("--to", dest="last", help="the day after the last one (default: today)")
    parser.add_argument("--active-customers", type=int, help="active customers, for adoption")
    parser.add_argument(
        "--out", type=Path, help="folder for the CSV files (default results/kpis/<from>_<to>)"
    )
    parser.add_argument("--no-catch-up", action="store_true", help="do not read the SQL broker first")
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
    except SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    now = SystemClock(settings.clock_shift).now()
    zone = settings.bot_timezone
    try:
        period = period_of(args.first, args.last, now.astimezone(ZoneInfo(zone)).date(), zone)
    except ValueError as error:
        print(f"error: FROM/TO: {error} (give days like 2026-11-23)", file=sys.stderr)
        return 2
    analytics = AnalyticsStore(SqlStore(settings.database_url))
    if not args.no_catch_up:
        try:
            if not settings.event_broker_url:
                while read_sql_broker(analytics, now):
                    pass
            sync(analytics, now)
        except (sa.exc.IntegrityError, sa.exc.OperationalError):
            print(
                "(the consumer is reading the same events now: reporting what is recorded)", file=sys.stderr
            )
    active = (
        args.active_customers if args.active_customers is not None else analytics.active_customers(period)
    )
    kpis = compute_kpis(period, now, zone=zone, active_customers=active, **analytics.facts(period))
    print(render_text(kpis, zone), end="")
    out = args.out or ROOT / "results" / "kpis" / f"{period.start.date()}_{period.end.date()}"
    written = write_csv(kpis, out if out.is_absolute() else Path.cwd() / out)
    print(f"\nCSV: {', '.join(path.name for path in written)} in {written[0].parent}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
