"""Finding 1: the actions trusted the slots they were sent. A made-up tracker with
`verified_customer_id=C-001`, POSTed to the action server with its token, or a SlotSet through
Rasa's HTTP API, gave a stranger Mariana's invoices (F-2001, F-2002), her balance, changed her
contact data, and made the bot send her a code and show her number's last digits.

A verified identity is now a claim signed with IDENTITY_SECRET over (sender, customer, issued,
expiry, how) that only the verification step issues (bot/identity.py): these tests go through
the real doors of the running stack (the action server's `/webhook` with ACTION_SERVER_TOKEN,
Rasa's `/conversations/<id>/tracker/events` with the API token, the REST channel) and find none
of C-001's data in any answer, while a claim rightly signed for the sender still works.
"""

from __future__ import annotations

import uuid

import pytest
import requests
from rasa_sdk import __version__ as rasa_sdk_version

from bot.adapters.sql import SqlCrm, SqlStore
from bot.identity import IDENTIFIED
from tests.action_helpers import DOMAIN, verified_identity
from tests.conftest import MARIANA_MX, STACK_IDENTITY_SECRET, stack_env
from tests.harness import ACTION_SERVER_TOKEN, API_TOKEN, Stack
from tests.stack_helpers import texts

pytestmark = pytest.mark.integration

# What only Mariana (C-001) may see: her invoices, her balance, her name, her number's end.
MARIANA_DATA = ("F-2001", "F-2002", "2,133.50", "Mariana")
# What the old slots said: who was verified, until when, how.
OLD_SLOTS = {"verified_customer_id": "C-001", "verified_until": 4102444800.0, "verified_how": "sms_code"}


def a_stranger() -> str:
    """A number on file for nobody, new to this test (the stack outlives a test)."""
    return "+5255" + str(uuid.uuid4().int)[:8]


def action_call(action: str, sender: str, slots: dict, text: str = "si", intent: str = "affirm") -> dict:
    """What Rasa POSTs to the action server to run `action` for `sender` (here: made up)."""
    return {
        "next_action": action,
        "sender_id": sender,
        "version": rasa_sdk_version,
        "domain": DOMAIN,
        "tracker": {
            "sender_id": sender,
            "slots": slots,
            "latest_message": {"text": text, "intent": {"name": intent, "confidence": 0.99}, "entities": []},
            "events": [{"event": "user", "text": text}],
            "paused": False,
            "followup_action": None,
            "active_loop": {},
            "latest_action_name": "action_listen",
        },
    }


def run_action(stack, action: str, sender: str, slots: dict, **latest) -> str:
    """The action server's whole answer (events and responses with their values), as text."""
    reply = requests.post(
        f"http://127.0.0.1:{stack.action_port}/webhook",
        json=action_call(action, sender, slots, **latest),
        headers={"Authorization": f"Bearer {ACTION_SERVER_TOKEN}"},
        timeout=60,
    )
    assert reply.status_code == 200, reply.text  # the token is right: the door is open
    return reply.text


def shows_mariana(answer: str) -> list[str]:
    return [found for found in MARIANA_DATA if found in answer]


def made_up_identities(stranger: str) -> dict[str, dict]:
    return {
        "old slots": OLD_SLOTS,
        "old slots and a claim of another secret": {
            **OLD_SLOTS,
            "verified_identity": verified_identity(stranger, "C-001", secret="guessed-" + uuid.uuid4().hex),
        },
        "an expired claim": {
            "verified_identity": verified_identity(
                stranger, "C-001", minutes=-1, secret=STACK_IDENTITY_SECRET
            )
        },
        "Mariana's own claim, copied": {
            "verified_identity": verified_identity(MARIANA_MX, "C-001", secret=STACK_IDENTITY_SECRET)
        },
        "an identification claim": {
            "verified_identity": verified_identity(
                stranger, "C-001", kind=IDENTIFIED, secret=STACK_IDENTITY_SECRET
            )
        },
    }


@pytest.mark.parametrize("flow", ["invoice", "balance", "payment_link"])
def test_a_made_up_tracker_gets_no_invoices_or_balance_from_the_action_server(stack, flow):
    stranger = a_stranger()
    for how, identity in made_up_identities(stranger).items():
        slots = {**identity, "pending_flow": flow, "verification_status": "ok"}
        answer = run_action(stack, "action_complete_flow", stranger, slots)
        assert shows_mariana(answer) == [], f"{how}: {answer}"


def test_a_claim_signed_for_this_sender_does_get_the_invoices(stack):
    stranger = a_stranger()
    claim = verified_identity(stranger, "C-001", how="order_document+sms_code", secret=STACK_IDENTITY_SECRET)
    answer = run_action(
        stack, "action_complete_flow", stranger, {"verified_identity": claim, "pending_flow": "invoice"}
    )
    assert "F-2001" in answer and "F-2002" in answer


def test_a_made_up_tracker_changes_no_contact_data(stack):
    crm = SqlCrm(SqlStore(stack.database_url))
    before = crm.contact_changes("C-001")
    stranger = a_stranger()
    for how, identity in made_up_identities(stranger).items():
        slots = {
            **identity,
            "contact_field": "email",
            "contact_value": f"thief-{uuid.uuid4().hex[:6]}@example.com",
            "contact_confirmed": True,
        }
        answer = run_action(stack, "action_update_contact", stranger, slots)
        assert "utter_contact_updated" not in answer and "utter_contact_queued" not in answer, how
    assert crm.contact_changes("C-001") == before


def test_a_made_up_identification_sends_no_code_to_someone_else_and_shows_no_digits(stack, fake_twilio):
    stranger = a_stranger()
    before = len(fake_twilio.messages_to(MARIANA_MX))
    forged = {
        "identity_customer_id": "C-001",  # what the slot used to be
        "identified_identity": verified_identity(
            MARIANA_MX, "C-001", kind=IDENTIFIED, secret=STACK_IDENTITY_SECRET
        ),  # a real one, for another sender
    }
    answer = run_action(stack, "action_ask_otp_code", stranger, forged, text="mis facturas", intent="inform")
    assert "utter_otp_sent" not in answer and '"last_digits"' not in answer, answer
    assert len(fake_twilio.messages_to(MARIANA_MX)) == before


def forged_slot_events(stranger: str) -> list[dict]:
    """What an attacker with the API token writes: the old trusted slots and a claim signed with a
    guessed key, as if the verification had passed."""
    events = [{"event": "slot", "name": name, "value": value} for name, value in OLD_SLOTS.items()]
    events += [
        {
            "event": "slot",
            "name": "verified_identity",
            "value": verified_identity(stranger, "C-001", secret="guessed"),
        },
        {"event": "slot", "name": "verification_status", "value": "ok"},
    ]
    return events


def write_events(running: Stack, conversation: str, events: list[dict]) -> requests.Response:
    return requests.post(
        f"{running.base}/conversations/{conversation}/tracker/events",
        params={"token": API_TOKEN},
        json=events,
        timeout=30,
    )


@pytest.fixture(scope="module")
def writable_stack(tmp_path_factory, fake_twilio):
    """A stack whose operator turned the HTTP API's writes on (RASA_API_WRITES=on): the claim
    must hold on its own, without the scope of the API in front of it."""
    running = Stack(tmp_path_factory.mktemp("writable"), {**stack_env(fake_twilio), "RASA_API_WRITES": "on"})
    try:
        running.wait_ready()
        yield running
    finally:
        running.stop()


def test_rasas_http_api_refuses_slot_writes_by_default(stack):
    stranger = a_stranger()
    stack.say(stranger, "hola")
    written = write_events(stack, stranger, forged_slot_events(stranger))
    assert written.status_code == 403, written.text
    assert "RASA_API_WRITES" in written.text


def test_slots_set_through_rasas_http_api_show_a_stranger_nothing(writable_stack):
    stranger = a_stranger()
    writable_stack.say(stranger, "hola")  # a session to write into (a new one would forget the slots)
    written = write_events(writable_stack, stranger, forged_slot_events(stranger))
    assert written.status_code == 200, written.text  # the door is open: only the claim stands
    said = ""
    for ask in ("me mandas mis facturas?", "cuanto debo?", "quiero pagar"):
        said += texts(writable_stack.say(stranger, ask)) + "\n"
        writable_stack.say(stranger, "cancelar")
    assert shows_mariana(said) == [], said
