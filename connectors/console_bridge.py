"""The agent console's own door into the Rasa server: exactly the two writes the console makes.

The console writes an agent's reply, the pause and the resume into a conversation, and on a
hand-back has the bot say it is back (the `handoff_returned` intent, its reply sent to the
customer through the Twilio channel). It used to do that through Rasa's HTTP API, whose token
also replaces the model and writes any event, a forged verified identity included. Now the API
only reads (connectors/rasa_patches.py, `scope_http_api`) and the console comes here instead:

    POST /webhooks/console/events          {"conversation_id": "+52…", "events": [{...}, ...]}
    POST /webhooks/console/trigger_intent  {"conversation_id": "+52…", "intent": "handoff_returned",
                                            "output_channel": "twilio"}   (or null: replies returned)

Every request needs CONSOLE_RASA_TOKEN as `Authorization: Bearer <token>` (compared in constant
time; a token in the URL is refused, since URLs end up in logs). Only the events in
`CONSOLE_EVENTS` are accepted, a whole batch refused if one is not: a bot message, pause,
resume, `action_listen`, and slots in `CONSOLE_SLOTS` (none today). The identity slots
(verified_customer_id, verified_until, verified_identity, identity_customer_id) are never among
them. Only the intents in `CONSOLE_INTENTS` can be triggered. Both write the way Rasa's own
endpoints do, under the conversation's lock.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from rasa.core.channels.channel import CollectingOutputChannel, InputChannel, OutputChannel, UserMessage
from rasa.server import update_conversation_with_events
from rasa.shared.core.constants import ACTION_LISTEN_NAME
from rasa.shared.core.events import Event
from sanic import Blueprint, response
from sanic.request import Request

from bot.settings import SettingsError, required_token
from bot.wiring import wiring

logger = logging.getLogger(__name__)

# What the console writes into a conversation, by Rasa's event type name.
CONSOLE_EVENTS = frozenset({"bot", "pause", "resume", "action", "slot"})
CONSOLE_ACTIONS = frozenset({ACTION_LISTEN_NAME})  # the bot listens again after a hand-back
# Slots the console may set. None today; a handoff slot may join when the console needs one.
# Never an identity slot: a verified identity comes from the verification action alone.
CONSOLE_SLOTS: frozenset[str] = frozenset()
CONSOLE_INTENTS = frozenset({"handoff_returned"})  # "I'm back" after the agent hands back
# Where a triggered intent's replies may go: the customer's channel, or back to the console.
CONSOLE_OUTPUT_CHANNELS = frozenset({"twilio"})
MAX_CONVERSATION_ID = 128
MAX_EVENTS = 20


class Refused(Exception):
    """A request the console's door does not take; `status` and the message go back as JSON."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def parse_events(raw: Any) -> list[Event]:
    """The allow-listed events of a request, or Refused naming the first one that is not."""
    if not isinstance(raw, list) or not raw or len(raw) > MAX_EVENTS:
        raise Refused(400, f"events: give a list of 1 to {MAX_EVENTS} events")
    events = []
    for item in raw:
        if not isinstance(item, dict):
            raise Refused(400, "events: each event is an object")
        kind = item.get("event")
        if kind not in CONSOLE_EVENTS:
            raise Refused(403, f"event {kind!r} is not one the console may write")
        if kind == "action" and item.get("name") not in CONSOLE_ACTIONS:
            raise Refused(403, f"action {item.get('name')!r} is not one the console may write")
        if kind == "slot" and item.get("name") not in CONSOLE_SLOTS:
            raise Refused(403, f"slot {item.get('name')!r} is not one the console may set")
        event = Event.from_parameters(item)
        if event is None:
            raise Refused(400, f"event {kind!r}: not a valid Rasa event")
        events.append(event)
    return events


class ConsoleBridgeInput(InputChannel):
    """/webhooks/console/: the console's two writes, behind CONSOLE_RASA_TOKEN."""

    @classmethod
    def name(cls) -> str:
        return "console"

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any] | None) -> ConsoleBridgeInput:
        try:
            return cls(required_token(wiring().settings, "CONSOLE_RASA_TOKEN"))
        except SettingsError as error:
            raise SystemExit(f"error: {error}") from None

    def __init__(self, token: str) -> None:
        if not token:
            raise ValueError("the console's door needs a token")
        self.token = token

    def get_output_channel(self) -> OutputChannel | None:
        return None  # nothing answers "the console" as a channel: replies go to the customer's

    def refusal(self, request: Request) -> response.HTTPResponse | None:
        """401 unless the request carries the console's token as a Bearer header (only there)."""
        if "token" in request.args:
            return response.json(
                {"error": "send CONSOLE_RASA_TOKEN as 'Authorization: Bearer <token>', never in the URL"},
                status=400,
            )
        header = request.headers.get("Authorization", "")
        given = header[7:].strip() if header.lower().startswith("bearer ") else ""
        if not given or not hmac.compare_digest(given.encode(), self.token.encode()):
            return response.json(
                {"error": "unauthorized: send CONSOLE_RASA_TOKEN as 'Authorization: Bearer <token>'"},
                status=401,
            )
        return None

    @staticmethod
    def conversation_of(body: dict[str, Any]) -> str:
        conversation_id = body.get("conversation_id")
        if not isinstance(conversation_id, str) or not 0 < len(conversation_id) <= MAX_CONVERSATION_ID:
            raise Refused(400, f"conversation_id: 1 to {MAX_CONVERSATION_ID} characters")
        return conversation_id

    @staticmethod
    def agent_of(request: Request) -> Any:
        agent = getattr(request.app.ctx, "agent", None)
        if agent is None or not agent.is_ready():
            raise Refused(503, "no model loaded yet")
        return agent

    @staticmethod
    def output_channel(request: Request, name: str | None) -> OutputChannel:
        """The named channel's output, as Rasa's `?output_channel=` picks it; else collect replies."""
        if name is None:
            return CollectingOutputChannel()
        if name not in CONSOLE_OUTPUT_CHANNELS:
            choices = ", ".join(sorted(CONSOLE_OUTPUT_CHANNELS))
            raise Refused(400, f"output_channel {name!r}: use {choices} or null")
        for channel in getattr(request.app.ctx, "input_channels", None) or []:
            if channel.name() == name and (output := channel.get_output_channel()) is not None:
                return output
        raise Refused(503, f"output_channel {name!r} is not served by this Rasa server")

    async def append_events(self, request: Request) -> dict[str, Any]:
        body = request.json if isinstance(request.json, dict) else {}
        conversation_id = self.conversation_of(body)
        events = parse_events(body.get("events"))
        agent = self.agent_of(request)
        async with agent.lock_store.lock(conversation_id):
            tracker = await update_conversation_with_events(
                conversation_id, agent.processor, agent.domain, events
            )
            await agent.tracker_store.save(tracker)
        return {"appended": len(events)}

    async def trigger_intent(self, request: Request) -> dict[str, Any]:
        body = request.json if isinstance(request.json, dict) else {}
        conversation_id = self.conversation_of(body)
        intent = body.get("intent")
        if intent not in CONSOLE_INTENTS:
            raise Refused(403, f"intent {intent!r} is not one the console may trigger")
        output = self.output_channel(request, body.get("output_channel"))
        agent = self.agent_of(request)
        async with agent.lock_store.lock(conversation_id):
            tracker = await agent.processor.fetch_tracker_and_update_session(conversation_id)
            await agent.trigger_intent(
                intent_name=intent, entities=[], output_channel=output, tracker=tracker
            )
        messages = output.messages if isinstance(output, CollectingOutputChannel) else []
        return {"messages": messages}

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        bridge = Blueprint("console_bridge", __name__)

        @bridge.middleware("request")
        async def require_token(request: Request) -> response.HTTPResponse | None:
            return self.refusal(request) if request.method == "POST" else None

        async def answer(work: Callable[[Request], Awaitable[dict[str, Any]]], request: Request) -> Any:
            try:
                return response.json(await work(request))
            except Refused as refused:
                logger.warning("console bridge refused %s: %s", request.path, refused)
                return response.json({"error": str(refused)}, status=refused.status)

        @bridge.route("/", methods=["GET"])
        async def health(_: Request) -> response.HTTPResponse:
            return response.json({"status": "ok"})

        @bridge.route("/events", methods=["POST"])
        async def events(request: Request) -> response.HTTPResponse:
            return await answer(self.append_events, request)

        @bridge.route("/trigger_intent", methods=["POST"])
        async def trigger(request: Request) -> response.HTTPResponse:
            return await answer(self.trigger_intent, request)

        return bridge
