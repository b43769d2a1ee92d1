"""A KPI report as text for the terminal and as CSV files (`make report`): formatting only."""

from __future__ import annotations

import csv
from pathlib import Path
from zoneinfo import ZoneInfo

from bot.analytics.kpis import DIMENSIONS, KpiReport

BREAKDOWN_COLUMNS = (
    "sessions",
    "containment",
    "handoff_rate",
    "fallback_rate",
    "clarification_rate",
    "fcr",
    "csat_mean",
    "csat_answers",
)
PERCENTS = {
    "containment",
    "handoff_rate",
    "fallback_rate",
    "clarification_rate",
    "fcr",
    "adoption",
    "csat_share",
}


def _shown(name: str, value: float | int | None) -> str:
    if value is None:
        return "n/a"
    if name in PERCENTS:
        return f"{100 * value:.1f}%"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def summary_rows(kpis: KpiReport) -> list[tuple[str, float | int | None]]:
    overall = kpis.overall
    return [
        ("sessions", overall.sessions),
        ("containment", overall.containment),
        ("handoff_rate", overall.handoff_rate),
        ("fallback_rate", overall.fallback_rate),
        ("clarification_rate", overall.clarification_rate),
        ("fcr", overall.fcr),
        ("fcr_judged", overall.fcr_judged),
        ("csat_mean", overall.csat_mean),
        ("csat_share", overall.csat_share),
        ("csat_answers", overall.csat_answers),
        ("customers", kpis.customers),
        ("active_customers", kpis.active_customers),
        ("adoption", kpis.adoption),
        ("aht_minutes", kpis.aht_minutes),
        ("cases_opened", kpis.cases_opened),
        ("cases_resolved", kpis.cases_resolved),
        ("case_resolution_hours_mean", kpis.case_resolution_hours_mean),
        ("case_resolution_hours_median", kpis.case_resolution_hours_median),
    ]


LABELS = {
    "sessions": "Sessions with a customer message",
    "containment": "Containment",
    "handoff_rate": "Handoff rate",
    "fallback_rate": "Fallback rate (per customer turn)",
    "clarification_rate": "Clarification rate (per customer turn)",
    "fcr": "First-contact resolution (72 h)",
    "fcr_judged": "  sessions judged for FCR",
    "csat_mean": "CSAT, mean of 1–5",
    "csat_share": "CSAT, share of 4 and 5",
    "csat_answers": "  answers",
    "customers": "Customers who used the self-service",
    "active_customers": "Active customers",
    "adoption": "Adoption",
    "aht_minutes": "Agents' AHT (minutes)",
    "cases_opened": "Cases opened",
    "cases_resolved": "  of them resolved",
    "case_resolution_hours_mean": "Case time to resolution, mean (h)",
    "case_resolution_hours_median": "Case time to resolution, median (h)",
}


def render_text(kpis: KpiReport, zone: str) -> str:
    tz = ZoneInfo(zone)
    start, end = kpis.period.start.astimezone(tz), kpis.period.end.astimezone(tz)
    lines = [f"KPIs from {start:%Y-%m-%d %H:%M %z} to {end:%Y-%m-%d %H:%M %z} (days and weeks in {zone})", ""]
    lines += [f"  {LABELS[name]:<42} {_shown(name, value)}" for name, value in summary_rows(kpis)]
    for dimension in DIMENSIONS:
        values = kpis.breakdown.get(dimension) or {}
        if not values:
            continue
        lines += [
            "",
            f"By {dimension}:",
            "  " + f"{'':<22}" + "".join(f"{c[:12]:>13}" for c in BREAKDOWN_COLUMNS),
        ]
        for value, figures in values.items():
            row = figures.row()
            lines.append(
                "  " + f"{value[:22]:<22}" + "".join(f"{_shown(c, row[c]):>13}" for c in BREAKDOWN_COLUMNS)
            )
    if kpis.handoffs_by_intent_reason:
        lines += ["", "Handoffs by intent × reason (handoffs / sessions of the intent):"]
        for intent, reason, count, sessions in kpis.handoffs_by_intent_reason:
            rate = _shown("handoff_rate", count / sessions)
            lines.append(f"  {intent:<24} {reason:<26} {count:>5} / {sessions:<5} {rate}")
    if kpis.agents:
        lines += ["", "Agents (handoffs handled, AHT in minutes):"]
        lines += [f"  {a.agent:<24} {a.handled:>5} {a.aht_minutes:>8.1f}" for a in kpis.agents]
    if kpis.misunderstood:
        lines += ["", "Top misunderstood messages (masked):"]
        lines += [f"  {count:>5}  {text}" for text, count in kpis.misunderstood]
    return "\n".join(lines) + "\n"


def write_csv(kpis: KpiReport, folder: Path) -> list[Path]:
    """summary.csv, breakdown.csv, handoffs.csv, agents.csv and misunderstood.csv in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    tables: dict[str, tuple[list[str], list[list]]] = {
        "summary.csv": (["kpi", "value"], [[name, "" if v is None else v] for name, v in summary_rows(kpis)]),
        "breakdown.csv": (
            ["dimension", "value", *BREAKDOWN_COLUMNS],
            [
                [
                    dimension,
                    value,
                    *("" if figures.row()[c] is None else figures.row()[c] for c in BREAKDOWN_COLUMNS),
                ]
                for dimension, values in kpis.breakdown.items()
                for value, figures in values.items()
            ],
        ),
        "handoffs.csv": (
            ["intent", "reason", "handoffs", "intent_sessions", "rate"],
            [[i, r, n, s, n / s] for i, r, n, s in kpis.handoffs_by_intent_reason],
        ),
        "agents.csv": (
            ["agent", "handled", "aht_minutes"],
            [[a.agent, a.handled, a.aht_minutes] for a in kpis.agents],
        ),
        "misunderstood.csv": (["text", "count"], [[t, n] for t, n in kpis.misunderstood]),
    }
    written = []
    for name, (header, rows) in tables.items():
        path = folder / name
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            writer.writerows(rows)
        written.append(path)
    return written
