"""End to end: the stack `make run` starts writes every event to Rasa's SQL event broker in its
database, and the analytics consumer it supervises turns them into a session with its intent."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from bot.adapters.sql import SqlStore
from bot.analytics.schema import analytics_exposures, analytics_feedback, analytics_sessions
from bot.experiments import variant_index
from tests.conftest import MARIANA_MX
from tests.harness import is_response
from tests.stack_helpers import texts

pytestmark = pytest.mark.integration


def test_a_conversation_of_the_running_stack_reaches_analytics_through_the_sql_broker(stack):
    # A session of its own: other tests on this shared stack may have had a person in Mariana's,
    # and "¿Te sirvió?" is not asked in a session a person took part in (bot/feedback.py).
    stack.say(MARIANA_MX, "/session_start", command=True)
    replies = stack.say(MARIANA_MX, "hola, donde esta mi pedido?")
    assert "PED-1001" in texts(replies)
    # "¿Te sirvió?" follows the status, in the variant the customer is assigned (connectors/nlg.py
    # as endpoints.yml names it), and the tap on "Sí" is thanked.
    variant = ("te_sirvio", "resolvimos")[variant_index(MARIANA_MX, "pregunta_feedback", 2)]
    assert is_response(replies[-1]["text"], "utter_ask_feedback")
    assert [button["title"] for button in replies[-1]["buttons"]] == ["Sí", "No"]
    thanks = stack.say(MARIANA_MX, replies[-1]["buttons"][0]["payload"], command=True)
    assert is_response(texts(thanks), "utter_feedback_thanks")
    store = SqlStore(stack.database_url)

    def rows(table: sa.Table) -> list:
        with store.connect() as conn:
            return conn.execute(sa.select(table).where(table.c.conversation_id == MARIANA_MX)).all()

    def read_until(table: sa.Table, done, seconds: float = 30) -> list:
        """The consumer works in the background: read until `done` says so, or for `seconds`."""
        deadline = time.monotonic() + seconds
        while not done(found := rows(table)) and time.monotonic() < deadline:
            time.sleep(0.5)
        return found

    sessions = read_until(analytics_sessions, lambda found: any(s.intent == "order_status" for s in found))
    answers = read_until(analytics_feedback, bool)
    shown = rows(analytics_exposures)
    store.dispose()
    assert [(a.flow, a.useful, a.experiment, a.variant) for a in answers] == [
        ("order_status", True, "pregunta_feedback", variant)
    ]
    assert {(e.experiment, e.variant) for e in shown} == {("pregunta_feedback", variant)}
    assert sessions, "no session of the conversation reached analytics"
    assert "order_status" in {session.intent for session in sessions}
    assert all(session.customer_turns >= 1 for session in sessions if session.intent)
