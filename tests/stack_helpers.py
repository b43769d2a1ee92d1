"""Talking to the running stack (tests/conftest.py's `stack`) as its channels' clients do."""

from __future__ import annotations

import requests
import sqlalchemy as sa

from tests.conftest import PUBLIC_URL
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
