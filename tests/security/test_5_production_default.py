"""Finding 5: BOT_ENV defaulted to development, so a deployment that forgot it accepted unsigned
webhooks, insecure cookies, no desk secret and the demo agent. Production is the default now:
each of those refuses to start unless BOT_ENV=development is asked for."""

from __future__ import annotations

import pytest

from bot.settings import Settings, SettingsError
from connectors.console.__main__ import console_secret, demo_agent


def test_a_forgotten_bot_env_is_production():
    assert not Settings.from_env({}).is_development


def test_unsigned_webhooks_need_development():
    with pytest.raises(SettingsError, match="BOT_ENV=development"):
        Settings.from_env({"TWILIO_VALIDATE_SIGNATURE": "false"})
    assert not Settings.from_env(
        {"BOT_ENV": "development", "TWILIO_VALIDATE_SIGNATURE": "false"}
    ).twilio_validate_signature


def test_a_desk_webhook_without_its_hmac_secret_is_refused_in_production():
    with pytest.raises(SettingsError, match="HANDOFF_WEBHOOK_SECRET"):
        Settings.from_env({"HANDOFF_WEBHOOK_URL": "https://desk.example/hook"})


def test_the_console_needs_its_own_secret_in_production(monkeypatch, tmp_path):
    with pytest.raises(SystemExit, match="CONSOLE_SECRET"):
        console_secret(Settings.from_env({}))


def test_the_demo_agent_exists_only_in_development(capsys):
    assert demo_agent(Settings.from_env({})) == 1
    assert "BOT_ENV=development" in capsys.readouterr().err
