"""Talking to the running stack (tests/conftest.py's `stack`) as its channels' clients do."""

from __future__ import annotations

import json
import time
from datetime import datetime

import requests
import sqlalchemy as sa

from bot.notifications.signature import signed_headers
from tests.conftest import PUBLIC_URL, STACK_NOTIFY_SECRET
from tests.fake_twilio import inbound_form

WEBHOOK = "/webhooks/twilio/webhook"
STATUS = "/webhooks/twilio/status"


def post(stack, fake, path: str, form: dict[str, str], signature: str | None = "sign") -> requests.Response:
    headers = {}
    if signature == "sign":
        headers["X-Twilio-Signature"] = fake.sign(PUBLIC_URL + path, form)
    elif signature is not None:
        headers["X-Twilio-Signature"] = signature
    return requests.post(f"{stack.base}{path}", data=form, headers=headers, timeout=10)


def write(stack, fake, phone: str, body: str, channel: str = "whatsapp", **extra: str) -> str:
    """Send a signed inbound message; return its MessageSid."""
    form = inbound_form(phone, body, channel, **extra)
    reply = post(stack, fake, WEBHOOK, form)
    assert reply.status_code == 204, reply.text
    assert reply.text == ""  # no TwiML for WhatsApp to show
    return form["MessageSid"]


def texts(messages: list[dict]) -> str:
    return "\n".join(message.get("text", "") for message in messages)


def events_table(stack) -> str:
    engine = sa.create_engine(stack.database_url, future=True)
    try:
        with engine.begin() as conn:
            return "\n".join(row[0] for row in conn.execute(sa.text("SELECT data FROM events")))
    finally:
        engine.dispose()


def until(fake, phone: str, wanted, after: int, timeout_s: float = 30):
    """The first message to `phone` after the first `after` whose body is `wanted`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for message in fake.messages_to(phone)[after:]:
            if message.body and wanted(message.body):
                return message
        time.sleep(0.2)
    raise AssertionError(f"no such message to {phone}: {[m.body for m in fake.messages_to(phone)]}")


def post_event(stack, payload: dict) -> requests.Response:
    """POST a notification event, signed as the CRM/ERP signs it, to the stack's intake (which
    may still be starting)."""
    body = json.dumps(payload)
    url = f"http://127.0.0.1:{stack.notify_port}/events"
    deadline = time.monotonic() + 60
    while True:
        try:
            headers = {
                "Content-Type": "application/json",
                **signed_headers(body.encode(), STACK_NOTIFY_SECRET, datetime.now().astimezone()),
            }
            return requests.post(url, data=body, headers=headers, timeout=5)
        except requests.ConnectionError:
            assert time.monotonic() < deadline, "the notification intake did not start"
            time.sleep(0.5)
