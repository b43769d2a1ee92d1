"""The notification intake served for real on a free loopback port (Sanic in a thread), signed
events to POST to it, and the worker over a real database and the fake Twilio."""

from __future__ import annotations

import json
import time
import uuid
from datetime import datetime, timedelta
from typing import Any

import requests

from bot.clock import Clock
from bot.messaging.sender import MessageSender, TwilioTransport
from bot.messaging.store import MessagingStore
from bot.messaging.templates import DEFAULT_TEMPLATES, TemplateCatalog, parse_templates
from bot.notifications.rules import NotificationRules, load_rules
from bot.notifications.signature import signed_headers
from bot.notifications.store import NotificationStore
from bot.notifications.worker import NotificationWorker, TokenBucket
from bot.settings import Settings
from connectors.notification_intake import create_app
from tests.fake_twilio import FakeTwilio, approve_templates
from tests.served_app import ServedApp

SECRET = "notify-test-secret-" + uuid.uuid4().hex


def event(event_id: str, phone: str, kind: str = "order_shipped", **fields: Any) -> dict[str, Any]:
    """An event as the CRM/ERP sends it; `fields` override or add (channel, variables…)."""
    payload = {
        "source": "erp",
        "event_id": event_id,
        "kind": kind,
        "occurred_at": "2026-11-26T09:00:00-06:00",
        "phone": phone,
        "channel": "sms",
        "variables": {"order_id": "PED-1001"},
    }
    payload.update(fields)
    return payload


class RunningIntake(ServedApp):
    """connectors/notification_intake.py's app on a free loopback port until `stop()`."""

    def __init__(
        self, store: NotificationStore, clock: Clock, rules: NotificationRules | None = None
    ) -> None:
        app = create_app(store, rules or load_rules(), SECRET, clock.now, name=f"n{uuid.uuid4().hex}")
        self.clock = clock
        super().__init__(app, "intake")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/events"

    def post(self, payload: Any, secret: str = SECRET, at: datetime | None = None) -> requests.Response:
        body = json.dumps(payload).encode() if not isinstance(payload, bytes) else payload
        headers = {"Content-Type": "application/json", **signed_headers(body, secret, at or self.clock.now())}
        return requests.post(self.url, data=body, headers=headers, timeout=10)


def twilio_settings(fake: FakeTwilio, **extra: str) -> Settings:
    return Settings.from_env(
        {
            "BOT_ENV": "development",
            "TWILIO_ACCOUNT_SID": fake.account_sid,
            "TWILIO_AUTH_TOKEN": fake.auth_token,
            "TWILIO_API_BASE": fake.url,
            "TWILIO_WHATSAPP_NUMBER": "+14155238886",
            "TWILIO_SMS_NUMBER": "+15005550006",
            **extra,
        }
    )


def build_worker(
    settings: Settings,
    store: Any,
    crm: Any,
    clock: Clock,
    rules: NotificationRules | None = None,
    rate_per_s: float = 1000.0,
    memory: Any = None,
    templates: TemplateCatalog | None = None,
    consents: Any = None,
    links: Any = None,
) -> tuple[NotificationWorker, MessagingStore]:
    """The worker as connectors/notification_worker.py builds it, on this database and clock."""
    messaging = MessagingStore(store, clock)
    transport = TwilioTransport(
        settings.twilio_account_sid, settings.twilio_auth_token, settings.twilio_api_base,
        content_api_base=settings.twilio_content_api_base,
    )  # fmt: skip
    sender = MessageSender(
        settings, messaging, transport, retry_delays_s=(0.01,), clock=clock, templates=templates
    )
    worker = NotificationWorker(
        NotificationStore(store),
        rules or load_rules(),
        sender,
        messaging,
        crm,
        clock.now,
        TokenBucket(rate_per_s, time.monotonic, burst=rate_per_s),
        default_zone=settings.bot_timezone,
        default_country=settings.default_country,
        lease=timedelta(seconds=60),
        memory=memory,
        consents=consents,
        links=links,
    )
    return worker, messaging


def approved_templates(fake: FakeTwilio) -> TemplateCatalog:
    """The shipped bot/whatsapp_templates.yml, approved at the fake's Content API."""
    return parse_templates(approve_templates(fake, DEFAULT_TEMPLATES), "approved templates")
