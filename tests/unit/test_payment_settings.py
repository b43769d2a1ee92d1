"""The payment and one-time-code settings: defaults, checks, and no start without the keys."""

from decimal import Decimal

import pytest
from cryptography.fernet import Fernet

from bot.settings import Settings, SettingsError, require_payment_secrets


def test_payment_defaults():
    settings = Settings.from_env({})
    assert settings.payment_base_url == "https://pagos.example.com/pagar"
    assert (settings.payment_link_ttl_minutes, settings.verification_ttl_minutes) == (1440, 60)
    assert settings.payment_handoff_threshold == Decimal("100000")


def test_payment_values_are_read():
    key = Fernet.generate_key().decode()
    settings = Settings.from_env(
        {
            "OTP_SECRET_KEY": key,
            "PAYMENT_LINK_SECRET": "s3cret",
            "PAYMENT_BASE_URL": "https://pay.example.com/p/",
            "PAYMENT_LINK_TTL": "30",
            "PAYMENT_HANDOFF_THRESHOLD": "5000.50",
            "VERIFICATION_TTL_MINUTES": "15",
        }
    )
    assert (settings.otp_secret_key, settings.payment_link_secret) == (key, "s3cret")
    assert settings.payment_base_url == "https://pay.example.com/p"
    assert (settings.payment_link_ttl_minutes, settings.verification_ttl_minutes) == (30, 15)
    assert settings.payment_handoff_threshold == Decimal("5000.50")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("OTP_SECRET_KEY", "not-a-fernet-key"),
        ("PAYMENT_BASE_URL", "pagos.example.com"),
        ("PAYMENT_LINK_TTL", "0"),
        ("PAYMENT_HANDOFF_THRESHOLD", "-3"),
        ("PAYMENT_HANDOFF_THRESHOLD", "mucho"),
        ("VERIFICATION_TTL_MINUTES", "una hora"),
    ],
)
def test_bad_payment_values_name_the_variable(name, value):
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({name: value})


def test_without_the_keys_the_payment_services_refuse_to_start():
    with pytest.raises(SettingsError, match="OTP_SECRET_KEY and PAYMENT_LINK_SECRET"):
        require_payment_secrets(Settings.from_env({"BOT_ENV": "production", "RASA_TOKEN": "t"}))
    require_payment_secrets(
        Settings.from_env({"OTP_SECRET_KEY": Fernet.generate_key().decode(), "PAYMENT_LINK_SECRET": "s"})
    )
