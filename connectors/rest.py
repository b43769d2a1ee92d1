"""Rasa's REST channel behind a secret token, because its caller chooses the sender.

The assistant identifies customers by the sender (their phone number), so a channel that lets
the caller write any sender must not be open: every request needs RASA_TOKEN, as
`Authorization: Bearer <token>` or `?token=<token>` (the same token as Rasa's HTTP API).
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Any

from rasa.core.channels.channel import UserMessage
from rasa.core.channels.rest import RestInput
from sanic import Blueprint, response
from sanic.request import Request

from bot.messaging.inbound_rules import screen_for_bot
from bot.messaging.memory import ConversationMemory, InProcessMemory
from bot.wiring import wiring


class TokenRestInput(RestInput):
    """POST /webhooks/rest/webhook {"sender": "+52…", "message": "…"}, with the token."""

    @classmethod
    def name(cls) -> str:
        return "rest"

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any] | None) -> TokenRestInput:
        graph = wiring()
        return cls(token=graph.settings.rasa_token, memory=graph.memory)

    def __init__(self, token: str | None, memory: ConversationMemory | None = None) -> None:
        self.token = token
        # payments (issue 6): whose last message held a card number (its CVV may follow), shared
        # with the Twilio channel and every replica when REDIS_URL is set.
        self.memory = memory or InProcessMemory()

    def _extract_message(self, req: Request) -> str | None:
        """The message, with card data turned into the card_data intent before Rasa sees it."""
        text = super()._extract_message(req)
        sender = str((req.json or {}).get("sender") or "")
        screened = screen_for_bot(self.memory, sender, text or "")
        return screened if text is not None else None

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
            if request.method == "POST" and not self.is_authorized(request):
                return response.json(
                    {"error": "unauthorized: send RASA_TOKEN as 'Authorization: Bearer <token>'"},
                    status=401,
                )
            return None

        return webhook
