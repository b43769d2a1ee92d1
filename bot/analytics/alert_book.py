"""The fired KPI alerts in SQL (`kpi_alerts`): each recorded once per rule, subject and week (a
unique key, so two checkers racing record it once), and their webhook deliveries leased, retried
with backoff and given up after MAX_ATTEMPTS."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from bot.adapters.sql import SqlStore, from_db_time, lease_due_rows, to_db_time
from bot.analytics.kpis import Period
from bot.analytics.schema import kpi_alerts

MAX_ATTEMPTS = 20  # 5 s doubling up to 10 min: about two and a half hours of a webhook down
LEASE = timedelta(seconds=60)


@dataclass(frozen=True)
class Firing:
    """A rule broken in a week: what the alert book records and the webhook carries."""

    rule: str
    kind: str
    subject: str  # the intent, or "" for all sessions
    week: str  # ISO week, 2026-W48
    period: Period
    value: float  # the week's containment, handoff rate, CSAT mean or fallback rate
    previous: float | None  # the week before's (week-on-week kinds)
    threshold: float
    volume: int


@dataclass(frozen=True)
class FiredAlert:
    id: int
    rule: str
    kind: str
    subject: str
    week: str
    period_start: datetime
    period_end: datetime
    value: float
    previous: float | None
    threshold: float
    volume: int
    fired_at: datetime
    status: str  # pending | delivered | failed | unsent | acknowledged (before it was sent)
    attempts: int
    acknowledged_by: str | None = None  # the supervisor who acknowledged it in the console
    acknowledged_at: datetime | None = None

    def body(self) -> dict[str, Any]:
        """What the webhook receives (docs/kpis.md, "The webhook")."""
        return {
            "id": self.id,
            "rule": self.rule,
            "kind": self.kind,
            "intent": self.subject or None,
            "week": self.week,
            "period_start": self.period_start.isoformat(),
            "period_end": self.period_end.isoformat(),
            "value": self.value,
            "previous": self.previous,
            "threshold": self.threshold,
            "volume": self.volume,
            "fired_at": self.fired_at.isoformat(),
        }


def _alert(row: Any) -> FiredAlert:
    return FiredAlert(
        id=row.id,
        rule=row.rule,
        kind=row.kind,
        subject=row.subject,
        week=row.week,
        period_start=from_db_time(row.period_start),
        period_end=from_db_time(row.period_end),
        value=row.value,
        previous=row.previous,
        threshold=row.threshold,
        volume=row.volume,
        fired_at=from_db_time(row.fired_at),
        status=row.status,
        attempts=row.attempts,
        acknowledged_by=row.acknowledged_by,
        acknowledged_at=from_db_time(row.acknowledged_at),
    )


class AlertBook:
    """`kpi_alerts` on the assistant's database."""

    def __init__(self, store: SqlStore) -> None:
        self._store = store

    def record(self, firings: list[Firing], now: datetime, *, deliver: bool) -> list[FiredAlert]:
        """Record the firings not recorded before (same rule, subject and week); the new ones."""
        new = []
        for firing in firings:
            row = {
                "rule": firing.rule,
                "kind": firing.kind,
                "subject": firing.subject,
                "week": firing.week,
                "period_start": to_db_time(firing.period.start),
                "period_end": to_db_time(firing.period.end),
                "value": firing.value,
                "previous": firing.previous,
                "threshold": firing.threshold,
                "volume": firing.volume,
                "fired_at": to_db_time(now),
                "status": "pending" if deliver else "unsent",
                "attempts": 0,
                "next_attempt_at": to_db_time(now) if deliver else None,
            }
            key = (
                kpi_alerts.c.rule == firing.rule,
                kpi_alerts.c.subject == firing.subject,
                kpi_alerts.c.week == firing.week,
            )
            try:
                with self._store.connect() as conn:
                    if conn.execute(sa.select(kpi_alerts.c.id).where(*key)).first() is not None:
                        continue
                    alert_id = conn.execute(kpi_alerts.insert().values(**row)).inserted_primary_key[0]
                    new.append(
                        _alert(conn.execute(sa.select(kpi_alerts).where(kpi_alerts.c.id == alert_id)).one())
                    )
            except sa.exc.IntegrityError:
                continue  # another checker recorded it between the look and the insert
        return new

    def acknowledge(self, alert_id: int, agent: str, now: datetime) -> bool:
        """A supervisor saw alert `alert_id`: recorded with who and when, it leaves the console's
        list, and a webhook not sent yet is not sent (a delivery under way may still land).
        False when there is no such alert or it was acknowledged before (the first one stays)."""
        a = kpi_alerts.c
        with self._store.connect() as conn:
            done = conn.execute(
                kpi_alerts.update()
                .where(a.id == alert_id, a.acknowledged_at.is_(None))
                .values(acknowledged_by=agent[:64], acknowledged_at=to_db_time(now))
            ).rowcount
            conn.execute(
                kpi_alerts.update()
                .where(a.id == alert_id, a.status == "pending")
                .values(status="acknowledged", next_attempt_at=None)
            )
        return bool(done)

    def recent(self, since: datetime, limit: int = 20) -> list[FiredAlert]:
        """The alerts fired at or after `since` and not acknowledged, newest first (the console's list)."""
        with self._store.connect() as conn:
            rows = conn.execute(
                sa.select(kpi_alerts)
                .where(kpi_alerts.c.fired_at >= to_db_time(since), kpi_alerts.c.acknowledged_at.is_(None))
                .order_by(kpi_alerts.c.fired_at.desc(), kpi_alerts.c.id.desc())
                .limit(limit)
            ).all()
        return [_alert(row) for row in rows]

    def claim_due(self, now: datetime, limit: int = 20) -> list[FiredAlert]:
        """Pending deliveries that are due, each leased so no other process sends it meanwhile."""
        with self._store.connect() as conn:
            rows = lease_due_rows(
                conn,
                kpi_alerts,
                due_column=kpi_alerts.c.next_attempt_at,
                now=now,
                lease=LEASE,
                limit=limit,
                order_by=(kpi_alerts.c.next_attempt_at, kpi_alerts.c.id),
            )
        return [_alert(row) for row in rows]

    def delivered(self, alert_id: int, now: datetime) -> None:
        with self._store.connect() as conn:
            conn.execute(
                kpi_alerts.update()
                .where(kpi_alerts.c.id == alert_id)
                .values(
                    status="delivered",
                    attempts=kpi_alerts.c.attempts + 1,
                    delivered_at=to_db_time(now),
                    locked_until=None,
                    last_error=None,
                )
            )

    def failed(self, alert_id: int, error: str, retry_at: datetime) -> int:
        """One more failed attempt; the next at `retry_at`, or none after MAX_ATTEMPTS. The attempts."""
        with self._store.connect() as conn:
            attempts = (
                conn.execute(sa.select(kpi_alerts.c.attempts).where(kpi_alerts.c.id == alert_id)).scalar_one()
                + 1
            )
            conn.execute(
                kpi_alerts.update()
                # Acknowledged while it was being sent: it stays so, and is not tried again.
                .where(kpi_alerts.c.id == alert_id, kpi_alerts.c.status == "pending")
                .values(
                    status="failed" if attempts >= MAX_ATTEMPTS else "pending",
                    attempts=attempts,
                    next_attempt_at=to_db_time(retry_at),
                    locked_until=None,
                    last_error=error[:500],
                )
            )
        return attempts
