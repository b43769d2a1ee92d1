"""The handoff's settings: console port, configuration file, desk webhook."""

import pytest

from bot.settings import Settings, SettingsError


def test_defaults_need_nothing():
    settings = Settings.from_env({})
    assert settings.console_port == 8080 and settings.handoff_config is None
    assert settings.handoff_webhook_url is None and settings.console_secret is None


def test_a_missing_handoff_config_file_stops_the_start(tmp_path):
    with pytest.raises(SettingsError, match="HANDOFF_CONFIG"):
        Settings.from_env({"HANDOFF_CONFIG": str(tmp_path / "nope.yml")})
    mine = tmp_path / "mine.yml"
    mine.write_text("timezone: America/Lima\n")
    assert Settings.from_env({"HANDOFF_CONFIG": str(mine)}).handoff_config == mine


def test_the_desk_webhook_needs_a_full_url_and_in_production_a_secret():
    with pytest.raises(SettingsError, match="HANDOFF_WEBHOOK_URL"):
        Settings.from_env({"HANDOFF_WEBHOOK_URL": "desk.example.com/hook"})
    production = {
        "BOT_ENV": "production",
        "RASA_TOKEN": "t",
        "HANDOFF_WEBHOOK_URL": "https://desk.example.com/h",
    }
    with pytest.raises(SettingsError, match="HANDOFF_WEBHOOK_SECRET"):
        Settings.from_env(production)
    assert Settings.from_env({**production, "HANDOFF_WEBHOOK_SECRET": "s"}).handoff_webhook_secret == "s"


def test_a_bad_console_port_is_named():
    with pytest.raises(SettingsError, match="CONSOLE_PORT"):
        Settings.from_env({"CONSOLE_PORT": "http"})
