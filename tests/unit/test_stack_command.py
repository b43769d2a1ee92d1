"""The Rasa server's command line as scripts/stack.py writes it, read by Rasa's own parser."""

import importlib.util
from pathlib import Path

import pytest
from rasa.__main__ import create_argument_parser

ROOT = Path(__file__).resolve().parent.parent.parent
spec = importlib.util.spec_from_file_location("stack", ROOT / "scripts" / "stack.py")
stack = importlib.util.module_from_spec(spec)
spec.loader.exec_module(stack)


@pytest.mark.parametrize("token", ["-02KbOrKhL7PxecxBvTrHSQl5y1qo6BL", "plain_token", "--double"])
def test_rasa_reads_the_token_whatever_it_starts_with(token):
    arguments = stack.rasa_run_arguments(Path("models/m.tar.gz"), 5005, token)
    parsed = create_argument_parser().parse_args(arguments)
    assert (parsed.auth_token, parsed.port, parsed.enable_api) == (token, 5005, True)


def test_each_process_gets_only_the_door_tokens_it_uses(monkeypatch):
    given = {
        "BOT_ENV": "development",
        "RASA_TOKEN": "api-token",
        "REST_CHANNEL_TOKEN": "rest-token",
        "CONSOLE_RASA_TOKEN": "console-token",
        "ACTION_SERVER_TOKEN": "actions-token",
        "OTP_SECRET_KEY": "8Qz3a6CzG8y2b4n3w1hJk9pL0sD5fR7tU2vX4yZ6aB0=",
        "PAYMENT_LINK_SECRET": "links",
    }
    for name, value in given.items():
        monkeypatch.setenv(name, value)  # what the launcher itself was given
    settings = stack.Settings.from_env()
    doors = ("RASA_TOKEN", "REST_CHANNEL_TOKEN", "CONSOLE_RASA_TOKEN")

    def held(env: dict[str, str]) -> dict[str, str]:
        return {name: env[name] for name in doors if name in env}

    assert held(stack.child_env(settings, stack.RASA_SERVER_DOORS)) == {
        "RASA_TOKEN": "api-token",
        "REST_CHANNEL_TOKEN": "rest-token",
        "CONSOLE_RASA_TOKEN": "console-token",
    }
    assert held(stack.child_env(settings, stack.CONSOLE_DOORS)) == {"CONSOLE_RASA_TOKEN": "console-token"}
    assert held(stack.child_env(settings)) == {}  # action server, outbox worker, training, migrations


def test_development_generates_the_identity_secret_once_and_passes_it_to_every_process(monkeypatch, tmp_path):
    from bot.settings import Settings

    monkeypatch.setattr(stack, "VAR_DIR", tmp_path)
    settings = Settings.from_env({"BOT_ENV": "development"})
    first = stack.payment_secrets(settings)["IDENTITY_SECRET"]
    assert len(first) >= 32 and (tmp_path / "identity_secret").read_text().strip() == first
    assert stack.payment_secrets(settings)["IDENTITY_SECRET"] == first  # kept, not regenerated
    given = Settings.from_env({"BOT_ENV": "development", "IDENTITY_SECRET": "from-the-environment"})
    assert stack.payment_secrets(given)["IDENTITY_SECRET"] == "from-the-environment"


def test_production_without_identity_secret_does_not_start(monkeypatch, tmp_path):
    from bot.settings import Settings

    monkeypatch.setattr(stack, "VAR_DIR", tmp_path)
    production = Settings.from_env(
        {"OTP_SECRET_KEY": "Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9vYmFyYmE=", "PAYMENT_LINK_SECRET": "s"}
    )
    with pytest.raises(SystemExit):
        stack.payment_secrets(production)
    assert not (tmp_path / "identity_secret").exists()


def test_the_notification_intake_gets_its_own_secret_and_only_it(monkeypatch, tmp_path):
    import subprocess
    import sys

    from bot.settings import Settings

    monkeypatch.setattr(stack, "VAR_DIR", tmp_path)
    started = []

    def fake_start(command, settings, doors=(), extra=None):
        started.append(extra)
        return subprocess.Popen([sys.executable, "-c", "pass"])

    monkeypatch.setattr(stack, "start", fake_start)
    development = stack.notification_processes(Settings.from_env({"BOT_ENV": "development"}))
    assert [child.name for child in development] == ["Notification worker", "Notification intake"]
    for child in development:
        child.start().popen.wait()
    secret = (tmp_path / "notify_webhook_secret").read_text().strip()
    assert len(secret) >= 32 and started == [None, {"NOTIFY_WEBHOOK_SECRET": secret}]

    production = stack.notification_processes(Settings.from_env({"IDENTITY_SECRET": "x"}))
    assert [child.name for child in production] == ["Notification worker"]  # no key: no door


def test_development_generates_the_media_link_secret_once_and_production_needs_it(monkeypatch, tmp_path):
    from bot.settings import Settings

    monkeypatch.setattr(stack, "VAR_DIR", tmp_path)
    settings = Settings.from_env({"BOT_ENV": "development"})
    first = stack.payment_secrets(settings)["MEDIA_LINK_SECRET"]
    assert len(first) >= 32 and (tmp_path / "media_link_secret").read_text().strip() == first
    assert stack.payment_secrets(settings)["MEDIA_LINK_SECRET"] == first
    production = Settings.from_env(
        {
            "OTP_SECRET_KEY": "Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9vYmFyYmE=",
            "PAYMENT_LINK_SECRET": "s",
            "IDENTITY_SECRET": "i",
        }
    )
    with pytest.raises(SystemExit):
        stack.payment_secrets(production)
    given = Settings.from_env(
        {
            "OTP_SECRET_KEY": "Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9vYmFyYmE=",
            "PAYMENT_LINK_SECRET": "s",
            "IDENTITY_SECRET": "i",
            "MEDIA_LINK_SECRET": "m",
        }
    )
    assert stack.payment_secrets(given)["MEDIA_LINK_SECRET"] == "m"
