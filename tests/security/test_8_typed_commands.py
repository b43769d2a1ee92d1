"""Finding 8: a customer could type "/intent{json}" and it reached Rasa's regex parser, which
skips NLU and escalation and can fake channel-only intents ("/handoff_returned", the console's
signal that an agent handed back; "/rate_handoff{...}", the satisfaction answer; "/restart").
Fixed on main by the previous session (inbound_rules.neutralise_command): these tests pass there
and guard against a regression, through the inbound decision, `screen_for_bot` and the REST
channel served for real in production mode (where `"command": true` is ignored).
"""

from __future__ import annotations

import uuid

import pytest
import requests
from sanic import Sanic

from bot.handoff.config import load_config
from bot.messaging.inbound import parse_inbound
from bot.messaging.inbound_rules import ConversationState, Route, decide, neutralise_command, screen_for_bot
from bot.messaging.memory import InProcessMemory
from connectors.rest import TokenRestInput
from tests.fake_twilio import inbound_form
from tests.security.conftest import serve

TYPED = [
    "/handoff_returned",
    '/rate_handoff{"rating": 5}',
    '/flow_feedback{"feedback_useful":"yes"}',  # the "¿Te sirvió?" buttons' payload
    "/restart",
    "  /human_handoff",
    "／handoff_returned",  # full-width slash
    "//restart",
    "/ /restart",
]
TOKEN = "t" * 32


def reads_as_a_command(text: str) -> bool:
    # Rasa strips the text and reads a leading "/" as /intent{entities} (RegexMessageHandler).
    return text.strip().startswith("/")


@pytest.mark.parametrize("text", TYPED)
def test_typed_commands_from_whatsapp_or_sms_reach_rasa_as_words(text):
    for channel in ("whatsapp", "sms"):
        message = parse_inbound(inbound_form("+525512345678", text, channel=channel), "MX")
        decision = decide(message, ConversationState(), load_config())
        assert decision.route is Route.TO_BOT and not reads_as_a_command(decision.text)
    assert not reads_as_a_command(neutralise_command(text))
    assert not reads_as_a_command(screen_for_bot(InProcessMemory(), "+525512345678", text))


def test_the_channels_own_payloads_still_reach_rasa_as_commands():
    # Card data is the channel's own intent: it must stay a command.
    assert screen_for_bot(InProcessMemory(), "+525512345678", "4111 1111 1111 1111") == "/card_data"


@pytest.mark.parametrize("text", TYPED)
def test_the_rest_channel_in_production_ignores_the_command_flag(text):
    channel = TokenRestInput(TOKEN, InProcessMemory(), allow_commands=False)
    reached: list[str] = []

    async def on_new_message(message) -> None:
        reached.append(message.text)

    app = Sanic(f"rest{uuid.uuid4().hex}")
    app.blueprint(channel.blueprint(on_new_message), url_prefix="/webhooks/rest")
    with serve(app) as port:
        answer = requests.post(
            f"http://127.0.0.1:{port}/webhooks/rest/webhook",
            json={"sender": "+525512345678", "message": text, "command": True},
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=10,
        )
    assert answer.status_code == 200
    [read] = reached
    assert not reads_as_a_command(read)
