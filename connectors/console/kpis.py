"""The console's KPI page for supervisors: the figures of `make report` for a few days, with
charts drawn on the server (connectors/console/charts.py). Definitions: docs/kpis.md."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from bot.adapters.sql import SqlStore
from bot.analytics.kpis import compute_kpis, days_period
from bot.analytics.report import PERCENTS, summary_rows
from bot.analytics.store import AnalyticsStore
from connectors.console.charts import bar_chart

MAX_DAYS = 92  # a quarter: the page computes on request
LABELS = {
    "sessions": "Sesiones",
    "containment": "Contención",
    "handoff_rate": "Derivación a persona",
    "fallback_rate": "Fallback por turno",
    "clarification_rate": "Aclaración por turno",
    "fcr": "Resolución al primer contacto",
    "csat_mean": "CSAT (1–5)",
    "adoption": "Adopción",
    "aht_minutes": "AHT de agentes (min)",
    "case_resolution_hours_mean": "Resolución de casos (h)",
}


def shown(name: str, value: float | int | None) -> str:
    if value is None:
        return "—"
    if name in PERCENTS:
        return f"{100 * value:.1f}%"
    return f"{value:.1f}" if isinstance(value, float) else str(value)


def _day(value: str | None) -> date | None:
    return date.fromisoformat(value) if value else None


def kpi_page_values(
    store: SqlStore, zone: str, now: datetime, first: str | None, last: str | None
) -> dict[str, Any]:
    """What kpis.html shows for the days [first, last) (default: the 7 days before today)."""
    today = now.astimezone(ZoneInfo(zone)).date()
    try:
        period = days_period(_day(first), _day(last), today, zone)
    except ValueError:
        return {
            "error": "Fechas no válidas: usa el selector de fecha.",
            "first": first,
            "last": last,
            "zone": zone,
        }
    if period.end - period.start > timedelta(days=MAX_DAYS):
        return {"error": f"Elige como máximo {MAX_DAYS} días.", "first": first, "last": last, "zone": zone}
    analytics = AnalyticsStore(store)
    kpis = compute_kpis(
        period, now, zone=zone, active_customers=analytics.active_customers(period), **analytics.facts(period)
    )
    days = []
    day = period.start.date()
    while day < period.end.date():
        days.append(day.isoformat())
        day += timedelta(days=1)
    by_day = kpis.breakdown.get("day", {})
    return {
        "first": period.start.date().isoformat(),
        "last": period.end.date().isoformat(),
        "zone": zone,
        "summary": [
            (name, LABELS[name], shown(name, value)) for name, value in summary_rows(kpis) if name in LABELS
        ],
        "sessions_chart": bar_chart(
            [(d, by_day[d].sessions if d in by_day else 0) for d in days], title="Sesiones por día"
        ),
        "containment_chart": bar_chart(
            [(d, by_day[d].containment if d in by_day else None) for d in days],
            percent=True,
            title="Contención por día",
        ),
        "intents": [
            (value, {name: shown(name, number) for name, number in figures.row().items()})
            for value, figures in sorted(
                kpis.breakdown.get("intent", {}).items(), key=lambda item: -item[1].sessions
            )
        ],
        "misunderstood": kpis.misunderstood,
    }
