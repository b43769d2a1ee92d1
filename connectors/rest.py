"""Rasa's REST channel behind a secret token, because its caller chooses the sender.

The assistant identifies customers by the sender (their phone number), so a channel that lets
the caller write any sender must not be open: every request needs REST_CHANNEL_TOKEN, as
`Authorization: Bearer <token>` or `?token=<token>`. It is the channel's own: Rasa's HTTP API
(RASA_TOKEN) and the console's route (CONSOLE_RASA_TOKEN) have theirs, and none opens another.
The channel refuses to start without it.

Card screening reads and writes the shared card memory (Redis with REDIS_URL, one synchronous
round trip per call): it runs in a worker thread, so a slow Redis holds up this message only,
never the server's event loop and every other request on it.

It carries customers' text, so a message starting with "/" loses the slash instead of reaching
Rasa as an "/intent{entities}" command (bot.messaging.inbound_rules.neutralise_command). Only in
development may a caller send `"command": true` to have its "/intent" read as one (the end-to-end
tests' "/restart" and "/nlu_fallback"); production ignores the flag.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Awaitable, Callable
from typing import Any

from rasa.core.channels.channel import UserMessage
from rasa.core.channels.rest import RestInput
from sanic import Blueprint, response
from sanic.request import Request

from bot.messaging.inbound_rules import screen_for_bot
from bot.messaging.memory import ConversationMemory, InProcessMemory
from bot.settings import SettingsError, required_token
from bot.wiring import wiring


class TokenRestInput(RestInput):
    """POST /webhooks/rest/webhook {"sender": "+52…", "message": "…"}, with the token."""

    @classmethod
    def name(cls) -> str:
        return "rest"

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any] | None) -> TokenRestInput:
        graph = wiring()
        try:
            token = required_token(graph.settings, "REST_CHANNEL_TOKEN")
        except SettingsError as error:
            raise SystemExit(f"error: {error}") from None
        return cls(
            token=token,
            memory=graph.memory,
            allow_commands=graph.settings.is_development,
        )

    def __init__(
        self, token: str | None, memory: ConversationMemory | None = None, *, allow_commands: bool = False
    ) -> None:
        self.token = token
        self.allow_commands = allow_commands  # development only: honour `"command": true`
        # payments (issue 6): whose last message held a card number (its CVV may follow), shared
        # with the Twilio channel and every replica when REDIS_URL is set.
        self.memory = memory or InProcessMemory()

    async def _screen(self, req: Request) -> str | None:
        """The message, with a leading "/" dropped and card data turned into the card_data intent."""
        text = super()._extract_message(req)
        if text is None:
            return None
        body = req.json or {}
        sender = str(body.get("sender") or "")
        command = self.allow_commands and body.get("command") is True
        return await asyncio.to_thread(screen_for_bot, self.memory, sender, text, command=command)

    def _extract_message(self, req: Request) -> str | None:
        """What `_screen` made of the message before the handler ran (Rasa calls this synchronously)."""
        return getattr(req.ctx, "screened_message", None)

    def get_metadata(self, request: Request) -> dict[str, Any] | None:
        """`metadata` of the trusted caller's JSON (attachments: {"media": [{"url", "content_type"}]})."""
        metadata = (request.json or {}).get("metadata")
        return metadata if isinstance(metadata, dict) else None

    def is_authorized(self, request: Request) -> bool:
        if not self.token:
            return False
        header = request.headers.get("Authorization", "")
        given = header[7:].strip() if header.lower().startswith("bearer ") else request.args.get("token", "")
        return hmac.compare_digest(given.encode(), self.token.encode())

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        webhook = super().blueprint(on_new_message)

        @webhook.middleware("request")
        async def require_token(request: Request) -> response.HTTPResponse | None:
            if request.method != "POST":
                return None
            if not self.is_authorized(request):
                return response.json(
                    {"error": "unauthorized: send REST_CHANNEL_TOKEN as 'Authorization: Bearer <token>'"},
                    status=401,
                )
            request.ctx.screened_message = await self._screen(request)
            return None

        return webhook
