"""The analytics consumer's steps, source by source: plain functions over the analytics store.

The SQL source is Rasa's SQL event broker's table in the assistant's database: rows are read in
`id` order from the position the consumer reached, recorded, and the position moved, all in one
transaction, so a consumer that dies re-reads at most the batch it had not committed (and
recording is idempotent anyway). The RabbitMQ source is connectors/analytics_consumer.py.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta

import sqlalchemy as sa

from bot.analytics.store import AnalyticsStore

log = logging.getLogger(__name__)

# Rasa's SQL event broker's table (connectors/event_broker.py): Rasa creates it, not the migrations.
BROKER_TABLE = "analyticsbroker_events"
SQL_SOURCE = "sql_broker"
# The handoffs and cases copied on each sync: those made this recently (a handoff ends, a case
# closes and a satisfaction answer arrives within days).
SYNC_WINDOW = timedelta(days=35)

# Its shape, as Rasa 3.6 creates it (rasa/core/brokers/sql.py): for reading it, and for the demo.
broker_events = sa.Table(
    BROKER_TABLE,
    sa.MetaData(),
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("sender_id", sa.String(255)),
    sa.Column("data", sa.Text),
)


def read_sql_broker(analytics: AnalyticsStore, now: datetime, batch: int = 1000) -> int:
    """Record the next `batch` rows of the SQL broker's table; how many rows were read (0: none
    left, or Rasa has not created the table yet)."""
    with analytics.connect() as conn:
        if not sa.inspect(conn).has_table(BROKER_TABLE):
            return 0
        position = analytics.position(conn, SQL_SOURCE)
        rows = conn.execute(
            sa.select(broker_events.c.id, broker_events.c.sender_id, broker_events.c.data)
            .where(broker_events.c.id > position)
            .order_by(broker_events.c.id)
            .limit(batch)
        ).all()
        if not rows:
            return 0
        events = []
        for row in rows:
            try:
                event = json.loads(row.data)
            except (TypeError, ValueError):
                log.warning("broker row %s is not JSON: skipped", row.id)
                continue
            event.setdefault("sender_id", row.sender_id)
            events.append(event)
        analytics.record(events, now, conn)
        analytics.move(conn, SQL_SOURCE, rows[-1].id)
        return len(rows)


def sync(analytics: AnalyticsStore, now: datetime) -> None:
    """Copy the recent handoffs and cases into the analytics tables."""
    analytics.sync_handoffs_and_cases(now - SYNC_WINDOW, now)
