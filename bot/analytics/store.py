"""The analytics tables in SQL: events recorded once by identity, sessions rebuilt from them, the
handoffs and cases copied from the assistant's own tables, and the facts the KPIs read back.

Recording is idempotent: an event already recorded (same `event_key`) is skipped, and the
sessions of every conversation that received a new event are rebuilt from all of its events,
so the order and the number of deliveries never change the result.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bot.adapters.sql import SqlStore, cases, from_db_time, orders, to_db_time
from bot.analytics.feedback import ExposureFacts, FeedbackFacts, feedback_and_exposures
from bot.analytics.kpis import (
    FCR_WINDOW,
    NO_INTENT,
    CaseFacts,
    HandoffFacts,
    MisunderstoodFacts,
    Period,
)
from bot.analytics.notifications import OPT_OUT_WINDOW as NOTIFICATION_OPT_OUT_WINDOW
from bot.analytics.notifications import NotificationFacts, TapFacts, link_taps, outcome_of
from bot.analytics.schema import (
    analytics_cases,
    analytics_events,
    analytics_exposures,
    analytics_feedback,
    analytics_handoffs,
    analytics_link_taps,
    analytics_misunderstood,
    analytics_notifications,
    analytics_offsets,
    analytics_sessions,
    metadata,
)
from bot.analytics.sessions import SessionFacts, build_sessions, customer_key, event_key, trim_event
from bot.consents.store import consent_log
from bot.handoff.store import handoffs
from bot.inbox import misunderstood_messages
from bot.notifications.store import FINAL as FINISHED
from bot.notifications.store import notifications

# Customers with an order placed this long before the period's end count as active (adoption).
ACTIVE_CUSTOMER_WINDOW = timedelta(days=90)
_KEY_CHUNK = 500  # keys per IN (...) query


def _moment(value: str | datetime) -> datetime:
    """A stored UTC moment as read: a datetime (PostgreSQL) or ISO text (SQLite)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=timezone.utc)


class AnalyticsStore:
    """The analytics tables on the assistant's database (DATABASE_URL)."""

    def __init__(self, store: SqlStore) -> None:
        self._store = store

    @property
    def sql(self) -> SqlStore:
        return self._store

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        with self._store.connect() as conn:
            yield conn

    def create_tables(self) -> None:
        """Tests and the benchmark: the tables without the migrations."""
        with self.connect() as conn:
            metadata.create_all(conn)

    # --- recording ---------------------------------------------------------------------------

    def record(
        self, delivered: Iterable[Mapping[str, Any]], now: datetime, conn: Connection | None = None
    ) -> int:
        """Record Rasa events as the broker delivers them (each with its `sender_id`); how many
        were new. Given `conn`, it runs in that transaction (the SQL consumer's offset moves with it)."""
        if conn is None:
            with self.connect() as own:
                return self.record(delivered, now, own)
        rows: dict[str, dict[str, Any]] = {}
        for event in delivered:
            conversation_id = str(event.get("sender_id") or "")
            body = {key: value for key, value in event.items() if key != "sender_id"}
            kept = trim_event(conversation_id, body) if conversation_id else None
            if kept is None:
                continue
            key = event_key(conversation_id, body)
            rows[key] = {
                "event_key": key,
                "conversation_id": conversation_id,
                "at": kept["timestamp"],
                "kind": kept["event"],
                "body": kept,
                "received_at": to_db_time(now),
            }
        known: set[str] = set()
        keys = list(rows)
        for index in range(0, len(keys), _KEY_CHUNK):
            chunk = keys[index : index + _KEY_CHUNK]
            known |= set(
                conn.execute(
                    sa.select(analytics_events.c.event_key).where(analytics_events.c.event_key.in_(chunk))
                ).scalars()
            )
        new = [row for key, row in rows.items() if key not in known]
        if new:
            conn.execute(analytics_events.insert(), new)
            self._rebuild(conn, {row["conversation_id"] for row in new})
        return len(new)

    def _rebuild(self, conn: Connection, conversation_ids: set[str]) -> None:
        ids = sorted(conversation_ids)
        events: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for index in range(0, len(ids), _KEY_CHUNK):
            chunk = ids[index : index + _KEY_CHUNK]
            found = conn.execute(
                sa.select(analytics_events.c.conversation_id, analytics_events.c.body)
                .where(analytics_events.c.conversation_id.in_(chunk))
                .order_by(analytics_events.c.at, analytics_events.c.event_key)
            )
            for conversation_id, body in found:
                events[conversation_id].append(body)
            conn.execute(analytics_sessions.delete().where(analytics_sessions.c.conversation_id.in_(chunk)))
            rebuilt = (analytics_misunderstood, analytics_feedback, analytics_exposures, analytics_link_taps)
            for table in rebuilt:
                conn.execute(table.delete().where(table.c.conversation_id.in_(chunk)))
        session_rows, message_rows, feedback_rows, exposure_rows, tap_rows = [], [], [], [], []
        for conversation_id, stored in events.items():
            for facts in build_sessions(conversation_id, stored):
                row = dict(facts.__dict__)
                row["started_at"], row["ended_at"] = to_db_time(facts.started_at), to_db_time(facts.ended_at)
                session_rows.append(row)
            for message in misunderstood_messages(conversation_id, stored):
                message_rows.append(
                    {
                        "conversation_id": conversation_id,
                        "at": to_db_time(message.at),
                        "text": message.text,
                        "reasons": ",".join(sorted(message.reasons)),
                        "predicted": message.predicted,
                    }
                )
            answers, exposures = feedback_and_exposures(conversation_id, stored)
            feedback_rows += [{**answer.__dict__, "at": to_db_time(answer.at)} for answer in answers]
            exposure_rows += [{**exposure.__dict__, "at": to_db_time(exposure.at)} for exposure in exposures]
            taps = link_taps(conversation_id, stored)
            tap_rows += [{**tap.__dict__, "at": to_db_time(tap.at)} for tap in taps]
        if session_rows:
            conn.execute(analytics_sessions.insert(), session_rows)
        if message_rows:
            conn.execute(analytics_misunderstood.insert(), message_rows)
        if feedback_rows:
            conn.execute(analytics_feedback.insert(), feedback_rows)
        if exposure_rows:
            conn.execute(analytics_exposures.insert(), exposure_rows)
        if tap_rows:
            conn.execute(analytics_link_taps.insert(), tap_rows)

    def sync_handoffs_and_cases(self, since: datetime, now: datetime) -> None:
        """Copy the handoffs and cases made since `since` from the assistant's tables; a case is
        marked resolved at `now` the first time it is seen no longer open."""
        with self.connect() as conn:
            found = conn.execute(sa.select(handoffs).where(handoffs.c.created_at >= to_db_time(since))).all()
            rows = [
                {
                    "handoff_id": row.id,
                    "conversation_id": row.conversation_id,
                    "reason": row.reason,
                    "agent": row.agent,
                    "created_at": row.created_at,
                    "accepted_at": row.accepted_at,
                    "ended_at": row.ended_at,
                    "satisfaction": row.satisfaction,
                }
                for row in found
            ]
            self._replace(conn, analytics_handoffs, analytics_handoffs.c.handoff_id, rows, "handoff_id")
            opened = conn.execute(sa.select(cases).where(cases.c.opened_at >= to_db_time(since))).all()
            resolved = dict(
                conn.execute(
                    sa.select(analytics_cases.c.case_id, analytics_cases.c.resolved_at).where(
                        analytics_cases.c.opened_at >= to_db_time(since)
                    )
                ).all()
            )
            rows = [
                {
                    "case_id": row.id,
                    "conversation_id": row.conversation_id,
                    "kind": row.kind,
                    "opened_at": row.opened_at,
                    # Resolved once an agent resolves or closes it (a case in progress or
                    # waiting for the customer is not): at its last change, else at this sync.
                    "resolved_at": resolved.get(row.id)
                    or (row.updated_at or to_db_time(now) if row.status in ("resolved", "closed") else None),
                    "satisfaction": row.rating,
                }
                for row in opened
            ]
            self._replace(conn, analytics_cases, analytics_cases.c.case_id, rows, "case_id")
            self._copy_notifications(conn, since)

    def _copy_notifications(self, conn: Connection, since: datetime) -> None:
        """Copy the notifications the worker finished since `since` (docs/kpis.md,
        "Notifications"), each with the first consent its number withdrew within
        OPT_OUT_WINDOW after it (BAJA, or a topic refused in the preferences)."""
        n = notifications.c
        found = conn.execute(
            sa.select(n.id, n.kind, n.channel, n.status, n.reason, n.phone, n.finished_at)
            .add_columns(n.link_expires_at, n.deferred)
            .where(n.status.in_(FINISHED), n.finished_at >= to_db_time(since))
        ).all()
        phones = sorted({row.phone for row in found if row.phone})
        refusals: dict[str, list[datetime]] = defaultdict(list)
        for index in range(0, len(phones), _KEY_CHUNK):
            for phone, at in conn.execute(
                sa.select(consent_log.c.phone, consent_log.c.at).where(
                    consent_log.c.phone.in_(phones[index : index + _KEY_CHUNK]),
                    consent_log.c.granted.is_(False),
                    consent_log.c.at >= to_db_time(since),
                )
            ):
                refusals[phone].append(from_db_time(at))
        rows = []
        for row in found:
            finished = from_db_time(row.finished_at)
            opted_out = [
                at
                for at in refusals.get(row.phone or "", ())
                if finished <= at < finished + NOTIFICATION_OPT_OUT_WINDOW
            ]
            deferred = set((row.deferred or "").split(","))
            rows.append(
                {
                    "notification_id": row.id,
                    "kind": row.kind,
                    "channel": row.channel or "",
                    "outcome": outcome_of(row.status, row.reason),
                    "customer_key": customer_key(row.phone) if row.phone else "",
                    "finished_at": row.finished_at,
                    "link_expires_at": row.link_expires_at,
                    "quiet_hours": "quiet_hours" in deferred,
                    "daily_cap": "daily_cap" in deferred,
                    "opted_out_at": to_db_time(min(opted_out)) if opted_out else None,
                }
            )
        self._replace(
            conn, analytics_notifications, analytics_notifications.c.notification_id, rows, "notification_id"
        )

    @staticmethod
    def _replace(conn: Connection, table: sa.Table, key: sa.Column, rows: list[dict], name: str) -> None:
        ids = [row[name] for row in rows]
        for index in range(0, len(ids), _KEY_CHUNK):
            conn.execute(table.delete().where(key.in_(ids[index : index + _KEY_CHUNK])))
        if rows:
            conn.execute(table.insert(), rows)

    # --- offsets of ordered sources (the SQL event broker's table) ---------------------------

    def position(self, conn: Connection, source: str) -> int:
        found = conn.execute(
            sa.select(analytics_offsets.c.position).where(analytics_offsets.c.source == source)
        ).scalar()
        return int(found or 0)

    def move(self, conn: Connection, source: str, position: int) -> None:
        updated = conn.execute(
            analytics_offsets.update().where(analytics_offsets.c.source == source).values(position=position)
        )
        if not updated.rowcount:
            conn.execute(analytics_offsets.insert().values(source=source, position=position))

    # --- reading the facts back -------------------------------------------------------------

    def event_count(self) -> int:
        with self.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(analytics_events)).scalar())

    def facts(self, period: Period) -> dict[str, Any]:
        """The inputs of `compute_kpis` for `period` (without `now`, `zone`, `active_customers`)."""
        start, until = to_db_time(period.start), to_db_time(period.end + FCR_WINDOW)
        s = analytics_sessions.c
        with self.connect() as conn:
            # Plain columns, datetimes parsed here: SQLAlchemy's SQLite datetime parsing (a regex
            # per value) took most of a 100,000-session week's reading time.
            columns = [s.session_id, s.conversation_id, s.customer_key, s.channel, s.country]
            moments = [sa.type_coerce(s.started_at, sa.String), sa.type_coerce(s.ended_at, sa.String)]
            rest = [s.intent, s.customer_turns, s.fallback_turns, s.clarification_turns]
            flags = [s.last_turn_fell_back, s.handed_over]
            sessions = [
                SessionFacts(
                    *row[:5], _moment(row[5]), _moment(row[6]), *row[7:11], bool(row[11]), bool(row[12])
                )
                for row in conn.execute(
                    sa.select(*columns, *moments, *rest, *flags).where(
                        s.started_at >= start, s.started_at < until
                    )
                )
            ]
            first_seen = {
                key: from_db_time(first)
                for key, first in conn.execute(
                    sa.select(s.customer_key, sa.func.min(s.started_at))
                    .where(s.started_at < to_db_time(period.end))
                    .group_by(s.customer_key)
                )
            }
            h = analytics_handoffs.c
            handoff_facts = [
                HandoffFacts(
                    handoff_id=row.handoff_id,
                    conversation_id=row.conversation_id,
                    reason=row.reason,
                    agent=row.agent,
                    created_at=from_db_time(row.created_at),
                    accepted_at=from_db_time(row.accepted_at),
                    ended_at=from_db_time(row.ended_at),
                    satisfaction=row.satisfaction,
                )
                for row in conn.execute(
                    sa.select(analytics_handoffs).where(h.created_at >= start, h.created_at < until)
                )
            ]
            c = analytics_cases.c
            case_facts = [
                CaseFacts(
                    case_id=row.case_id,
                    conversation_id=row.conversation_id,
                    kind=row.kind,
                    opened_at=from_db_time(row.opened_at),
                    resolved_at=from_db_time(row.resolved_at),
                    satisfaction=row.satisfaction,
                )
                for row in conn.execute(
                    sa.select(analytics_cases).where(c.opened_at >= start, c.opened_at < until)
                )
            ]
            m = analytics_misunderstood.c
            misunderstood = [
                MisunderstoodFacts(
                    text=row.text,
                    at=from_db_time(row.at),
                    reasons=row.reasons,
                    conversation_id=row.conversation_id,
                )
                for row in conn.execute(
                    sa.select(m.text, m.at, m.reasons, m.conversation_id).where(
                        m.at >= start, m.at < to_db_time(period.end)
                    )
                )
            ]
            f = analytics_feedback.c
            feedback = [
                FeedbackFacts(
                    conversation_id=row.conversation_id,
                    at=from_db_time(row.at),
                    flow=row.flow,
                    useful=bool(row.useful),
                    experiment=row.experiment,
                    variant=row.variant,
                )
                for row in conn.execute(sa.select(analytics_feedback).where(f.at >= start, f.at < until))
            ]
            x = analytics_exposures.c
            exposures = [
                ExposureFacts(row.conversation_id, from_db_time(row.at), row.experiment, row.variant)
                for row in conn.execute(
                    sa.select(x.conversation_id, x.at, x.experiment, x.variant).where(
                        x.at >= start, x.at < until
                    )
                )
            ]
            a = analytics_notifications.c
            sent = [
                NotificationFacts(
                    notification_id=row.notification_id,
                    kind=row.kind,
                    channel=row.channel,
                    outcome=row.outcome,
                    finished_at=from_db_time(row.finished_at),
                    link_expires_at=from_db_time(row.link_expires_at),
                    quiet_hours=bool(row.quiet_hours),
                    daily_cap=bool(row.daily_cap),
                    opted_out_at=from_db_time(row.opted_out_at),
                    customer_key=row.customer_key,
                )
                for row in conn.execute(
                    sa.select(analytics_notifications).where(
                        a.finished_at >= start, a.finished_at < to_db_time(period.end)
                    )
                )
            ]
            t = analytics_link_taps.c
            linked = [item.notification_id for item in sent if item.link_expires_at is not None]
            taps = [
                TapFacts(row.notification_id, from_db_time(row.at), row.conversation_id)
                for index in range(0, len(linked), _KEY_CHUNK)
                for row in conn.execute(
                    sa.select(t.notification_id, t.at, t.conversation_id).where(
                        t.notification_id.in_(linked[index : index + _KEY_CHUNK])
                    )
                )
            ]
        return {
            "sessions": sessions,
            "first_seen": first_seen,
            "handoffs": handoff_facts,
            "cases": case_facts,
            "misunderstood": misunderstood,
            "feedback": feedback,
            "exposures": exposures,
            "notifications": sent,
            "link_taps": taps,
        }

    def dimension_values(self, period: Period) -> dict[str, list[str]]:
        """The intents and countries of the sessions started in `period`: the choices of the
        dashboard's filters (an intent-less session's intent is NO_INTENT)."""
        s = analytics_sessions.c
        within = (s.started_at >= to_db_time(period.start), s.started_at < to_db_time(period.end))
        with self.connect() as conn:
            intents = conn.execute(sa.select(sa.distinct(s.intent)).where(*within)).scalars().all()
            countries = conn.execute(sa.select(sa.distinct(s.country)).where(*within)).scalars().all()
        return {
            "intent": sorted(intent or NO_INTENT for intent in intents),
            "country": sorted(countries),
        }

    def active_customers(self, period: Period) -> int | None:
        """Customers with an order placed in the ACTIVE_CUSTOMER_WINDOW before the period's end,
        from the SQL CRM's `orders` table (None when that table is not in this database)."""
        with self.connect() as conn:
            if not sa.inspect(conn).has_table("orders"):
                return None
            return int(
                conn.execute(
                    sa.select(sa.func.count(sa.distinct(orders.c.customer_id))).where(
                        orders.c.placed_at >= to_db_time(period.end - ACTIVE_CUSTOMER_WINDOW),
                        orders.c.placed_at < to_db_time(period.end),
                    )
                ).scalar()
            )
