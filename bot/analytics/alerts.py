"""KPI alerts: the rules supervisors write in bot/alerts.yml, judged on the last complete ISO week
against the week before, and the checker that records each alert once (docs/kpis.md, "Alerts").

`evaluate` is a plain function of two weeks' figures; `check_alerts` reads them from the analytics
tables for a moment it is given (time is an input: the caller passes its clock's `now`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml

from bot.analytics.alert_book import AlertBook, FiredAlert, Firing
from bot.analytics.kpis import NO_INTENT, Figures, KpiReport, Period, compute_kpis
from bot.analytics.store import AnalyticsStore

log = logging.getLogger(__name__)

DEFAULT_RULES = Path(__file__).resolve().parents[1] / "alerts.yml"
EACH = "each"  # `intent: each`: every intent of the week on its own
WEEK = timedelta(days=7)
# kind → the key holding its threshold
KINDS = {
    "containment_drop": "points",
    "handoff_rise": "points",
    "csat_below": "floor",
    "fallback_above": "ceiling",
}
_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_INTENT = re.compile(r"^[a-z0-9_]{1,64}$")


class AlertRulesError(ValueError):
    """bot/alerts.yml cannot be used; the message says which rule and what fits."""


@dataclass(frozen=True)
class AlertRule:
    id: str
    kind: str
    threshold: float  # points, floor or ceiling, as written
    min_volume: int
    intent: str | None = None  # None: all sessions; EACH; or one intent


def load_rules(path: Path) -> list[AlertRule]:
    """The rules of `path`; AlertRulesError naming what to fix when one is wrong."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as error:
        raise AlertRulesError(f"{path}: cannot be read as YAML ({error})") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("rules", []), list):
        raise AlertRulesError(f"{path}: expected `rules:` with a list of rules")
    rules: list[AlertRule] = []
    for number, item in enumerate(raw.get("rules") or [], start=1):
        rules.append(_rule(path, number, item))
    ids = [rule.id for rule in rules]
    if len(set(ids)) != len(ids):
        raise AlertRulesError(f"{path}: two rules share an id; give each its own")
    return rules


def _rule(path: Path, number: int, item: Any) -> AlertRule:
    where = f"{path}, rule {number}"
    if not isinstance(item, dict):
        raise AlertRulesError(f"{where}: expected keys like id, kind, min_volume")
    kind = item.get("kind")
    if kind not in KINDS:
        raise AlertRulesError(f"{where}: kind {kind!r}; use one of {', '.join(KINDS)}")
    key = KINDS[kind]
    allowed = {"id", "kind", "intent", "min_volume", key}
    unknown = set(item) - allowed
    if unknown:
        raise AlertRulesError(f"{where}: unknown key(s) {', '.join(sorted(map(str, unknown)))} for {kind}")
    rule_id = str(item.get("id") or "")
    if not _ID.match(rule_id):
        raise AlertRulesError(f"{where}: `id` is required (letters, digits, _ and -)")
    threshold = item.get(key)
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or threshold < 0:
        raise AlertRulesError(f"{where} ({rule_id}): `{key}` must be a number of 0 or more")
    if kind == "csat_below" and not 1 <= threshold <= 5:
        raise AlertRulesError(f"{where} ({rule_id}): `floor` is a CSAT between 1 and 5")
    if key in ("points", "ceiling") and threshold > 100:
        raise AlertRulesError(f"{where} ({rule_id}): `{key}` is in percent, at most 100")
    volume = item.get("min_volume")
    if isinstance(volume, bool) or not isinstance(volume, int) or volume < 1:
        raise AlertRulesError(f"{where} ({rule_id}): `min_volume` must be a whole number of 1 or more")
    intent = item.get("intent")
    if intent is not None and (not isinstance(intent, str) or not (intent == EACH or _INTENT.match(intent))):
        raise AlertRulesError(f"{where} ({rule_id}): `intent` is `each` or an intent's name")
    return AlertRule(rule_id, kind, float(threshold), volume, intent)


class RuleFile:
    """The rules file as the consumer holds it: read again when it changes; a broken edit is
    logged and the rules read before stay in force (a typo must not silence every alert)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp = self._stat()
        self._rules = load_rules(path)  # at start a broken file stops the process: fix it first

    def _stat(self) -> tuple[int, int] | None:
        try:
            found = self.path.stat()
        except OSError:
            return None
        return (found.st_mtime_ns, found.st_size)

    def rules(self) -> list[AlertRule]:
        stamp = self._stat()
        if stamp != self._stamp:
            self._stamp = stamp
            try:
                self._rules = load_rules(self.path)
                log.info("alert rules read again from %s: %d rule(s)", self.path, len(self._rules))
            except AlertRulesError as error:
                log.error("alert rules not changed, the edit is wrong: %s", error)
        return self._rules


def last_complete_week(now: datetime, zone: str) -> tuple[Period, Period, str]:
    """The last complete ISO week before `now` (Monday 00:00 to Monday 00:00 in `zone`), the
    week before it, and the first's name (2026-W48)."""
    local = now.astimezone(ZoneInfo(zone)).date()
    this_monday = local - timedelta(days=local.weekday())
    start = datetime.combine(this_monday - WEEK, time(), ZoneInfo(zone))
    end = datetime.combine(this_monday, time(), ZoneInfo(zone))
    before = datetime.combine(this_monday - 2 * WEEK, time(), ZoneInfo(zone))
    year, number, _ = start.isocalendar()
    return Period(start, end), Period(before, start), f"{year}-W{number:02d}"


def _subjects(rule: AlertRule, week: KpiReport, before: KpiReport) -> list[tuple[str, Figures, Figures]]:
    if rule.intent is None:
        return [("", week.overall, before.overall)]
    this_intents, last_intents = week.breakdown.get("intent", {}), before.breakdown.get("intent", {})
    names = [name for name in this_intents if name != NO_INTENT] if rule.intent == EACH else [rule.intent]
    return [(name, this_intents.get(name, Figures()), last_intents.get(name, Figures())) for name in names]


def evaluate(rules: Sequence[AlertRule], week: KpiReport, before: KpiReport, week_name: str) -> list[Firing]:
    """The rules `week` breaks (`before`: the week before it, for the week-on-week kinds)."""
    fired = []
    for rule in rules:
        for subject, this, last in _subjects(rule, week, before):
            found = _judge(rule, this, last)
            if found is not None:
                value, previous, volume = found
                fired.append(
                    Firing(
                        rule.id,
                        rule.kind,
                        subject,
                        week_name,
                        week.period,
                        value,
                        previous,
                        rule.threshold,
                        volume,
                    )
                )
    return fired


def _judge(rule: AlertRule, this: Figures, last: Figures) -> tuple[float, float | None, int] | None:
    """(value, previous, volume) when the rule fires on these figures, else None."""
    if rule.kind in ("containment_drop", "handoff_rise"):
        volume = min(this.sessions, last.sessions)
        if volume < rule.min_volume:
            return None
        if rule.kind == "containment_drop":
            now_value, then = this.containment, last.containment
            change = (then - now_value) * 100
        else:
            now_value, then = this.handoff_rate, last.handoff_rate
            change = (now_value - then) * 100
        return (now_value, then, volume) if change > rule.threshold else None
    if rule.kind == "csat_below":
        if this.csat_answers < rule.min_volume or this.csat_mean is None:
            return None
        return (this.csat_mean, None, this.csat_answers) if this.csat_mean < rule.threshold else None
    if this.customer_turns < rule.min_volume or this.fallback_rate is None:  # fallback_above
        return None
    return (
        (this.fallback_rate, None, this.customer_turns) if this.fallback_rate * 100 > rule.threshold else None
    )


def check_alerts(
    analytics: AnalyticsStore,
    book: AlertBook,
    rules: Sequence[AlertRule],
    now: datetime,
    zone: str,
    *,
    deliver: bool,
) -> list[FiredAlert]:
    """Judge the last complete week before `now` and record what fires; the alerts new this
    time (a rule fires once per subject and week, however often it is checked). `deliver`: queue
    each new alert for the webhook."""
    if not rules:
        return []
    week, before, name = last_complete_week(now, zone)
    this_kpis = compute_kpis(week, now, zone=zone, **analytics.facts(week))
    last_kpis = compute_kpis(before, now, zone=zone, **analytics.facts(before))
    return book.record(evaluate(rules, this_kpis, last_kpis, name), now, deliver=deliver)
