"""The event broker's settings (docs/kpis.md): RabbitMQ by URL, else Rasa's SQL broker."""

from __future__ import annotations

import pytest

from bot.settings import Settings, SettingsError


def test_without_a_broker_url_events_go_to_the_sql_broker():
    settings = Settings.from_env({"BOT_ENV": "development"})
    assert settings.event_broker_url is None
    assert (settings.event_broker_queue, settings.event_broker_exchange) == (
        "autoservicio-analytics",
        "autoservicio-events",
    )


def test_a_rabbitmq_url_and_names_are_taken():
    settings = Settings.from_env(
        {
            "EVENT_BROKER_URL": "amqps://u:p@rabbit:5671/prod",
            "EVENT_BROKER_QUEUE": "kpi_q",
            "BOT_ENV": "development",
        }
    )
    assert settings.event_broker_url == "amqps://u:p@rabbit:5671/prod"
    assert settings.event_broker_queue == "kpi_q"


@pytest.mark.parametrize(
    "env",
    [{"EVENT_BROKER_URL": "kafka://broker:9092"}, {"EVENT_BROKER_QUEUE": "a queue with spaces"}],
)
def test_a_broker_setting_that_cannot_work_is_refused(env):
    with pytest.raises(SettingsError, match="EVENT_BROKER_"):
        Settings.from_env({"BOT_ENV": "development", **env})
