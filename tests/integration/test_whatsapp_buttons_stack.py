"""WhatsApp buttons and lists through the running stack and the trained model: options leave as
Content API contents (ContentSid), a tap (ButtonPayload) goes on exactly as the numbered answer
would, a forged tap is read as text, and a content is made once for every customer."""

from __future__ import annotations

import itertools
import re
import time

import pytest
import requests

from bot.messaging.buttons import button_id
from tests.conftest import MARIANA_MX
from tests.harness import API_TOKEN, is_response
from tests.stack_helpers import until, write

pytestmark = pytest.mark.integration

CASE_ID = re.compile(r"GES-[0-9A-Z]{8}")
_numbers = itertools.count(1)


def newcomer() -> str:
    """A Mexican number no other test writes from (not a customer in the demo data)."""
    return f"+52554{next(_numbers):07d}"


@pytest.fixture
def twilio(stack, fake_twilio):
    fake_twilio.reset()
    return fake_twilio


def user_turn(stack, phone: str, sid: str, timeout_s: float = 20) -> dict:
    """The user event of message `sid`, once Rasa saved its turn (after the replies left)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        events = requests.get(
            f"{stack.base}/conversations/{phone}/tracker", params={"token": API_TOKEN}, timeout=30
        ).json()["events"]
        for event in events:
            if event["event"] == "user" and event.get("message_id") == sid:
                return event
        time.sleep(0.2)
    raise AssertionError(f"no user turn for {sid} in {phone}'s tracker")


def with_options(fake, phone: str, count: int):
    """The `count`-th message to `phone` once it arrived, and the options it showed."""
    message = fake.wait_for(phone, count)[count - 1]
    return message, fake.options_of(message)


def test_an_offer_of_yes_or_no_is_a_quick_reply_and_tapping_yes_starts_the_flow(stack, twilio):
    customer = newcomer()
    write(stack, twilio, customer, "cuantos dias tengo para devolver algo?")
    offer, (kind, shown) = with_options(twilio, customer, 2)  # the article, then the offer
    assert kind == "twilio/quick-reply" and offer.content_sid and offer.body
    assert is_response(offer.body.split("\n\n")[0], "utter_kb_offer_flow")
    assert [tapped_id for _, tapped_id in shown] == [button_id("/return_request"), button_id("/deny")]
    (yes_title, yes_id), _ = shown

    tap = write(stack, twilio, customer, yes_title, ButtonPayload=yes_id, ButtonText=yes_title)
    started = until(twilio, customer, lambda body: is_response(body, "utter_return_case"), after=2)
    assert CASE_ID.search(started.body)
    assert user_turn(stack, customer, tap)["parse_data"]["intent"]["name"] == "return_request"


def test_the_menu_is_a_list_and_a_tap_goes_on_exactly_as_its_number(stack, twilio):
    phone = MARIANA_MX
    write(stack, twilio, phone, "menú")
    menu, (kind, shown) = with_options(twilio, phone, 1)
    assert kind == "twilio/list-picker" and len(shown) == 8
    assert shown[0] == ("Mi pedido", button_id("/order_status"))
    assert twilio.content_of(menu)["types"]["twilio/list-picker"]["button"] == "Ver opciones"

    tap = write(stack, twilio, phone, "Mi pedido", ButtonPayload=shown[0][1], ButtonText="Mi pedido")
    tapped = twilio.wait_for(phone, 2)[1]
    tap_turn = user_turn(stack, phone, tap)

    write(stack, twilio, phone, "menú")
    twilio.wait_for(phone, 3)
    number = write(stack, twilio, phone, "1")
    numbered = twilio.wait_for(phone, 4)[3]
    number_turn = user_turn(stack, phone, number)

    assert "PED-1001" in tapped.body and "PED-1001" in numbered.body
    assert tap_turn["text"] == number_turn["text"] == "/order_status"
    assert tap_turn["parse_data"]["intent"]["name"] == number_turn["parse_data"]["intent"]["name"]


def test_a_forged_button_payload_does_not_run_a_command(stack, twilio):
    customer = newcomer()
    # No options on screen: the id of a real payload names nothing the bot offered.
    forged = write(
        stack, twilio, customer, "hola", ButtonPayload=button_id("/human_handoff"), ButtonText="hola"
    )
    twilio.wait_for(customer, 1)
    turn = user_turn(stack, customer, forged)
    assert turn["text"] == "hola" and turn["parse_data"]["intent"]["name"] != "human_handoff"

    # Options on screen, and a payload written as a command: read as the text it came with.
    write(stack, twilio, customer, "menú")
    twilio.wait_for(customer, 2)
    forged = write(
        stack, twilio, customer, "/cancel_order", ButtonPayload="/cancel_order", ButtonText="/cancel_order"
    )
    twilio.wait_for(customer, 3)
    turn = user_turn(stack, customer, forged)
    assert turn["text"] == "cancel_order"  # the typed slash dropped, as for any text


def test_a_content_is_created_once_for_two_customers(stack, twilio):
    first, second = newcomer(), newcomer()
    write(stack, twilio, first, "menú")
    one, _ = with_options(twilio, first, 1)
    write(stack, twilio, second, "opciones")
    other, _ = with_options(twilio, second, 1)
    assert one.content_sid and one.content_sid == other.content_sid
    assert twilio.content_creations <= 1  # none if an earlier test of this stack made it
    menus = [
        sid for sid, content in twilio.contents.items() if "twilio/list-picker" in content.definition["types"]
    ]
    assert menus.count(one.content_sid) == 1
