"""The event broker Rasa builds from the assistant's settings: analytics' source (docs/kpis.md).

endpoints.yml names `SettingsEventBroker`. With EVENT_BROKER_URL set, Rasa's Pika broker publishes
every event to RabbitMQ (a fanout exchange and a durable queue the analytics consumer reads);
unset, Rasa's SQL event broker writes them into the assistant's own database, in its own table:
Rasa's default name, `events`, is the SQL tracker store's table in the same database.
"""

from __future__ import annotations

from asyncio import AbstractEventLoop
from typing import Any
from urllib.parse import urlparse

from rasa.core.brokers.broker import EventBroker
from rasa.core.brokers.pika import PikaEventBroker
from rasa.core.brokers.sql import SQLEventBroker
from rasa.utils.endpoints import EndpointConfig
from sqlalchemy import Column, Integer, String
from sqlalchemy import Text as SqlText
from sqlalchemy.orm import declarative_base, sessionmaker

from bot.adapters.sql import create_engine
from bot.analytics.consumer import BROKER_TABLE
from bot.settings import Settings
from bot.wiring import wiring


class AnalyticsSqlBroker(SQLEventBroker):
    """Rasa's SQL event broker on DATABASE_URL, into the table the analytics consumer reads."""

    Base = declarative_base()

    class SQLBrokerEvent(Base):
        __tablename__ = BROKER_TABLE
        id = Column(Integer, primary_key=True)
        sender_id = Column(String(255))
        data = Column(SqlText)

    def __init__(self, database_url: str) -> None:  # Rasa's builds a URL without query options
        self.engine = create_engine(database_url)
        self.Base.metadata.create_all(self.engine)
        self.sessionmaker = sessionmaker(bind=self.engine)


def pika_arguments(settings: Settings) -> dict[str, Any]:
    """PikaEventBroker's keyword arguments for EVENT_BROKER_URL, its queue and its exchange."""
    url = urlparse(settings.event_broker_url or "")
    return {
        "host": settings.event_broker_url,
        "username": url.username or "guest",
        "password": url.password or "guest",
        "port": url.port or (5671 if url.scheme == "amqps" else 5672),
        "queues": [settings.event_broker_queue],
        "exchange_name": settings.event_broker_exchange,
    }


async def broker_for(settings: Settings, event_loop: AbstractEventLoop | None = None) -> EventBroker:
    if settings.event_broker_url:
        broker = PikaEventBroker(**pika_arguments(settings), event_loop=event_loop)
        await broker.connect()
        return broker
    return AnalyticsSqlBroker(settings.database_url)


class SettingsEventBroker:
    """endpoints.yml's event broker type: Rasa calls `from_endpoint_config` and gets the broker
    `broker_for` picks from the settings."""

    @classmethod
    async def from_endpoint_config(
        cls, broker_config: EndpointConfig | None, event_loop: AbstractEventLoop | None = None
    ) -> EventBroker:
        return await broker_for(wiring().settings, event_loop)
