"""End to end: the stack `make run` starts writes every event to Rasa's SQL event broker in its
database, and the analytics consumer it supervises turns them into a session with its intent."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from bot.adapters.sql import SqlStore
from bot.analytics.schema import analytics_sessions
from tests.conftest import MARIANA_MX
from tests.stack_helpers import texts

pytestmark = pytest.mark.integration


def test_a_conversation_of_the_running_stack_reaches_analytics_through_the_sql_broker(stack):
    assert "PED-1001" in texts(stack.say(MARIANA_MX, "hola, donde esta mi pedido?"))
    store = SqlStore(stack.database_url)
    deadline = time.monotonic() + 30
    while True:
        with store.connect() as conn:
            sessions = conn.execute(
                sa.select(analytics_sessions).where(analytics_sessions.c.conversation_id == MARIANA_MX)
            ).all()
        if any(session.intent == "order_status" for session in sessions) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    store.dispose()
    assert sessions, "no session of the conversation reached analytics"
    assert "order_status" in {session.intent for session in sessions}
    assert all(session.customer_turns >= 1 for session in sessions if session.intent)
