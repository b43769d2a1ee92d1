"""The console's route into Rasa takes exactly what the console sends (connectors/console_bridge.py)."""

import pytest
from rasa.shared.core.events import ActionExecuted, BotUttered, ConversationPaused, ConversationResumed

from connectors.console_bridge import Refused, parse_events


def test_what_the_console_sends_is_taken():
    events = parse_events(
        [
            {"event": "bot", "text": "Hola, soy Ana", "metadata": {"agent": "ana"}},
            {"event": "pause"},
            {"event": "resume"},
            {"event": "action", "name": "action_listen"},
        ]
    )
    assert [type(event) for event in events] == [
        BotUttered,
        ConversationPaused,
        ConversationResumed,
        ActionExecuted,
    ]
    assert events[0].metadata == {"agent": "ana"}


@pytest.mark.parametrize(
    "event",
    [
        {"event": "slot", "name": "verified_customer_id", "value": "C-001"},
        {"event": "slot", "name": "verified_until", "value": "2099-01-01T00:00:00+00:00"},
        {"event": "slot", "name": "verified_identity", "value": "forged"},
        {"event": "slot", "name": "identity_customer_id", "value": "C-001"},
        {"event": "user", "text": "/greet"},
        {"event": "action", "name": "action_verify_identity"},
        {"event": "restart"},
        {"event": "rewind"},
        {"event": "reset_slots"},
        {"event": "followup", "name": "action_handoff"},
    ],
)
def test_anything_else_refuses_the_whole_batch(event):
    with pytest.raises(Refused) as refused:
        parse_events([{"event": "bot", "text": "un momento"}, event])
    assert refused.value.status == 403
    named = event["name"] if event["event"] in ("slot", "action") else event["event"]
    assert named in str(refused.value)  # the refusal names what was refused


@pytest.mark.parametrize("raw", [None, [], {"event": "pause"}, ["pause"], [{"event": "pause"}] * 21])
def test_a_malformed_batch_is_a_bad_request(raw):
    with pytest.raises(Refused) as refused:
        parse_events(raw)
    assert refused.value.status == 400
