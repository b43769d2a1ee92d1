"""The analytics tables: events as the broker delivered them (trimmed, masked), the sessions built
from them, the misunderstood messages, and copies of the handoffs and cases the KPIs read.

Every row is keyed by an identity the source gives (an event's digest, a handoff's or a case's
ID), so reading the same input twice changes nothing: the consumer may redeliver at will.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

# One row per conversation event, keyed by its identity (bot.analytics.events.event_key).
analytics_events = sa.Table(
    "analytics_events",
    metadata,
    sa.Column("event_key", sa.String(64), primary_key=True),
    sa.Column("conversation_id", sa.String(255), nullable=False, index=True),
    sa.Column("at", sa.Float, nullable=False),  # Rasa's timestamp: seconds since the epoch
    sa.Column("kind", sa.String(32), nullable=False),  # Rasa's event type: user, action, bot, ...
    sa.Column("body", sa.JSON, nullable=False),  # the fields sessions need, texts masked
    sa.Column("received_at", sa.DateTime, nullable=False),
)

# One row per session of a conversation with at least one event (rebuilt from analytics_events).
analytics_sessions = sa.Table(
    "analytics_sessions",
    metadata,
    sa.Column("session_id", sa.String(32), primary_key=True),
    sa.Column("conversation_id", sa.String(255), nullable=False, index=True),
    sa.Column("customer_key", sa.String(32), nullable=False, index=True),  # a digest of the phone
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("country", sa.String(2), nullable=False),
    sa.Column("started_at", sa.DateTime, nullable=False, index=True),
    sa.Column("ended_at", sa.DateTime, nullable=False),
    sa.Column("intent", sa.String(64)),  # the first task intent of the session, if any
    sa.Column("customer_turns", sa.Integer, nullable=False),
    sa.Column("fallback_turns", sa.Integer, nullable=False),
    sa.Column("clarification_turns", sa.Integer, nullable=False),
    sa.Column("last_turn_fell_back", sa.Boolean, nullable=False),
    sa.Column("handed_over", sa.Boolean, nullable=False),  # action_handoff ran in the session
)

# The customer messages the assistant misunderstood (bot.inbox's rules), masked.
analytics_misunderstood = sa.Table(
    "analytics_misunderstood",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("conversation_id", sa.String(255), nullable=False, index=True),
    sa.Column("at", sa.DateTime, nullable=False, index=True),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("reasons", sa.String(64), nullable=False),  # comma-separated: fallback, clarified, ...
    sa.Column("predicted", sa.String(100)),
)

# The handoffs as the console left them (copied from `handoffs`, upserted by ID).
analytics_handoffs = sa.Table(
    "analytics_handoffs",
    metadata,
    sa.Column("handoff_id", sa.String(16), primary_key=True),
    sa.Column("conversation_id", sa.String(255), nullable=False, index=True),
    sa.Column("reason", sa.String(32), nullable=False),
    sa.Column("agent", sa.String(64)),
    sa.Column("created_at", sa.DateTime, nullable=False, index=True),
    sa.Column("accepted_at", sa.DateTime),
    sa.Column("ended_at", sa.DateTime),
    sa.Column("satisfaction", sa.Integer),
)

# The cases (copied from `cases`); resolved_at: when a case was first seen not open.
analytics_cases = sa.Table(
    "analytics_cases",
    metadata,
    sa.Column("case_id", sa.String(16), primary_key=True),
    sa.Column("conversation_id", sa.String(255), nullable=False, index=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("opened_at", sa.DateTime, nullable=False, index=True),
    sa.Column("resolved_at", sa.DateTime),
    sa.Column("satisfaction", sa.Integer),  # the customer's 1-5 once the case was closed
)

# The "¿Te sirvió?" answers (bot/analytics/feedback.py), rebuilt from analytics_events like the
# sessions: the flow the question rated, yes or no, and the question's A/B variant if it had one.
analytics_feedback = sa.Table(
    "analytics_feedback",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("conversation_id", sa.String(255), nullable=False, index=True),
    sa.Column("at", sa.DateTime, nullable=False, index=True),
    sa.Column("flow", sa.String(64), nullable=False),  # order_status, make_payment, kb:<article>...
    sa.Column("useful", sa.Boolean, nullable=False),
    sa.Column("experiment", sa.String(64)),
    sa.Column("variant", sa.String(64)),
)

# Every response of an A/B experiment shown (the bot event's `experiment` and `variant`).
analytics_exposures = sa.Table(
    "analytics_exposures",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("conversation_id", sa.String(255), nullable=False, index=True),
    sa.Column("at", sa.DateTime, nullable=False, index=True),
    sa.Column("experiment", sa.String(64), nullable=False),
    sa.Column("variant", sa.String(64), nullable=False),
)

# The notifications as the worker finished them (copied from `notifications`, upserted by ID):
# what became of each (`outcome`), by kind and channel, whether quiet hours or the daily cap
# delayed it, when the first opt-out from its number followed it (within NOTIFICATION_WINDOW).
analytics_notifications = sa.Table(
    "analytics_notifications",
    metadata,
    sa.Column("notification_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("channel", sa.String(16), nullable=False),  # whatsapp | sms | "" (never got one)
    # sent | held | refused_consent | opted_out | failed | skipped (no rule, expired, unknown...)
    sa.Column("outcome", sa.String(24), nullable=False),
    sa.Column("customer_key", sa.String(32), nullable=False),  # "" when no number was known
    sa.Column("finished_at", sa.DateTime, nullable=False, index=True),
    sa.Column("link_expires_at", sa.DateTime),  # it offered a deep link alive until then
    sa.Column("quiet_hours", sa.Boolean, nullable=False),  # deferred by quiet hours at least once
    sa.Column("daily_cap", sa.Boolean, nullable=False),  # deferred by the daily cap at least once
    sa.Column("opted_out_at", sa.DateTime),
)

# Every live deep link a customer opened (the user event's metadata `notification`), rebuilt
# from analytics_events like the sessions.
analytics_link_taps = sa.Table(
    "analytics_link_taps",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("conversation_id", sa.String(255), nullable=False, index=True),
    sa.Column("notification_id", sa.Integer, nullable=False, index=True),
    sa.Column("at", sa.DateTime, nullable=False),
)

# How far a consumer has read a source it reads in order (the SQL event broker's table).
analytics_offsets = sa.Table(
    "analytics_offsets",
    metadata,
    sa.Column("source", sa.String(64), primary_key=True),
    sa.Column("position", sa.BigInteger, nullable=False),
)

# The KPI alerts that fired (bot/analytics/alerts.py): one per rule, subject and ISO week, with
# its delivery to ALERT_WEBHOOK_URL (status pending → delivered | failed | acknowledged before it
# was sent; unsent: no webhook).
kpi_alerts = sa.Table(
    "kpi_alerts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("rule", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("subject", sa.String(64), nullable=False),  # the intent, or "" for all sessions
    sa.Column("week", sa.String(10), nullable=False),  # 2026-W48
    sa.Column("period_start", sa.DateTime, nullable=False),
    sa.Column("period_end", sa.DateTime, nullable=False),
    sa.Column("value", sa.Float, nullable=False),
    sa.Column("previous", sa.Float),
    sa.Column("threshold", sa.Float, nullable=False),
    sa.Column("volume", sa.Integer, nullable=False),
    sa.Column("fired_at", sa.DateTime, nullable=False, index=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("next_attempt_at", sa.DateTime),
    sa.Column("locked_until", sa.DateTime),
    sa.Column("last_error", sa.String(500)),
    sa.Column("delivered_at", sa.DateTime),
    # A supervisor acknowledged it from the console (0023): it leaves the list, and its webhook,
    # if not sent yet, is not sent (status acknowledged).
    sa.Column("acknowledged_by", sa.String(64)),
    sa.Column("acknowledged_at", sa.DateTime),
    sa.UniqueConstraint("rule", "subject", "week", name="uq_kpi_alerts_once"),
)
