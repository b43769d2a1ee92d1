"""The console's two calls into the Rasa server, through its own door (connectors/console_bridge.py),
made in a worker thread so the console's event loop never waits on them.

CONSOLE_RASA_TOKEN goes as `Authorization: Bearer <token>`, never in the URL. Rasa's HTTP API
(RASA_TOKEN) is not used: it only reads unless an operator turns writes on.
"""

from __future__ import annotations

import asyncio
from typing import Any

import requests

BRIDGE = "/webhooks/console"


class RasaApiError(RuntimeError):
    """Rasa did not accept a call; the console tells the agent instead of pretending it worked."""


class RasaApi:
    def __init__(self, base_url: str, token: str | None, timeout_s: float = 30) -> None:
        self._base = base_url.rstrip("/") + BRIDGE
        self._token = token
        self._timeout = timeout_s

    def _post(self, path: str, payload: dict[str, Any]) -> Any:
        headers = {"Authorization": f"Bearer {self._token}"} if self._token else {}
        try:
            answer = requests.post(
                f"{self._base}{path}", json=payload, headers=headers, timeout=self._timeout
            )
        except requests.RequestException as error:
            raise RasaApiError(f"Rasa unreachable: {type(error).__name__}") from error
        if answer.status_code >= 300:
            try:
                reason = answer.json().get("error", "")
            except ValueError:
                reason = ""
            said = f": {reason}" if reason else ""
            raise RasaApiError(f"Rasa answered {answer.status_code} to {path.lstrip('/')}{said}")
        return answer.json()

    async def append_events(self, conversation_id: str, events: list[dict[str, Any]]) -> None:
        await asyncio.to_thread(self._post, "/events", {"conversation_id": conversation_id, "events": events})

    async def trigger_intent(
        self, conversation_id: str, intent: str, output_channel: str | None = None
    ) -> list[dict[str, Any]]:
        """Run the bot on `intent`; its messages go to `output_channel`, or are returned."""
        answer = await asyncio.to_thread(
            self._post,
            "/trigger_intent",
            {"conversation_id": conversation_id, "intent": intent, "output_channel": output_channel},
        )
        return list(answer.get("messages") or [])
