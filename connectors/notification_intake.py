"""The door the CRM/ERP POSTs business events to (`python -m connectors.notification_intake`,
started by `make run`): POST /events, signed (bot/notifications/signature.py), answered 2xx only
once the event is stored; the notification worker decides and sends it later.

Unsigned, stale or oversized requests are refused before any work; the same (source, event_id)
twice is stored once and answered 2xx both times, so the CRM/ERP may retry freely.
Listens on loopback (NOTIFY_HOST, NOTIFY_PORT) unless the operator opens it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Callable
from datetime import datetime

from sanic import Sanic, response
from sanic.request import Request

from bot.adapters.base import BackendUnavailable
from bot.adapters.sql import SqlStore
from bot.clock import SystemClock
from bot.notifications.events import InvalidEvent, parse_event
from bot.notifications.rules import DEFAULT_RULES, NotificationRules, load_rules, missing_variables
from bot.notifications.signature import SIGNATURE_HEADER, TIMESTAMP_HEADER, is_signed
from bot.notifications.store import NotificationStore
from bot.settings import Settings, SettingsError

logger = logging.getLogger(__name__)

MAX_BODY = 16 * 1024  # one event is a few hundred bytes


def _error(status: int, code: str, message: str) -> response.HTTPResponse:
    return response.json({"code": code, "message": message}, status=status)


def create_app(
    store: NotificationStore,
    rules: NotificationRules,
    secret: str,
    clock: Callable[[], datetime],
    default_country: str = "MX",
    name: str = "notification_intake",
    signature_clock: Callable[[], datetime] | None = None,
) -> Sanic:
    """`clock` stamps what is stored; `signature_clock` (default `clock`) judges a signature's
    freshness: the machine's own time, as the CRM/ERP signs with it, even when BOT_NOW moves the
    assistant's clock in development."""
    if not secret:
        raise SettingsError("NOTIFY_WEBHOOK_SECRET must be set: the key the CRM/ERP signs events with.")
    fresh = signature_clock or clock
    app = Sanic(name)
    app.config.REQUEST_MAX_SIZE = MAX_BODY  # Sanic answers 413 before reading more

    @app.get("/health")
    async def health(_: Request) -> response.HTTPResponse:
        return response.json({"status": "ok"})

    @app.post("/events")
    async def receive(request: Request) -> response.HTTPResponse:
        body = request.body or b""
        if len(body) > MAX_BODY:
            return _error(413, "too_large", f"an event is at most {MAX_BODY} bytes")
        headers = request.headers
        if not is_signed(body, headers.get(TIMESTAMP_HEADER), headers.get(SIGNATURE_HEADER), secret, fresh()):
            return _error(401, "unauthorized", f"sign the body ({SIGNATURE_HEADER}, {TIMESTAMP_HEADER})")
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return _error(400, "invalid_request", "the body must be JSON")
        try:
            event = parse_event(payload, default_country)
        except InvalidEvent as error:
            return _error(422, "invalid_event", str(error))
        rule = rules.rule_for(event.kind)
        missing = missing_variables(rule, event.variables) if rule else set()
        if missing:
            return _error(
                422, "invalid_event", f"{event.kind.value} needs variables: {', '.join(sorted(missing))}"
            )
        try:
            row_id, created = await asyncio.to_thread(store.receive, event, clock())
        except BackendUnavailable:
            logger.exception("notification intake: the database is unavailable")
            return _error(503, "unavailable", "the event was not stored: try again")
        return response.json(
            {"id": row_id, "status": "accepted" if created else "duplicate"}, status=202 if created else 200
        )

    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=None, help="default: NOTIFY_PORT (8070)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = Settings.from_env()
    clock = SystemClock(settings.clock_shift)
    app = create_app(
        NotificationStore(SqlStore(settings.database_url)),
        load_rules(settings.notify_rules or DEFAULT_RULES),
        settings.notify_webhook_secret or "",
        clock.now,
        settings.default_country,
        signature_clock=SystemClock().now,  # unshifted: the machine's time, as the sender's
    )
    port = args.port or settings.notify_port
    print(f"Notification intake: POST http://{settings.notify_host}:{port}/events (signed).", flush=True)
    app.run(host=settings.notify_host, port=port, access_log=False, workers=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
