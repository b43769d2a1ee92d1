"""End to end: the stack `make run` starts writes every event to Rasa's SQL event broker in its
database, and the analytics consumer's step turns them into a session with its intent."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from bot.adapters.sql import SqlStore
from bot.analytics.consumer import read_sql_broker
from bot.analytics.schema import analytics_sessions
from bot.analytics.store import AnalyticsStore
from tests.conftest import CLOCK, MARIANA_MX
from tests.stack_helpers import texts

pytestmark = pytest.mark.integration


def test_a_conversation_of_the_running_stack_reaches_analytics_through_the_sql_broker(stack):
    assert "PED-1001" in texts(stack.say(MARIANA_MX, "hola, donde esta mi pedido?"))
    store = SqlStore(stack.database_url)
    analytics = AnalyticsStore(store)
    while read_sql_broker(analytics, CLOCK.now()):
        pass
    with store.connect() as conn:
        sessions = conn.execute(
            sa.select(analytics_sessions).where(analytics_sessions.c.conversation_id == MARIANA_MX)
        ).all()
    store.dispose()
    assert sessions, "no session of the conversation reached analytics"
    assert "order_status" in {session.intent for session in sessions}
    assert all(session.customer_turns >= 1 for session in sessions if session.intent)
