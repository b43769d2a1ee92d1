"""The console's KPI page for supervisors: the figures of `make report` for a period and the
sessions a filter picks, with charts drawn on the server (connectors/console/charts.py).
Definitions: docs/kpis.md."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from bot.adapters.sql import SqlStore
from bot.analytics.alert_book import AlertBook, FiredAlert
from bot.analytics.kpis import CUSTOMER_TYPES, NO_INTENT, SessionFilter, compute_kpis, days_period
from bot.analytics.report import PERCENTS, summary_rows
from bot.analytics.store import AnalyticsStore
from connectors.console.charts import bar_chart

KPI_ARGS = ("from", "to", "intent", "channel", "country", "customer")  # the form's fields
MAX_DAYS = 92  # a quarter: the page computes on request
ALERTS_SHOWN_FOR = timedelta(days=14)  # an alert of the last two weeks' checks stays on the page
DEFAULT_DAYS = 28  # four weeks: enough to see a weekly trend
CHANNELS = {"whatsapp": "WhatsApp", "sms": "SMS"}
CUSTOMERS = {"new": "Nuevos", "returning": "Recurrentes"}
# The notification kinds (bot/notifications/events.py, EventKind) as the dashboard names them.
NOTIFICATION_KINDS = {
    "order_shipped": "Pedido enviado",
    "out_for_delivery": "Pedido en camino",
    "delivery_tomorrow": "Entrega mañana",
    "delivery_failed": "Entrega fallida",
    "invoice_due_soon": "Factura por vencer",
    "invoice_overdue": "Factura vencida",
    "visit_tomorrow": "Visita mañana",
    "case_updated": "Gestión actualizada",
}


def _share(part: int, whole: int) -> str:
    return f"{part}/{whole} ({100 * part / whole:.1f}%)" if whole else "—"


def notification_row(figures: Any) -> dict[str, Any]:
    """A row of the notifications table (bot.analytics.notifications.NotificationFigures)."""
    return {
        "kind": figures.kind,
        "label": NOTIFICATION_KINDS.get(figures.kind, figures.kind) if figures.kind else "Total",
        "channel": CHANNELS.get(figures.channel, figures.channel or "—") if figures.kind else "",
        "total": figures.total,
        **figures.outcomes,
        "quiet_hours": figures.quiet_hours,
        "daily_cap": figures.daily_cap,
        "opened": _share(figures.opened, figures.with_link),
        "opt_outs": _share(figures.opt_outs, figures.sent),
    }


_INTENT = re.compile(r"^[a-z0-9_]{1,64}$")
_COUNTRY = re.compile(r"^([A-Z]{2}|\?\?)$")
LABELS = {
    "sessions": "Sesiones",
    "containment": "Contención",
    "handoff_rate": "Derivación a persona",
    "fallback_rate": "Fallback por turno",
    "clarification_rate": "Aclaración por turno",
    "fcr": "Resolución al primer contacto",
    "csat_mean": "CSAT (1–5)",
    "csat_share": "CSAT satisfechos (4–5 y «Sí»)",
    "feedback_yes_rate": "«¿Te sirvió?»: Sí",
    "feedback_answers": "«¿Te sirvió?»: respuestas",
    "adoption": "Adopción",
    "aht_minutes": "AHT de agentes (min)",
    "case_resolution_hours_mean": "Resolución de casos (h)",
}


class FilterError(ValueError):
    """A filter value the page does not offer (hand-written in the address)."""


def shown(name: str, value: float | int | None) -> str:
    if value is None:
        return "—"
    if name in PERCENTS:
        return f"{100 * value:.1f}%"
    return f"{value:.1f}" if isinstance(value, float) else str(value)


def _day(value: str | None) -> date | None:
    return date.fromisoformat(value) if value else None


def session_filter(args: Mapping[str, str | None]) -> SessionFilter:
    """The filter of the page's form (`intent`, `channel`, `country`, `customer`; empty: all).
    Anything the form cannot send is refused, not searched for."""
    intent = (args.get("intent") or "").strip() or None
    channel = (args.get("channel") or "").strip() or None
    country = (args.get("country") or "").strip().upper() or None
    customer = (args.get("customer") or "").strip() or None
    if intent is not None and intent != NO_INTENT and not _INTENT.match(intent):
        raise FilterError("intent")
    if channel is not None and channel not in CHANNELS:
        raise FilterError("channel")
    if country is not None and not _COUNTRY.match(country):
        raise FilterError("country")
    if customer is not None and customer not in CUSTOMER_TYPES:
        raise FilterError("customer")
    return SessionFilter(intent=intent, channel=channel, country=country, customer=customer)


def alert_row(alert: FiredAlert) -> dict[str, Any]:
    """An alert's figures as the page writes them (the sentence is kpis.html's, in Spanish)."""
    percent = alert.kind != "csat_below"
    number = (lambda v: f"{100 * v:.1f}%") if percent else (lambda v: f"{v:.1f}")
    return {
        "id": alert.id,
        "kind": alert.kind,
        "subject": alert.subject,
        "week": alert.week,
        "value": number(alert.value),
        "previous": number(alert.previous) if alert.previous is not None else "",
        "threshold": f"{alert.threshold:g}",
        "volume": alert.volume,
        "fired_at": alert.fired_at.isoformat(),
    }


def kpi_page_values(
    store: SqlStore, zone: str, now: datetime, args: Mapping[str, str | None]
) -> dict[str, Any]:
    """What kpis.html shows for the form's `args`: the days [from, to) (default the four weeks
    before the clock's day) and the sessions the filter picks."""
    first, last = args.get("from"), args.get("to")
    values: dict[str, Any] = {
        "first": first,
        "last": last,
        "zone": zone,
        "chosen": {name: args.get(name) or "" for name in ("intent", "channel", "country", "customer")},
        "channels": CHANNELS,
        "customers": CUSTOMERS,
        "intents": [],
        "countries": [],
        "alerts": [alert_row(alert) for alert in AlertBook(store).recent(now - ALERTS_SHOWN_FOR)],
    }
    today = now.astimezone(ZoneInfo(zone)).date()
    try:
        period = days_period(_day(first), _day(last), today, zone, days=DEFAULT_DAYS)
    except ValueError:
        return {**values, "error": "Fechas no válidas: usa el selector de fecha."}
    if period.end - period.start > timedelta(days=MAX_DAYS):
        return {**values, "error": f"Elige como máximo {MAX_DAYS} días."}
    try:
        only = session_filter(args)
    except FilterError:
        return {**values, "error": "Filtro no válido: elige una opción de la lista."}
    analytics = AnalyticsStore(store)
    choices = analytics.dimension_values(period)
    kpis = compute_kpis(
        period,
        now,
        zone=zone,
        active_customers=analytics.active_customers(period),
        only=only,
        **analytics.facts(period),
    )
    days = []
    day = period.start.date()
    while day < period.end.date():
        days.append(day.isoformat())
        day += timedelta(days=1)
    by_day = kpis.breakdown.get("day", {})
    by_week = kpis.breakdown.get("week", {})
    return {
        **values,
        "first": period.start.date().isoformat(),
        "last": period.end.date().isoformat(),
        "chosen": {
            "intent": only.intent or "",
            "channel": only.channel or "",
            "country": only.country or "",
            "customer": only.customer or "",
        },
        # The period's values, and the chosen one even when the period has none of it.
        "intents": sorted(set(choices["intent"]) | ({only.intent} if only.intent else set())),
        "countries": sorted(set(choices["country"]) | ({only.country} if only.country else set())),
        "filtered": only.active,
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
        "handoff_chart": bar_chart(
            [(week, figures.handoff_rate) for week, figures in by_week.items()],
            percent=True,
            title="Derivación a persona por semana",
            tick_chars=3,
        ),
        # The 1–5 answers' mean per ISO week, on a 0–5 scale; a week without answers stays empty.
        "csat_chart": bar_chart(
            [(week, figures.csat_mean) for week, figures in by_week.items()],
            title="CSAT (1–5) por semana",
            tick_chars=3,
            scale_top=5,
        ),
        "by_intent": [
            (value, {name: shown(name, number) for name, number in figures.row().items()})
            for value, figures in sorted(
                kpis.breakdown.get("intent", {}).items(), key=lambda item: -item[1].sessions
            )
        ],
        "misunderstood": kpis.misunderstood,
        "feedback_by_flow": [
            (flow, answers, shown("feedback_yes_rate", yes / answers))
            # The most answered first, like the intents above.
            for flow, answers, yes in sorted(kpis.feedback_by_flow, key=lambda item: (-item[1], item[0]))
        ],
        # A/B tests: each variant with its p-values against the experiment's first (docs/kpis.md).
        "experiments": [
            {
                "experiment": v.experiment,
                "variant": v.variant,
                "sessions": v.sessions,
                "containment": shown("containment", v.containment),
                "containment_p": "—" if v.containment_p is None else f"{v.containment_p:.3f}",
                "answers": v.answers,
                "yes_rate": shown("feedback_yes_rate", v.yes_rate),
                "yes_rate_p": "—" if v.yes_rate_p is None else f"{v.yes_rate_p:.3f}",
            }
            for v in kpis.experiments
        ],
        # Notifications finished in the period (docs/kpis.md, "Notifications"); the total first.
        "notifications": [notification_row(figures) for figures in kpis.notifications],
    }
