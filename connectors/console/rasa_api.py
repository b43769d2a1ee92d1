"""The few calls the console makes to Rasa's HTTP API (token-guarded), in a worker thread."""

from __future__ import annotations

import asyncio
from typing import Any

import requests


class RasaApiError(RuntimeError):
    """Rasa did not accept a call; the console tells the agent instead of pretending it worked."""


class RasaApi:
    def __init__(self, base_url: str, token: str | None, timeout_s: float = 30) -> None:
        self._base = base_url.rstrip("/")
        self._token = token
        self._timeout = timeout_s

    def _post(self, path: str, payload: Any, params: dict[str, str] | None = None) -> Any:
        query = {"token": self._token} if self._token else {}
        query.update(params or {})
        try:
            answer = requests.post(f"{self._base}{path}", json=payload, params=query, timeout=self._timeout)
        except requests.RequestException as error:
            raise RasaApiError(f"Rasa unreachable: {type(error).__name__}") from error
        if answer.status_code >= 300:
            raise RasaApiError(f"Rasa answered {answer.status_code} to {path.split('/')[-1]}")
        return answer.json()

    # Sanic does not unquote path parameters: "+" must stay "+" (it is literal in a path).

    async def append_events(self, conversation_id: str, events: list[dict[str, Any]]) -> None:
        path = f"/conversations/{requests.utils.quote(conversation_id, safe='+')}/tracker/events"
        await asyncio.to_thread(self._post, path, events)

    async def trigger_intent(
        self, conversation_id: str, intent: str, output_channel: str | None = None
    ) -> list[dict[str, Any]]:
        """Run the bot on `intent`; its messages go to `output_channel`, or are returned."""
        path = f"/conversations/{requests.utils.quote(conversation_id, safe='+')}/trigger_intent"
        params = {"output_channel": output_channel} if output_channel else None
        answer = await asyncio.to_thread(self._post, path, {"name": intent}, params)
        return list(answer.get("messages") or [])
