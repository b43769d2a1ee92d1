"""Every setting of the assistant, read from the environment in this one place."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers

PROJECT_ROOT = Path(__file__).resolve().parent.parent
VAR_DIR = PROJECT_ROOT / "var"
DEFAULT_DEMO_DATA = PROJECT_ROOT / "data" / "demo" / "fixture.yml"
ENVIRONMENTS = ("development", "production")


class SettingsError(ValueError):
    """A setting has a value the assistant cannot use; the message names it and says what fits."""


@dataclass(frozen=True)
class Settings:
    """The assistant's configuration. Build it with `Settings.from_env()`."""

    environment: str
    database_url: str
    redis_url: str | None
    demo_data: Path | None
    rasa_port: int
    action_port: int
    rasa_token: str | None
    bot_timezone: str
    default_country: str
    twilio_account_sid: str | None = None
    twilio_auth_token: str | None = None
    twilio_whatsapp_number: str | None = None
    twilio_sms_number: str | None = None
    twilio_messaging_service_sid: str | None = None
    twilio_api_base: str | None = None
    public_url: str | None = None
    twilio_validate_signature: bool = True
    # --- handoff ---
    console_port: int = 8080
    console_secret: str | None = None  # signs the console's session cookies and CSRF tokens
    handoff_config: Path | None = None  # None: bot/handoff_config.yml
    handoff_webhook_url: str | None = None
    handoff_webhook_secret: str | None = None
    # --- end handoff ---

    @property
    def is_development(self) -> bool:
        return self.environment == "development"

    @property
    def action_endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.action_port}/webhook"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read and check every setting; unset ones take the embedded defaults."""
        env = os.environ if env is None else env

        def get(name: str) -> str | None:
            value = env.get(name, "").strip()
            return value or None

        environment = (get("BOT_ENV") or "development").lower()
        if environment not in ENVIRONMENTS:
            raise SettingsError(f"BOT_ENV={environment!r}: use one of {', '.join(ENVIRONMENTS)}.")

        database_url = get("DATABASE_URL")
        # The demo fixture is loaded by default only into the embedded SQLite database, so that
        # pointing DATABASE_URL at a real database never replaces its tables by accident.
        if "DEMO_DATA" in env:
            demo_value = get("DEMO_DATA")
            demo_data = Path(demo_value).expanduser() if demo_value else None
        else:
            demo_data = DEFAULT_DEMO_DATA if database_url is None else None
        if demo_data is not None and not demo_data.is_absolute():
            demo_data = PROJECT_ROOT / demo_data

        timezone = get("BOT_TIMEZONE") or "America/Mexico_City"
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise SettingsError(
                f"BOT_TIMEZONE={timezone!r} is not an IANA time zone "
                "(examples: America/Mexico_City, America/Lima)."
            ) from None

        country = (get("DEFAULT_COUNTRY") or "MX").upper()
        if country not in phonenumbers.SUPPORTED_REGIONS:
            raise SettingsError(
                f"DEFAULT_COUNTRY={country!r} is not an ISO 3166 country code (examples: MX, AR, PE)."
            )

        validate = (get("TWILIO_VALIDATE_SIGNATURE") or "true").lower()
        if validate not in ("true", "false"):
            raise SettingsError(f"TWILIO_VALIDATE_SIGNATURE={validate!r}: use true or false.")
        if validate == "false" and environment != "development":
            raise SettingsError(
                "TWILIO_VALIDATE_SIGNATURE=false is allowed only with BOT_ENV=development: "
                "in production every Twilio webhook must be signed."
            )
        public_url = get("PUBLIC_URL")
        if public_url and not public_url.startswith(("http://", "https://")):
            raise SettingsError(f"PUBLIC_URL={public_url!r}: give the full URL, like https://bot.example.com")

        # --- handoff ---
        handoff_config = get("HANDOFF_CONFIG")
        handoff_config_path = Path(handoff_config).expanduser() if handoff_config else None
        if handoff_config_path is not None and not handoff_config_path.is_absolute():
            handoff_config_path = PROJECT_ROOT / handoff_config_path
        if handoff_config_path is not None and not handoff_config_path.is_file():
            raise SettingsError(f"HANDOFF_CONFIG={handoff_config!r}: no such file.")
        webhook_url = get("HANDOFF_WEBHOOK_URL")
        if webhook_url and not webhook_url.startswith(("http://", "https://")):
            raise SettingsError(f"HANDOFF_WEBHOOK_URL={webhook_url!r}: give the full URL of the desk.")
        if webhook_url and environment != "development" and not get("HANDOFF_WEBHOOK_SECRET"):
            raise SettingsError(
                "HANDOFF_WEBHOOK_URL needs HANDOFF_WEBHOOK_SECRET in production (the HMAC key)."
            )
        # --- end handoff ---

        return cls(
            environment=environment,
            database_url=database_url or f"sqlite:///{VAR_DIR / 'bot.db'}",
            redis_url=get("REDIS_URL"),
            demo_data=demo_data,
            rasa_port=_port(get, "RASA_PORT", 5005),
            action_port=_port(get, "ACTION_PORT", 5055),
            rasa_token=get("RASA_TOKEN"),
            bot_timezone=timezone,
            default_country=country,
            twilio_account_sid=get("TWILIO_ACCOUNT_SID"),
            twilio_auth_token=get("TWILIO_AUTH_TOKEN"),
            twilio_whatsapp_number=get("TWILIO_WHATSAPP_NUMBER"),
            twilio_sms_number=get("TWILIO_SMS_NUMBER"),
            twilio_messaging_service_sid=get("TWILIO_MESSAGING_SERVICE_SID"),
            twilio_api_base=get("TWILIO_API_BASE"),
            public_url=public_url.rstrip("/") if public_url else None,
            twilio_validate_signature=validate == "true",
            # --- handoff ---
            console_port=_port(get, "CONSOLE_PORT", 8080),
            console_secret=get("CONSOLE_SECRET"),
            handoff_config=handoff_config_path,
            handoff_webhook_url=webhook_url,
            handoff_webhook_secret=get("HANDOFF_WEBHOOK_SECRET"),
            # --- end handoff ---
        )


def _port(get, name: str, default: int) -> int:
    raw = get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise SettingsError(f"{name}={raw!r}: use a TCP port number between 1 and 65535.")
    return int(raw)


@lru_cache(maxsize=1)
def current() -> Settings:
    """The settings of this process, read once from its environment."""
    return Settings.from_env()
