"""`make report` and `make kpi-demo` (scripts/kpi_report.py, scripts/kpi_demo.py) on a fresh
SQLite database: the demo fills it through the event broker's table, the report reads it back."""

from __future__ import annotations

import csv
from datetime import date, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from bot.adapters.sql import SqlStore
from bot.analytics.schema import analytics_events, analytics_sessions
from bot.migrations import migrate
from bot.settings import Settings
from tests.analytics_helpers import _load

kpi_demo = _load("kpi_demo")
kpi_report = _load("kpi_report")
NOW = datetime(2026, 11, 30, 18, 0, tzinfo=timezone.utc)


def demo_database(tmp_path, name: str, conversations: int = 120, seed: int = 7) -> str:
    url = f"sqlite:///{tmp_path / name}"
    migrate(url)
    kpi_demo.generate(
        Settings.from_env({"BOT_ENV": "development", "DATABASE_URL": url}), NOW, conversations, seed
    )
    return url


def table_rows(url: str, table: sa.Table) -> list[tuple]:
    store = SqlStore(url)
    with store.connect() as conn:
        rows = sorted(tuple(row) for row in conn.execute(sa.select(table)))
    store.dispose()
    return rows


def test_the_demo_fills_a_fresh_database_the_same_way_for_the_same_seed(tmp_path):
    first, again = demo_database(tmp_path, "a.db"), demo_database(tmp_path, "b.db")
    sessions = table_rows(first, analytics_sessions)
    assert len(sessions) >= 120
    assert sessions == table_rows(again, analytics_sessions)
    assert len(table_rows(first, analytics_events)) > 10 * 120


def test_the_report_prints_a_period_and_writes_its_csv(tmp_path, monkeypatch, capsys):
    url = demo_database(tmp_path, "bot.db")
    monkeypatch.setenv("DATABASE_URL", url)
    out = tmp_path / "csv"
    code = kpi_report.main(
        ["--from", "2026-11-16", "--to", "2026-11-30", "--active-customers", "60", "--out", str(out)]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "Containment" in printed and "By intent:" in printed and "Adoption" in printed
    with (out / "summary.csv").open() as handle:
        summary = {row["kpi"]: row["value"] for row in csv.DictReader(handle)}
    assert int(summary["sessions"]) > 0
    assert 0 <= float(summary["containment"]) <= 1
    assert float(summary["adoption"]) == pytest.approx(int(summary["customers"]) / 60)
    # The demo's notifications: some sent, some of their links opened (docs/kpis.md).
    assert "Notifications (finished in the period" in printed
    with (out / "notifications.csv").open() as handle:
        total = next(csv.DictReader(handle))
    assert total["kind"] == "(all)" and int(total["sent"]) > 0
    assert 0 < int(total["opened"]) <= int(total["with_link"]) <= int(total["sent"])


def test_the_default_period_is_the_seven_full_days_before_today():
    period = kpi_report.period_of(None, None, date(2026, 11, 30), "America/Mexico_City")
    assert period.start.date() == date(2026, 11, 23) and period.end - period.start == timedelta(days=7)
    assert period.start.utcoffset() == timedelta(hours=-6)


def test_a_day_that_is_no_day_is_refused(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'x.db'}")
    assert kpi_report.main(["--from", "30/11/2026", "--no-catch-up"]) == 2
    assert "FROM/TO" in capsys.readouterr().err


def test_the_benchmark_runs_and_prints_its_time(tmp_path, monkeypatch, capsys):
    """Not a timing test: the benchmark's own code must keep working (a small week here)."""
    kpi_bench = _load("kpi_bench")
    monkeypatch.setenv("BENCH_DATABASE_URL", f"sqlite:///{tmp_path / 'bench.db'}")
    assert kpi_bench.main(["--conversations", "700"]) == 0
    printed = capsys.readouterr().out
    sessions = int(printed.split("==> ")[-1].split(" sessions")[0].replace(",", ""))
    assert 600 < sessions <= 700 and " s in all" in printed
