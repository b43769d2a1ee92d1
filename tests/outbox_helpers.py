"""What the outbox tests share: a worker on the test clock and the messages the assistant sent."""

from __future__ import annotations

from datetime import timedelta

from bot.adapters.sql import SqlCaseBook
from bot.messaging.sender import MessageSender, OutboxTransport
from bot.messaging.store import MessagingStore
from bot.outbox_worker import OutboxWorker, sender_notify
from bot.settings import Settings
from tests.conftest import CLOCK


def later(hours: float = 1):
    """The worker's clock: past every scheduled retry, well within the outbox's maximum age."""
    return lambda: CLOCK.now() + timedelta(hours=hours)


def worker_for(store, backends, **options) -> OutboxWorker:
    messaging = MessagingStore(store, CLOCK)
    sender = MessageSender(
        Settings.from_env({}), messaging, OutboxTransport(), retry_delays_s=(), clock=CLOCK
    )
    return OutboxWorker(
        backends.outbox, backends, SqlCaseBook(store), sender_notify(sender, messaging), **options
    )


def messages_to(store, phone: str) -> list[str]:
    return [record.body for record in MessagingStore(store, CLOCK).outbound(to_phone=phone)]
