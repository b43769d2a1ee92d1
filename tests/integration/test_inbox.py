"""`make inbox` on a real tracker store, SQLite and PostgreSQL: real Rasa events saved through the
assistant's tracker store; what comes out, masked, and what stays in."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml
from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.constants import ACTION_LISTEN_NAME
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import (
    ActionExecuted,
    BotUttered,
    ConversationPaused,
    SessionStarted,
    UserUtteranceReverted,
    UserUttered,
)
from rasa.shared.core.trackers import DialogueStateTracker

from bot.inbox import PHONE_MASK, conversation_tag
from bot.masking import CARD_MASK
from bot.settings import Settings
from connectors.stores import SettingsTrackerStore, tracker_store_arguments
from tests.conftest import ANDRES_CO, CAMILA_CL, CLOCK, JULIAN_AR, LUCIA_MX, MARIANA_MX, NOW, ROSA_PE

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("inbox_command", ROOT / "scripts" / "inbox.py")
inbox_command = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = inbox_command  # its dataclasses look their module up
_spec.loader.exec_module(inbox_command)

OLD_CUSTOMER = "+5491155550000"  # wrote before the tracker store masked anything
CLARIFY_BUTTONS = [
    {"title": "Ver tu pedido", "payload": "/order_status"},
    {"title": "Cambiar la entrega", "payload": "/reschedule_delivery"},
]


class Conversation:
    """A conversation's events, one second apart from `start`: fixed moments, never the wall clock."""

    def __init__(self, start) -> None:
        self.moment = start.timestamp()
        self.events: list = [SessionStarted(timestamp=self._tick()), ActionExecuted(ACTION_LISTEN_NAME)]

    def _tick(self) -> float:
        self.moment += 1
        return self.moment

    def says(
        self, text: str, intent: str, confidence: float = 0.95, ranking=None, **metadata
    ) -> Conversation:
        ranking = ranking or [{"name": intent, "confidence": confidence}]
        parse_data = {"text": text, "intent": {"name": intent, "confidence": confidence}}
        parse_data |= {"intent_ranking": ranking, "entities": []}
        self.events.append(
            UserUttered(
                text, parse_data["intent"], [], parse_data, timestamp=self._tick(), metadata=metadata or None
            )
        )
        return self

    def not_understood(self, text: str, likeliest: list[tuple[str, float]]) -> Conversation:
        ranking = [{"name": "nlu_fallback", "confidence": 0.4}]
        ranking += [{"name": name, "confidence": value} for name, value in likeliest]
        return self.says(text, "nlu_fallback", 0.4, ranking)

    def runs(self, action: str, reply: str | None = None, buttons=None, response: str | None = None):
        self.events.append(ActionExecuted(action, timestamp=self._tick()))
        if reply is not None:
            metadata = {"utter_action": response} if response else {}
            data = {"buttons": buttons} if buttons else {}
            self.events.append(BotUttered(reply, data, metadata, timestamp=self._tick()))
        return self

    def listens(self) -> Conversation:
        self.events.append(ActionExecuted(ACTION_LISTEN_NAME, timestamp=self._tick()))
        return self

    def picks_by_number(self, number: str, payload: str) -> Conversation:
        """ "2" after the options: action_pick_option takes it back and sends the payload."""
        self.says(number, "inform").runs("action_pick_option")
        self.events += [UserUtteranceReverted(timestamp=self._tick()), ActionExecuted(ACTION_LISTEN_NAME)]
        return self.says(payload, payload[1:], 1.0)

    def add(self, *events) -> Conversation:
        self.events += list(events)
        return self


@pytest.fixture
def tracker_store(store):
    """The assistant's tracker store on the test database, its events table empty."""
    url = store.engine.url.render_as_string(hide_password=False)
    settings = Settings.from_env({"BOT_ENV": "development", "DATABASE_URL": url})
    trackers = SettingsTrackerStore(domain=Domain.empty(), settings=settings)
    with trackers.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM events"))
    yield trackers, settings
    with trackers.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM events"))
    trackers.engine.dispose()


def save(trackers, sender: str, conversation: Conversation) -> None:
    asyncio.run(trackers.save(DialogueStateTracker.from_events(sender, conversation.events)))


def week_of_conversations(trackers, settings) -> None:
    start = NOW - timedelta(days=2)
    # A clarified turn with a pick ("2"), then an ordinary turn that must stay in.
    save(
        trackers,
        MARIANA_MX,
        Conversation(start)
        .not_understood("che y lo mío pa cuándo", [("order_status", 0.38), ("reschedule_delivery", 0.31)])
        .runs("action_clarify", "¿Quisiste decir…?", CLARIFY_BUTTONS, "utter_clarify")
        .listens()
        .picks_by_number("2", "/reschedule_delivery")
        .runs("reschedule_form")
        .listens()
        .says("gracias", "thank")
        .runs("utter_thank", "¡De nada!")
        .listens(),
    )
    # A fallback that no option answered, written twice by two customers (once shouting).
    for sender, text in (
        (JULIAN_AR, "ke onda con la platita del gobierno"),
        (ANDRES_CO, "KE ONDA con la platita del gobierno!!"),
    ):
        save(
            trackers,
            sender,
            Conversation(start + timedelta(hours=1))
            .says(text, "make_payment", 0.22, [{"name": "make_payment", "confidence": 0.22}])
            .runs("action_default_fallback", "No te entendí")
            .listens(),
        )
    # A confident misroute, then a request for a person: the first message preceded a handoff.
    save(
        trackers,
        ROSA_PE,
        Conversation(start + timedelta(hours=2))
        .says("me cobraron dos veces la compra", "make_payment", 0.94)
        .runs("verification_form")
        .listens()
        .says("quiero hablar con una persona", "human_handoff", 0.99)
        .runs("action_handoff", "Te paso con alguien del equipo")
        .add(ConversationPaused())
        .listens()
        .says("hola? sigue ahí alguien?", "greet"),  # for the agent, while the bot is paused
    )
    # Angry wording escalated by the channel (/human_handoff with the original text).
    save(
        trackers,
        CAMILA_CL,
        Conversation(start + timedelta(hours=3))
        .says("y el reembolso cómo va", "order_status", 0.94)
        .runs("action_order_status", "Tu pedido está en camino")
        .listens()
        .says("/human_handoff", "human_handoff", 1.0, handoff_reason="angry", original_text="ESTO ES UN ROBO")
        .runs("action_handoff", "Te paso con alguien del equipo")
        .listens(),
    )
    # Card data that reached Rasa another way (its HTTP API): the tracker store masks it.
    save(
        trackers,
        LUCIA_MX,
        Conversation(start + timedelta(hours=4))
        .not_understood(
            "mi tarjeta es 4111 1111 1111 1111 y no pasa, llamame al 33 1234 5678", [("make_payment", 0.3)]
        )
        .runs("action_clarify", "No te entendí", response="utter_default")
        .listens(),
    )
    # Written by Rasa's own SQL store, which masks nothing: the export masks it anyway.
    unmasked = SQLTrackerStore(domain=Domain.empty(), **tracker_store_arguments(settings.database_url))
    asyncio.run(
        unmasked.save(
            DialogueStateTracker.from_events(
                OLD_CUSTOMER,
                Conversation(start + timedelta(hours=5))
                .not_understood("pago con 5500 0000 0000 0004 ok?", [("make_payment", 0.35)])
                .runs("action_clarify", "No te entendí", response="utter_default")
                .listens()
                .events,
            )
        )
    )
    unmasked.engine.dispose()
    # Ten days ago: before the default window of seven days.
    save(
        trackers,
        "+525599999999",
        Conversation(NOW - timedelta(days=10))
        .not_understood("mensaje de hace diez dias", [("order_status", 0.3)])
        .runs("action_clarify", "No te entendí", response="utter_default")
        .listens(),
    )


def run_export(settings, tmp_path, since=None):
    out = tmp_path / "inbox" / "review.yml"
    lines: list[str] = []
    start = inbox_command.window_start(since, CLOCK, settings.bot_timezone)
    summary = inbox_command.export(settings, CLOCK, start, out, say=lines.append)
    return summary, out, lines


def by_text(path: Path) -> dict[str, dict]:
    return {item["text"]: item for item in yaml.safe_load(path.read_text())["messages"]}


def test_the_inbox_holds_what_fell_back_was_clarified_or_preceded_a_handoff(tracker_store, tmp_path):
    trackers, settings = tracker_store
    week_of_conversations(trackers, settings)
    summary, out, lines = run_export(settings, tmp_path)
    items = by_text(out)

    clarified = items["che y lo mío pa cuándo"]
    assert (clarified["why"], clarified["picked"]) == ("clarified", "reschedule_delivery")
    assert (clarified["predicted"], clarified["confidence"]) == ("order_status", 0.38)
    assert clarified["conversation"] == conversation_tag(MARIANA_MX)

    fallback = items["ke onda con la platita del gobierno"]
    assert (fallback["why"], fallback["count"], fallback["predicted"]) == ("fallback", 2, "make_payment")
    assert "picked" not in fallback

    assert items["me cobraron dos veces la compra"]["why"] == "before_handoff"
    assert items["me cobraron dos veces la compra"]["confidence"] == 0.94
    assert items["y el reembolso cómo va"]["why"] == "before_handoff"
    assert set(items) == {
        "che y lo mío pa cuándo",
        "ke onda con la platita del gobierno",
        "me cobraron dos veces la compra",
        "y el reembolso cómo va",
        f"mi tarjeta es {CARD_MASK} y no pasa, llamame al {PHONE_MASK}",
        f"pago con {CARD_MASK} ok?",
    }
    assert all(item["label"] is None for item in items.values())
    assert summary.by_reason == {"fallback": 3, "clarified": 1, "before_handoff": 2}
    assert (summary.texts, summary.occurrences) == (6, 7)
    assert lines[-2].startswith("==> 6 messages to review (7 times written")
    assert "3 fallback, 1 clarified, 2 before_handoff" in lines[-2]


def test_no_card_number_and_no_phone_number_reaches_the_file(tracker_store, tmp_path):
    trackers, settings = tracker_store
    week_of_conversations(trackers, settings)
    _, out, _ = run_export(settings, tmp_path)
    written = out.read_text()
    assert "4111" not in written and "5500" not in written and "1234 5678" not in written
    digits = re.sub(r"\D", "", written)
    phones = (MARIANA_MX, JULIAN_AR, ANDRES_CO, ROSA_PE, CAMILA_CL, LUCIA_MX, OLD_CUSTOMER)
    for phone in phones:
        assert phone[1:] not in digits and phone[-8:] not in digits
    tags = {item["conversation"] for item in by_text(out).values()}
    assert tags <= {conversation_tag(phone) for phone in phones} and len(tags) == 6


def test_since_widens_the_window_and_ordinary_turns_stay_out(tracker_store, tmp_path):
    trackers, settings = tracker_store
    week_of_conversations(trackers, settings)
    day = (NOW - timedelta(days=11)).date().isoformat()
    summary, out, _ = run_export(settings, tmp_path, since=day)
    items = by_text(out)
    assert "mensaje de hace diez dias" in items
    assert not {"gracias", "quiero hablar con una persona", "hola? sigue ahí alguien?", "2"} & set(items)
    assert summary.texts == 7


def test_exporting_again_keeps_the_designers_labels(tracker_store, tmp_path):
    trackers, settings = tracker_store
    week_of_conversations(trackers, settings)
    _, out, _ = run_export(settings, tmp_path)
    labelled = out.read_text().replace(
        "text: me cobraron dos veces la compra", "text: me cobraron dos veces la compra\n  skip: true", 1
    )
    document = yaml.safe_load(labelled)
    for item in document["messages"]:
        if item["text"] == "y el reembolso cómo va":
            item["label"] = "order_status"
    out.write_text(yaml.safe_dump(document, allow_unicode=True, sort_keys=False))
    summary, _, _ = run_export(settings, tmp_path)
    items = by_text(out)
    assert items["y el reembolso cómo va"]["label"] == "order_status"
    assert items["me cobraron dos veces la compra"].get("skip") is True
    assert summary.labels_kept == 2


def test_an_empty_store_gives_an_empty_inbox(tracker_store, tmp_path):
    _, settings = tracker_store
    summary, out, _ = run_export(settings, tmp_path)
    assert yaml.safe_load(out.read_text())["messages"] == []
    assert summary.texts == 0


def test_the_designers_loop_through_the_commands(tracker_store, tmp_path):
    """`make inbox` and `make accept` as a designer runs them: the database from DATABASE_URL,
    the window from the project's clock (moved to NOW for the test run), the labels back in."""
    trackers, settings = tracker_store
    week_of_conversations(trackers, settings)
    env = {**os.environ, "DATABASE_URL": settings.database_url, "BOT_ENV": "development"}
    out = tmp_path / "inbox" / "today.yml"
    python = str(ROOT / ".venv" / "bin" / "python")
    exported = subprocess.run(
        [python, "scripts/inbox.py", "--out", str(out)], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert exported.returncode == 0, exported.stderr
    assert "3 fallback, 1 clarified, 2 before_handoff" in exported.stdout
    document = yaml.safe_load(out.read_text())
    labels = {"y el reembolso cómo va": "order_status", "che y lo mío pa cuándo": "reschedule_delivery"}
    for item in document["messages"]:
        if item["text"] in labels:
            item["label"] = labels[item["text"]]
        elif CARD_MASK in item["text"]:
            item["label"] = "make_payment"  # refused: card data never becomes an example
        else:
            item["skip"] = True
    out.write_text(yaml.safe_dump(document, allow_unicode=True, sort_keys=False))
    target = tmp_path / "nlu" / "inbox_accepted.yml"
    accept = [python, "scripts/accept.py", str(out), "--target", str(target)]
    accepted = subprocess.run(accept, cwd=ROOT, env=env, capture_output=True, text=True)
    assert accepted.returncode == 0, accepted.stderr
    assert "2 examples added" in accepted.stdout and "2 refused" in accepted.stdout
    again = subprocess.run(accept, cwd=ROOT, env=env, capture_output=True, text=True)
    assert "0 examples added" in again.stdout and "2 already there" in again.stdout
    assert "- y el reembolso cómo va" in target.read_text()
