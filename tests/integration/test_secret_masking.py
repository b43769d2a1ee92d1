"""Card data, one-time codes and document digits never reach the tracker store: the channels
turn card data into the card_data intent, and the store masks whatever still gets through."""

from __future__ import annotations

import asyncio
import json

import pytest
import sqlalchemy as sa
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActiveLoop, SlotSet, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker

from bot.masking import CARRIED_CARD_DIGITS, SECRET_MASK, screen_message
from bot.settings import Settings
from connectors.stores import SettingsTrackerStore

CARD = "4111 1111 1111 1111"


@pytest.mark.parametrize(
    "text", [f"mi tarjeta es {CARD}", "5500-0000-0000-0004 vence 12/27 cvv 123", "378282246310005"]
)
def test_a_message_with_card_data_becomes_the_card_data_intent(text):
    assert screen_message(text) == screen_message(text)  # pure
    screened = screen_message(text)
    assert (screened.text, screened.card_data) == ("/card_data", True)


@pytest.mark.parametrize(
    "text", ["mi pedido PED-1001", "llamame al +54 9 11 2345 6789", "482913", "cuanto debo?"]
)
def test_ordinary_messages_pass_unchanged(text):
    assert screen_message(text).text == text


def test_a_lone_security_code_right_after_a_card_is_refused_too():
    assert screen_message("123", after_card=True).card_data
    assert not screen_message("123").card_data


@pytest.fixture(params=["sqlite", "postgresql"])
def tracker_store(request, tmp_path, pg_url):
    url = f"sqlite:///{tmp_path / 'bot.db'}" if request.param == "sqlite" else pg_url
    store = SettingsTrackerStore(domain=Domain.empty(), settings=Settings.from_env({"DATABASE_URL": url}))
    with store.engine.begin() as conn:  # other modules' tests may have left conversations behind
        conn.execute(sa.text("DELETE FROM events"))
    yield store
    with store.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM events"))


def stored_rows(store) -> str:
    with store.engine.begin() as conn:
        return "\n".join(row[0] for row in conn.execute(sa.text("SELECT data FROM events ORDER BY id")))


def test_card_numbers_that_reach_rasa_another_way_are_masked_before_storing(tracker_store):
    events = [
        UserUttered(
            f"cobrame con la {CARD}", {"name": "make_payment"}, [{"entity": "amount", "value": CARD}]
        ),
        UserUttered("123", {"name": "inform"}),  # its security code, on its own
        UserUttered("hola", {"name": "greet"}),
    ]
    asyncio.run(tracker_store.save(DialogueStateTracker.from_events("+525512345678", events)))
    rows = stored_rows(tracker_store)
    assert CARD not in rows and "4111111111111111" not in rows
    assert "[tarjeta oculta]" in rows and "[cvv oculto]" in rows and "hola" in rows


def test_the_answer_to_the_code_question_is_stored_masked_with_its_slot(tracker_store):
    events = [
        UserUttered("cuanto debo", {"name": "check_balance"}),
        ActiveLoop("verification_form"),
        SlotSet("requested_slot", "otp_code"),
        UserUttered("el codigo es 482913", {"name": "inform"}, [{"entity": "order_id", "value": "482913"}]),
        SlotSet("otp_code", "482913"),
        SlotSet("otp_code", None),
        ActiveLoop(None),
        SlotSet("requested_slot", None),
        UserUttered("gracias 482913 no era", {"name": "thank"}),
    ]
    tracker = DialogueStateTracker.from_events("+525512345678", events)
    asyncio.run(tracker_store.save(tracker))
    rows = [json.loads(line) for line in stored_rows(tracker_store).splitlines()]
    texts = [row.get("text") for row in rows if row["event"] == "user"]
    assert texts == ["cuanto debo", SECRET_MASK, "gracias 482913 no era"]  # only the answer is masked
    answer = [row for row in rows if row["event"] == "user"][1]
    assert "482913" not in json.dumps(answer)
    slot_values = [row["value"] for row in rows if row["event"] == "slot" and row["name"] == "otp_code"]
    assert slot_values == [SECRET_MASK, None]


def test_later_saves_append_masked_events_only_once(tracker_store):
    tracker = DialogueStateTracker.from_events("+51987654321", [SlotSet("requested_slot", "otp_code")])
    asyncio.run(tracker_store.save(tracker))
    tracker.update(UserUttered("771204", {"name": "inform"}))
    asyncio.run(tracker_store.save(tracker))
    rows = stored_rows(tracker_store)
    assert "771204" not in rows and rows.count('"event": "user"') == 1 and SECRET_MASK in rows


def test_the_first_half_of_a_split_card_is_masked_in_its_stored_row_once_the_second_completes_it(
    tracker_store,
):
    sender = "+525512345678"
    first = UserUttered("mi tarjeta es 4111 1111", {"name": "inform"})
    tracker = DialogueStateTracker.from_events(sender, [UserUttered("hola", {"name": "greet"}), first])
    asyncio.run(tracker_store.save(tracker))
    assert "4111 1111" in stored_rows(tracker_store)
    tracker = asyncio.run(tracker_store.retrieve(sender))  # cached by the store now
    # The channel's decision for "1111 1111" said the previous message held 8 of the card's digits.
    tracker.update(UserUttered("/card_data", {"name": "card_data"}, metadata={CARRIED_CARD_DIGITS: 8}))
    asyncio.run(tracker_store.save(tracker))
    rows = stored_rows(tracker_store)
    assert "4111" not in rows and "mi tarjeta es [tarjeta oculta]" in rows and "hola" in rows
    again = asyncio.run(tracker_store.retrieve(sender))
    assert [event.text for event in again.events if isinstance(event, UserUttered)][1] == (
        "mi tarjeta es [tarjeta oculta]"
    )


def test_a_split_card_saved_in_one_go_is_masked_in_both_messages(tracker_store):
    events = [
        UserUttered("4111 1111", {"name": "inform"}),
        UserUttered("/card_data", {"name": "card_data"}, metadata={CARRIED_CARD_DIGITS: 8}),
    ]
    asyncio.run(tracker_store.save(DialogueStateTracker.from_events("+525512345670", events)))
    assert "4111" not in stored_rows(tracker_store)
