"""Whether a notification goes out now, later or never: a pure function of the event, its rule,
what is known of the customer and the moment (time is an input, never read here)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from zoneinfo import ZoneInfo

from bot.notifications.events import NotificationEvent
from bot.notifications.rules import Rule, missing_variables


class Action(str, Enum):
    SEND = "send"
    DEFER = "defer"  # not now: try again at `Decision.at`
    SKIP = "skip"  # never: `Decision.reason` says why


@dataclass(frozen=True)
class Decision:
    action: Action
    at: datetime | None = None  # DEFER: when to decide again (UTC)
    reason: str | None = None  # SKIP and DEFER: why, in a word an operator can count

    @classmethod
    def send(cls) -> Decision:
        return cls(Action.SEND)


def decide(
    event: NotificationEvent,
    rule: Rule | None,
    *,
    now: datetime,
    zone: str,
    opted_out: bool,
    sent_today: int,
    refused_consent: str | None = None,
) -> Decision:
    """`zone` is the customer's IANA time zone; `sent_today` counts the notifications already sent
    to them on their local day of `now` (see `local_day_bounds`); `refused_consent` names the
    topic and channel the customer said no to ("promotions/sms"), None when they receive it."""
    if rule is None:
        return Decision(Action.SKIP, reason="no_rule")
    if not rule.enabled:
        return Decision(Action.SKIP, reason="disabled")
    if opted_out:
        return Decision(Action.SKIP, reason="opted_out")
    if refused_consent:
        return Decision(Action.SKIP, reason=f"no_consent:{refused_consent}")
    missing = missing_variables(rule, event.variables)
    if missing:
        return Decision(Action.SKIP, reason="missing_variables:" + ",".join(sorted(missing)))
    if rule.expires_after is not None and now >= event.occurred_at + rule.expires_after:
        return Decision(Action.SKIP, reason="expired")
    quiet_end = _quiet_end(rule, now, zone)
    if quiet_end is not None:
        return Decision(Action.DEFER, at=quiet_end, reason="quiet_hours")
    cap = rule.max_per_customer_per_day
    if cap is not None and sent_today >= cap:
        _, next_day = local_day_bounds(now, zone)
        return Decision(Action.DEFER, at=_quiet_end(rule, next_day, zone) or next_day, reason="daily_cap")
    return Decision.send()


def local_day_bounds(now: datetime, zone: str) -> tuple[datetime, datetime]:
    """The start of the customer's local day of `now` and of the next one, in UTC."""
    tz = ZoneInfo(zone)
    day = now.astimezone(tz).date()
    start = datetime(day.year, day.month, day.day, tzinfo=tz)
    following = day + timedelta(days=1)
    end = datetime(following.year, following.month, following.day, tzinfo=tz)
    return start.astimezone(ZoneInfo("UTC")), end.astimezone(ZoneInfo("UTC"))


def _quiet_end(rule: Rule, now: datetime, zone: str) -> datetime | None:
    """When the quiet hours around `now` end (UTC), or None when `now` is not in them."""
    quiet = rule.quiet_hours
    tz = ZoneInfo(zone)
    local = now.astimezone(tz)
    if quiet is None or not quiet.contains(local.time()):
        return None
    end = datetime.combine(local.date(), quiet.end, tzinfo=tz)
    if end <= local:  # 22:00 with quiet hours to 08:00: tomorrow's 08:00
        following = local.date() + timedelta(days=1)
        end = datetime.combine(following, quiet.end, tzinfo=tz)
    return end.astimezone(ZoneInfo("UTC"))
