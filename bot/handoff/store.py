"""Handoffs, their messages, the desk deliveries, agents and satisfaction answers, in SQL.

Its own tables on the assistant's database (DATABASE_URL), made by the migrations like every
other table: handoffs (one per request, with the packet), handoff_messages (what was said after it),
handoff_deliveries (the durable queue for the external desk's webhook) and agents.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bot.adapters.sql import SqlStore, from_db_time, to_db_time
from bot.clock import Clock
from bot.masking import mask_sensitive

metadata = sa.MetaData()

handoffs = sa.Table(
    "handoffs",
    metadata,
    sa.Column("id", sa.String(16), primary_key=True),  # HO-XXXXXXXX
    sa.Column("conversation_id", sa.String(255), nullable=False, index=True),
    sa.Column("phone", sa.String(20)),
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("reason", sa.String(32), nullable=False),
    sa.Column("customer_name", sa.String(200)),
    # waiting → open (an agent took it) → handed_back | closed; or withdrawn by the customer
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("priority", sa.Integer, nullable=False, default=0),  # VIP customers first
    sa.Column("packet", sa.JSON, nullable=False),
    sa.Column("resume_form", sa.String(100)),  # the form the handoff interrupted
    sa.Column("agent", sa.String(64)),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("accepted_at", sa.DateTime),
    sa.Column("ended_at", sa.DateTime),
    sa.Column("resolution_note", sa.Text),
    sa.Column("satisfaction", sa.Integer),
    sa.Column("satisfaction_at", sa.DateTime),
)

handoff_messages = sa.Table(
    "handoff_messages",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("handoff_id", sa.ForeignKey("handoffs.id"), nullable=False, index=True),
    sa.Column("sender", sa.String(16), nullable=False),  # customer | agent | bot
    sa.Column("agent", sa.String(64)),
    sa.Column("text", sa.Text, nullable=False),  # masked before it is stored
    sa.Column("attachments", sa.JSON),
    sa.Column("at", sa.DateTime, nullable=False),
)

handoff_deliveries = sa.Table(
    "handoff_deliveries",
    metadata,
    sa.Column("handoff_id", sa.ForeignKey("handoffs.id"), primary_key=True),
    sa.Column("status", sa.String(16), nullable=False),  # pending | delivered
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("next_attempt_at", sa.DateTime, nullable=False),
    sa.Column("last_error", sa.String(500)),
    sa.Column("delivered_at", sa.DateTime),
)

agents = sa.Table(
    "agents",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("password_hash", sa.String(300), nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False),
    # Console sessions signed before this moment are refused: set by logging out and by a new
    # password, so a copied session cookie stops working at once, not when it expires.
    sa.Column("sessions_valid_after", sa.DateTime),
    # The console's last authenticated request of the agent (at most once a minute): who is
    # connected now, for the customers' wait estimate. Logging out clears it.
    sa.Column("last_seen_at", sa.DateTime),
    # What the agent may see beyond the queue: "agent" or "supervisor" (the KPI dashboard).
    sa.Column("role", sa.String(16), nullable=False, server_default="agent"),
)

ROLES = ("agent", "supervisor")
SUPERVISOR = "supervisor"

ACTIVE = ("waiting", "open")
ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"


def new_handoff_id() -> str:
    return "HO-" + "".join(secrets.choice(ALPHABET) for _ in range(8))


@dataclass(frozen=True)
class Handoff:
    id: str
    conversation_id: str
    phone: str | None
    channel: str
    reason: str
    customer_name: str | None
    status: str
    priority: int
    packet: dict[str, Any]
    resume_form: str | None
    agent: str | None
    created_at: datetime
    accepted_at: datetime | None
    ended_at: datetime | None
    resolution_note: str | None
    satisfaction: int | None

    @property
    def active(self) -> bool:
        return self.status in ACTIVE


@dataclass(frozen=True)
class HandoffMessage:
    id: int
    handoff_id: str
    sender: str
    agent: str | None
    text: str
    attachments: list[dict[str, str]]
    at: datetime


def _handoff(row: sa.engine.Row) -> Handoff:
    packet = row.packet if isinstance(row.packet, dict) else json.loads(row.packet)
    return Handoff(
        id=row.id,
        conversation_id=row.conversation_id,
        phone=row.phone,
        channel=row.channel,
        reason=row.reason,
        customer_name=row.customer_name,
        status=row.status,
        priority=row.priority,
        packet=packet,
        resume_form=row.resume_form,
        agent=row.agent,
        created_at=from_db_time(row.created_at),
        accepted_at=from_db_time(row.accepted_at),
        ended_at=from_db_time(row.ended_at),
        resolution_note=row.resolution_note,
        satisfaction=row.satisfaction,
    )


class HandoffStore:
    """Every read and write of handoffs; synchronous (callers in async code use a thread)."""

    def __init__(self, store: SqlStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    @property
    def sql(self) -> SqlStore:
        return self._store

    def drop_schema(self) -> None:
        with self._store.connect() as conn:
            metadata.drop_all(conn)

    @contextmanager
    def _connect(self) -> Iterator[Connection]:
        with self._store.connect() as conn:
            yield conn

    # --- handoffs ---------------------------------------------------------------------------

    def active_for(self, conversation_id: str) -> Handoff | None:
        """The conversation's handoff that is waiting for or talking to an agent, if any."""
        with self._connect() as conn:
            row = conn.execute(
                sa.select(handoffs)
                .where(handoffs.c.conversation_id == conversation_id, handoffs.c.status.in_(ACTIVE))
                .order_by(handoffs.c.created_at.desc())
            ).first()
        return _handoff(row) if row else None

    def latest_for(self, conversation_id: str) -> Handoff | None:
        with self._connect() as conn:
            row = conn.execute(
                sa.select(handoffs)
                .where(handoffs.c.conversation_id == conversation_id)
                .order_by(handoffs.c.created_at.desc())
            ).first()
        return _handoff(row) if row else None

    def earlier_for(self, handoff: Handoff, limit: int = 5) -> list[Handoff]:
        """The same customer's handoffs before `handoff` (by conversation or by phone number, so
        WhatsApp and SMS count together), newest first."""
        same_customer = handoffs.c.conversation_id == handoff.conversation_id
        if handoff.phone:
            same_customer = sa.or_(same_customer, handoffs.c.phone == handoff.phone)
        with self._connect() as conn:
            rows = conn.execute(
                sa.select(handoffs)
                .where(
                    same_customer,
                    handoffs.c.id != handoff.id,
                    handoffs.c.created_at < to_db_time(handoff.created_at),
                )
                .order_by(handoffs.c.created_at.desc())
                .limit(limit)
            ).all()
        return [_handoff(row) for row in rows]

    def get(self, handoff_id: str) -> Handoff | None:
        with self._connect() as conn:
            row = conn.execute(sa.select(handoffs).where(handoffs.c.id == handoff_id)).first()
        return _handoff(row) if row else None

    def waiting_count(self) -> int:
        with self._connect() as conn:
            return int(
                conn.execute(
                    sa.select(sa.func.count()).select_from(handoffs).where(handoffs.c.status == "waiting")
                ).scalar_one()
            )

    def create(
        self,
        *,
        handoff_id: str,
        conversation_id: str,
        phone: str | None,
        channel: str,
        reason: str,
        customer_name: str | None,
        packet: dict[str, Any],
        resume_form: str | None,
        priority: int = 0,
        deliver_to_desk: bool = False,
        now: datetime | None = None,
    ) -> Handoff:
        """Store a new waiting handoff, and its pending desk delivery in the same transaction."""
        moment = to_db_time(now or self._clock.now())
        with self._connect() as conn:
            conn.execute(
                handoffs.insert().values(
                    id=handoff_id, conversation_id=conversation_id, phone=phone, channel=channel,
                    reason=reason, customer_name=customer_name, status="waiting", priority=priority,
                    packet=packet, resume_form=resume_form, created_at=moment,
                )
            )  # fmt: skip
            if deliver_to_desk:
                conn.execute(
                    handoff_deliveries.insert().values(
                        handoff_id=handoff_id, status="pending", attempts=0, next_attempt_at=moment
                    )
                )
        found = self.get(handoff_id)
        assert found is not None
        return found

    def queue(self, statuses: tuple[str, ...] = ACTIVE) -> list[Handoff]:
        """Waiting and open handoffs, VIP first, then oldest first."""
        with self._connect() as conn:
            rows = conn.execute(
                sa.select(handoffs)
                .where(handoffs.c.status.in_(statuses))
                .order_by(handoffs.c.priority.desc(), handoffs.c.created_at)
            ).all()
        return [_handoff(row) for row in rows]

    def _transition(self, handoff_id: str, allowed: tuple[str, ...], **values: Any) -> bool:
        with self._connect() as conn:
            result = conn.execute(
                handoffs.update()
                .where(handoffs.c.id == handoff_id, handoffs.c.status.in_(allowed))
                .values(**values)
            )
        return result.rowcount == 1

    def accept(self, handoff_id: str, agent: str, now: datetime | None = None) -> bool:
        """An agent takes a waiting handoff; False if it is not waiting any more."""
        return self._transition(
            handoff_id,
            ("waiting",),
            status="open",
            agent=agent,
            accepted_at=to_db_time(now or self._clock.now()),
        )

    def end(self, handoff_id: str, status: str, note: str | None = None, now: datetime | None = None) -> bool:
        """handed_back, closed or withdrawn; only an active handoff ends, and only once."""
        assert status in ("handed_back", "closed", "withdrawn")
        values: dict[str, Any] = {"status": status, "ended_at": to_db_time(now or self._clock.now())}
        if note is not None:
            values["resolution_note"] = note
        if status == "closed":
            values["resume_form"] = None  # the matter is settled: the bot does not go back to it
        return self._transition(handoff_id, ACTIVE, **values)

    def record_satisfaction(self, handoff_id: str, score: int, now: datetime | None = None) -> bool:
        if not 1 <= score <= 5:
            raise ValueError(f"satisfaction {score} is not between 1 and 5")
        return self._transition(
            handoff_id,
            ("handed_back", "closed"),
            satisfaction=score,
            satisfaction_at=to_db_time(now or self._clock.now()),
        )

    # --- messages after the handoff ----------------------------------------------------------

    def add_message(
        self,
        handoff_id: str,
        sender: str,
        text: str,
        agent: str | None = None,
        attachments: list[dict[str, str]] | None = None,
        now: datetime | None = None,
    ) -> int:
        # Masked here too, whoever calls: this table is kept and shown (an agent may type a card).
        text = mask_sensitive(text or "")
        with self._connect() as conn:
            result = conn.execute(
                handoff_messages.insert().values(
                    handoff_id=handoff_id, sender=sender, agent=agent, text=text,
                    attachments=attachments or [], at=to_db_time(now or self._clock.now()),
                )
            )  # fmt: skip
            return int(result.inserted_primary_key[0])

    def messages(self, handoff_id: str, after_id: int = 0) -> list[HandoffMessage]:
        with self._connect() as conn:
            rows = conn.execute(
                sa.select(handoff_messages)
                .where(handoff_messages.c.handoff_id == handoff_id, handoff_messages.c.id > after_id)
                .order_by(handoff_messages.c.id)
            ).all()
        return [
            HandoffMessage(
                id=row.id, handoff_id=row.handoff_id, sender=row.sender, agent=row.agent, text=row.text,
                attachments=list(row.attachments or []), at=from_db_time(row.at),
            )
            for row in rows
        ]  # fmt: skip

    # --- desk deliveries (the durable outbox of the webhook) ---------------------------------

    def claim_due_deliveries(
        self, now: datetime | None = None, lease: timedelta = timedelta(seconds=60)
    ) -> list[str]:
        """Handoff ids whose desk delivery is due, each leased so no other process sends it too."""
        moment = now or self._clock.now()
        claimed: list[str] = []
        with self._connect() as conn:
            due = conn.execute(
                sa.select(handoff_deliveries.c.handoff_id, handoff_deliveries.c.next_attempt_at).where(
                    handoff_deliveries.c.status == "pending",
                    handoff_deliveries.c.next_attempt_at <= to_db_time(moment),
                )
            ).all()
        for row in due:
            with self._connect() as conn:
                result = conn.execute(
                    handoff_deliveries.update()
                    .where(
                        handoff_deliveries.c.handoff_id == row.handoff_id,
                        handoff_deliveries.c.status == "pending",
                        handoff_deliveries.c.next_attempt_at == row.next_attempt_at,
                    )
                    .values(next_attempt_at=to_db_time(moment + lease))
                )
            if result.rowcount == 1:
                claimed.append(row.handoff_id)
        return claimed

    def delivery(self, handoff_id: str) -> dict[str, Any] | None:
        with self._connect() as conn:
            row = conn.execute(
                sa.select(handoff_deliveries).where(handoff_deliveries.c.handoff_id == handoff_id)
            ).first()
        return dict(row._mapping) if row else None

    def delivered(self, handoff_id: str, now: datetime | None = None) -> None:
        with self._connect() as conn:
            conn.execute(
                handoff_deliveries.update()
                .where(handoff_deliveries.c.handoff_id == handoff_id)
                .values(
                    status="delivered",
                    attempts=handoff_deliveries.c.attempts + 1,
                    delivered_at=to_db_time(now or self._clock.now()),
                    last_error=None,
                )
            )

    def delivery_failed(self, handoff_id: str, error: str, retry_at: datetime) -> None:
        with self._connect() as conn:
            conn.execute(
                handoff_deliveries.update()
                .where(handoff_deliveries.c.handoff_id == handoff_id)
                .values(
                    attempts=handoff_deliveries.c.attempts + 1,
                    next_attempt_at=to_db_time(retry_at),
                    last_error=error[:500],
                )
            )

    # --- agents -------------------------------------------------------------------------------

    def save_agent(self, name: str, password_hash: str, now: datetime | None = None) -> None:
        """Create the agent, or set a new password for an existing one."""
        with self._connect() as conn:
            exists = conn.execute(sa.select(agents.c.name).where(agents.c.name == name)).first()
            if exists:  # a new password ends the sessions opened with the old one
                conn.execute(
                    agents.update()
                    .where(agents.c.name == name)
                    .values(
                        password_hash=password_hash, sessions_valid_after=to_db_time(now or self._clock.now())
                    )
                )
            else:
                conn.execute(
                    agents.insert().values(
                        name=name,
                        password_hash=password_hash,
                        created_at=to_db_time(now or self._clock.now()),
                    )
                )

    def end_agent_sessions(self, name: str, now: datetime | None = None) -> None:
        """Refuse every console session of `name` signed until now (logging out)."""
        with self._connect() as conn:
            moment = to_db_time(now or self._clock.now())
            conn.execute(
                agents.update()
                .where(agents.c.name == name)
                .values(sessions_valid_after=moment, last_seen_at=None)
            )

    def agent_seen(self, name: str, now: datetime) -> None:
        """The agent's console made an authenticated request at `now`."""
        with self._connect() as conn:
            conn.execute(agents.update().where(agents.c.name == name).values(last_seen_at=to_db_time(now)))

    def agents_connected(self, since: datetime) -> int:
        """How many agents' consoles made an authenticated request at or after `since`."""
        with self._connect() as conn:
            return int(
                conn.execute(
                    sa.select(sa.func.count())
                    .select_from(agents)
                    .where(agents.c.last_seen_at >= to_db_time(since))
                ).scalar_one()
            )

    def agent_session_valid(self, name: str, signed_at: datetime) -> bool:
        """Whether a session of `name` signed at `signed_at` may still be used: the agent
        exists and has not logged out (or changed password) since."""
        return self.agent_session_role(name, signed_at) is not None

    def agent_session_role(self, name: str, signed_at: datetime) -> str | None:
        """The role of `name` when a session signed at `signed_at` may still be used, else None:
        read on every request, so a supervisor made an agent again loses the dashboard at once."""
        with self._connect() as conn:
            row = conn.execute(
                sa.select(agents.c.sessions_valid_after, agents.c.role).where(agents.c.name == name)
            ).first()
        if row is None:
            return None
        valid_after = from_db_time(row.sessions_valid_after)
        return row.role if valid_after is None or signed_at > valid_after else None

    def agent_exists(self, name: str) -> bool:
        with self._connect() as conn:
            return conn.execute(sa.select(agents.c.name).where(agents.c.name == name)).first() is not None

    def set_agent_role(self, name: str, role: str) -> bool:
        """Give the existing agent `name` the role; False when there is no such agent."""
        if role not in ROLES:
            raise ValueError(f"role {role!r}: use one of {', '.join(ROLES)}")
        with self._connect() as conn:
            return conn.execute(agents.update().where(agents.c.name == name).values(role=role)).rowcount == 1

    def agent_names(self) -> list[str]:
        """Every agent's login, alphabetically (whom a case can be assigned to)."""
        with self._connect() as conn:
            return list(conn.execute(sa.select(agents.c.name).order_by(agents.c.name)).scalars())

    def agent_password_hash(self, name: str) -> str | None:
        with self._connect() as conn:
            row = conn.execute(sa.select(agents.c.password_hash).where(agents.c.name == name)).first()
        return row.password_hash if row else None
