"""A KPI report as text for the terminal and as CSV files (`make report`): formatting only."""

from __future__ import annotations

import csv
from pathlib import Path
from zoneinfo import ZoneInfo

from bot.analytics.kpis import DIMENSIONS, KpiReport
from bot.analytics.notifications import OUTCOMES

BREAKDOWN_COLUMNS = (
    "sessions",
    "containment",
    "handoff_rate",
    "fallback_rate",
    "clarification_rate",
    "fcr",
    "csat_mean",
    "csat_answers",
    "feedback_yes_rate",
)
PERCENTS = {
    "containment",
    "handoff_rate",
    "fallback_rate",
    "clarification_rate",
    "fcr",
    "adoption",
    "csat_share",
    "feedback_yes_rate",
}


def _shown(name: str, value: float | int | None) -> str:
    if value is None:
        return "n/a"
    if name in PERCENTS:
        return f"{100 * value:.1f}%"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def _p(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


NOTIFICATION_COLUMNS = [
    "kind", "channel", "total", *OUTCOMES, "quiet_hours", "daily_cap",
    "opened", "with_link", "open_rate", "opt_outs", "opt_out_rate",
]  # fmt: skip
NOTIFICATION_TITLES = (
    "total", "sent", "held", "consent", "opted out", "failed", "skipped", "quiet h", "cap",
    "opened", "open %", "opt-outs", "opt-out %",
)  # fmt: skip


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def notification_rows(kpis: KpiReport) -> list[list]:
    """The notifications' figures as NOTIFICATION_COLUMNS, the total first (kind and channel "")."""
    return [
        [
            n.kind, n.channel, n.total, *(n.outcomes[o] for o in OUTCOMES), n.quiet_hours, n.daily_cap,
            n.opened, n.with_link, n.open_rate, n.opt_outs, n.opt_out_rate,
        ]
        for n in kpis.notifications
    ]  # fmt: skip


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
        ("feedback_yes_rate", overall.feedback_yes_rate),
        ("feedback_answers", overall.feedback_answers),
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
    "csat_share": "CSAT, satisfied share (4-5 and Sí)",
    "csat_answers": "  answers of 1–5",
    "feedback_yes_rate": "¿Te sirvió?, share of Sí",
    "feedback_answers": "  answers Sí / No",
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
    if kpis.feedback_by_flow:
        lines += ["", "¿Te sirvió? by rated flow (answers, Sí):"]
        lines += [
            f"  {flow:<40} {n:>5} {yes:>5} {_shown('feedback_yes_rate', yes / n):>8}"
            for flow, n, yes in kpis.feedback_by_flow
        ]
    if kpis.experiments:
        lines += [
            "",
            "A/B tests (sessions shown the variant; p: two-proportion z-test against the first variant):",
            f"  {'experiment / variant':<36}{'sessions':>9}{'contained':>11}{'p':>7}"
            f"{'¿Te sirvió? Sí':>18}{'p':>7}",
        ]
        for v in kpis.experiments:
            yes = f"{v.yes}/{v.answers} {_shown('feedback_yes_rate', v.yes_rate)}"
            lines.append(
                f"  {(v.experiment + ' / ' + v.variant)[:36]:<36}{v.sessions:>9}"
                f"{_shown('containment', v.containment):>11}{_p(v.containment_p):>7}"
                f"{yes:>18}{_p(v.yes_rate_p):>7}"
            )
    if kpis.notifications:
        lines += [
            "",
            "Notifications (finished in the period; opened: deep link tapped within its life, of those"
            " sent with one; opt-outs within 72 h of those sent):",
            f"  {'kind / channel':<30}" + "".join(f"{title:>10}" for title in NOTIFICATION_TITLES),
        ]
        for row in notification_rows(kpis):
            name = "(all)" if not row[0] else f"{row[0]} / {row[1] or '-'}"
            shown = [*(str(value) for value in row[2:11]), f"{row[11]}/{row[12]}", _percent(row[13])]
            shown += [f"{row[14]}/{row[3]}", _percent(row[15])]
            lines.append(f"  {name[:30]:<30}" + "".join(f"{value:>10}" for value in shown))
    if kpis.misunderstood:
        lines += ["", "Top misunderstood messages (masked):"]
        lines += [f"  {count:>5}  {text}" for text, count in kpis.misunderstood]
    return "\n".join(lines) + "\n"


def write_csv(kpis: KpiReport, folder: Path) -> list[Path]:
    """summary.csv, breakdown.csv, handoffs.csv, agents.csv, misunderstood.csv, feedback.csv,
    experiments.csv and notifications.csv in `folder` (an empty value: not computable)."""
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
        "feedback.csv": (
            ["flow", "answers", "yes", "yes_rate"],
            [[f, n, y, y / n] for f, n, y in kpis.feedback_by_flow],
        ),
        "experiments.csv": (
            [
                "experiment",
                "variant",
                "sessions",
                "contained",
                "containment",
                "containment_p",
                "answers",
                "yes",
                "yes_rate",
                "yes_rate_p",
            ],
            [
                [
                    v.experiment,
                    v.variant,
                    v.sessions,
                    v.contained,
                    v.containment,
                    v.containment_p,
                    v.answers,
                    v.yes,
                    v.yes_rate,
                    v.yes_rate_p,
                ]
                for v in kpis.experiments
            ],
        ),  # fmt: skip
        "notifications.csv": (
            NOTIFICATION_COLUMNS,
            [
                ["(all)" if not row[0] else row[0], *("" if value is None else value for value in row[1:])]
                for row in notification_rows(kpis)
            ],
        ),
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
