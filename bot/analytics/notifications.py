"""Notifications in the analytics (docs/kpis.md, "Notifications"): what became of each one the
worker finished, by kind and channel, whether its deep link was opened within its life, and
whether an opt-out from its number followed it. Plain functions over facts; no clock read here.

The facts come the way the cases' do: the consumer copies the `notifications` table's finished
rows into `analytics_notifications` by their ID (a copy made again changes nothing), and the
deep links customers opened reach it as conversation events through the event broker (the user
event's metadata `notification`, set by the channel when the link was live), rebuilt into
`analytics_link_taps` with the sessions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from bot.deep_links import NOTIFICATION_KEY

# An opt-out counts "after a notification" when it came this soon after the notification was sent.
OPT_OUT_WINDOW = timedelta(hours=72)
# What became of a notification (analytics_notifications.outcome), in the order reports show them.
OUTCOMES = ("sent", "held", "refused_consent", "opted_out", "failed", "skipped")


def outcome_of(status: str, reason: str | None) -> str:
    """The analytics outcome of a finished notification row (bot/notifications/store.py)."""
    if status in ("sent", "held", "failed"):
        return status
    reason = reason or ""
    if reason.startswith("no_consent:"):
        return "refused_consent"
    if reason == "opted_out":
        return "opted_out"
    return "skipped"  # no rule, disabled, expired, missing variables, unknown customer


@dataclass(frozen=True)
class NotificationFacts:
    notification_id: int
    kind: str
    channel: str  # "" when it never got as far as a channel
    outcome: str
    finished_at: datetime
    link_expires_at: datetime | None = None
    quiet_hours: bool = False
    daily_cap: bool = False
    opted_out_at: datetime | None = None
    customer_key: str = ""


@dataclass(frozen=True)
class TapFacts:
    notification_id: int
    at: datetime
    conversation_id: str = ""


def link_taps(conversation_id: str, events: Iterable[Mapping[str, Any]]) -> list[TapFacts]:
    """The live deep links opened in a conversation's recorded events (bot/analytics/sessions.py
    keeps the user event's `notification`)."""
    taps = []
    for event in events:
        if event.get("event") != "user":
            continue
        notification = (event.get("metadata") or {}).get(NOTIFICATION_KEY)
        if notification is None:
            continue
        try:
            number = int(notification)
        except (TypeError, ValueError):
            continue
        at = datetime.fromtimestamp(float(event.get("timestamp") or 0.0), timezone.utc)
        taps.append(TapFacts(number, at, conversation_id))
    return taps


@dataclass
class NotificationFigures:
    """The notifications of one kind and channel finished in a period ("" kind/channel: all)."""

    kind: str
    channel: str
    outcomes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    quiet_hours: int = 0  # deferred by the customer's quiet hours at least once
    daily_cap: int = 0  # deferred by the daily cap at least once
    with_link: int = 0  # sent with a deep link
    opened: int = 0  # of them, the link opened within its life
    opt_outs: int = 0  # sent, and an opt-out from the number followed within OPT_OUT_WINDOW

    @property
    def total(self) -> int:
        return sum(self.outcomes.values())

    @property
    def sent(self) -> int:
        return self.outcomes["sent"]

    @property
    def open_rate(self) -> float | None:
        return self.opened / self.with_link if self.with_link else None

    @property
    def opt_out_rate(self) -> float | None:
        return self.opt_outs / self.sent if self.sent else None

    def add(self, other: NotificationFigures) -> None:
        for outcome, count in other.outcomes.items():
            self.outcomes[outcome] += count
        self.quiet_hours += other.quiet_hours
        self.daily_cap += other.daily_cap
        self.with_link += other.with_link
        self.opened += other.opened
        self.opt_outs += other.opt_outs


def notification_figures(
    notifications: Iterable[NotificationFacts],
    taps: Iterable[TapFacts],
    start: datetime,
    end: datetime,
    channel: str | None = None,
) -> list[NotificationFigures]:
    """Per (kind, channel), kinds and channels sorted, the notifications finished in [start, end)
    (on `channel` only, when given); the first row, kind and channel "", is their total."""
    first_tap: dict[int, list[datetime]] = {}
    for tap in taps:
        first_tap.setdefault(tap.notification_id, []).append(tap.at)
    rows: dict[tuple[str, str], NotificationFigures] = {}
    for item in notifications:
        if not start <= item.finished_at < end or (channel and item.channel != channel):
            continue
        figures = rows.setdefault((item.kind, item.channel), NotificationFigures(item.kind, item.channel))
        figures.outcomes[item.outcome] = figures.outcomes.get(item.outcome, 0) + 1
        figures.quiet_hours += item.quiet_hours
        figures.daily_cap += item.daily_cap
        if item.outcome != "sent":
            continue
        if item.link_expires_at is not None:
            figures.with_link += 1
            figures.opened += any(at < item.link_expires_at for at in first_tap.get(item.notification_id, ()))
        if item.opted_out_at is not None and item.opted_out_at < item.finished_at + OPT_OUT_WINDOW:
            figures.opt_outs += 1
    total = NotificationFigures("", "")
    for figures in rows.values():
        total.add(figures)
    return [total, *(rows[key] for key in sorted(rows))] if rows else []
