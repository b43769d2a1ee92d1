"""The KPI alert tests' pieces: two weeks of conversations whose containment is set by hand, the
rules as a supervisor writes them, and a webhook receiver served for real on loopback."""

from __future__ import annotations

import uuid
from datetime import datetime
from pathlib import Path

import yaml
from sanic import Sanic, response
from sanic.request import Request

from bot.adapters.sql import SqlStore
from bot.analytics.store import AnalyticsStore
from tests.analytics_helpers import MX, Conversation
from tests.served_app import ServedApp

WEEK_47 = 16  # Monday 16 Nov 2026; ISO week 2026-W47
WEEK_48 = 23  # Monday 23 Nov 2026; ISO week 2026-W48 (the week judged during W49)
CHECKED_AT = datetime(2026, 12, 2, 12, 0, tzinfo=MX)  # a Wednesday of W49


def two_weeks(store: SqlStore, contained_before: int, contained_after: int, customers: int = 5) -> None:
    """`customers` order_status sessions on the Tuesday of W47 and again on the Tuesday of W48;
    the first `contained_*` of each week end well, the others on a fallback (unresolved)."""
    events = []
    for number in range(customers):
        conversation = Conversation(f"+52551000{number:04d}")
        for monday, contained in ((WEEK_47, contained_before), (WEEK_48, contained_after)):
            conversation.session(datetime(2026, 11, monday + 1, 9 + number, tzinfo=MX))
            conversation.says("¿dónde está mi pedido?", "order_status").answers("action_order_status", "u")
            if number >= contained:
                conversation.says("xyzzy", "nlu_fallback", 0.2).answers("action_default_fallback", "u")
        events += conversation.delivered()
    AnalyticsStore(store).record(events, CHECKED_AT)


def rules_file(folder: Path, *rules: dict) -> Path:
    path = folder / "alerts.yml"
    path.write_text(yaml.safe_dump({"rules": list(rules)}, allow_unicode=True), encoding="utf-8")
    return path


class Webhook(ServedApp):
    """A receiver on a free loopback port: keeps every POST (its headers and raw body) and
    answers with the next of `statuses` (the last one once they run out)."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.statuses = list(statuses or [200])
        app = Sanic(f"hook{uuid.uuid4().hex}")

        @app.post("/alerts")
        async def alerts(request: Request) -> response.HTTPResponse:
            self.received.append(({k.lower(): v for k, v in request.headers.items()}, request.body))
            status = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
            return response.json({"ok": status < 300}, status=status)

        super().__init__(app, "webhook")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/alerts"
