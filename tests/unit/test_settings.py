import pytest

from bot.settings import DEFAULT_DEMO_DATA, PROJECT_ROOT, Settings, SettingsError, required_token


def test_nothing_configured_gives_the_embedded_defaults():
    settings = Settings.from_env({})
    assert settings.database_url == f"sqlite:///{PROJECT_ROOT / 'var' / 'bot.db'}"
    assert settings.redis_url is None
    assert settings.demo_data == DEFAULT_DEMO_DATA
    assert (settings.rasa_port, settings.action_port) == (5005, 5055)
    assert settings.bot_timezone == "America/Mexico_City"
    assert settings.action_endpoint_url == "http://127.0.0.1:5055/webhook"


def test_production_is_the_default_and_development_must_be_asked_for():
    assert not Settings.from_env({}).is_development
    assert Settings.from_env({"BOT_ENV": "development"}).is_development
    # What a forgotten BOT_ENV used to let through is refused now.
    for unsafe in ({"TWILIO_VALIDATE_SIGNATURE": "false"}, {"BOT_NOW": "2031-01-01T00:00:00-03:00"}):
        with pytest.raises(SettingsError, match="BOT_ENV=development"):
            Settings.from_env(unsafe)


def test_internal_services_listen_on_loopback_unless_configured():
    settings = Settings.from_env({})
    assert (settings.rasa_host, settings.action_host, settings.console_host) == ("127.0.0.1",) * 3
    assert settings.action_server_token is None
    opened = Settings.from_env(
        {
            "RASA_HOST": "0.0.0.0",  # noqa: S104 (a setting read, nothing bound)
            "ACTION_HOST": "10.0.0.5",
            "CONSOLE_HOST": "::",
            "ACTION_SERVER_TOKEN": " s ",
        }
    )
    assert (opened.rasa_host, opened.action_host, opened.console_host) == ("0.0.0.0", "10.0.0.5", "::")  # noqa: S104
    assert opened.action_server_token == "s"


@pytest.mark.parametrize("name", ["RASA_HOST", "ACTION_HOST", "CONSOLE_HOST"])
def test_a_bad_listen_address_is_named(name):
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({name: "http://0.0.0.0:80"})


def test_own_database_gets_no_demo_data_unless_asked():
    assert Settings.from_env({"DATABASE_URL": "postgresql://db/prod"}).demo_data is None
    asked = Settings.from_env({"DATABASE_URL": "postgresql://db/x", "DEMO_DATA": "data/demo/fixture.yml"})
    assert asked.demo_data == DEFAULT_DEMO_DATA


def test_empty_demo_data_turns_loading_off():
    assert Settings.from_env({"DEMO_DATA": ""}).demo_data is None


def test_values_are_read_from_the_environment():
    settings = Settings.from_env(
        {
            "BOT_ENV": "production",
            "REDIS_URL": "redis://127.0.0.1:6379/0",
            "RASA_PORT": "6005",
            "ACTION_PORT": "6055",
            "BOT_TIMEZONE": "America/Lima",
            "DEFAULT_COUNTRY": "pe",
            "RASA_TOKEN": " secret ",
        }
    )
    assert not settings.is_development
    assert (settings.rasa_port, settings.action_port) == (6005, 6055)
    assert settings.bot_timezone == "America/Lima"
    assert settings.default_country == "PE"
    assert settings.rasa_token == "secret"
    assert settings.redis_url == "redis://127.0.0.1:6379/0"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("BOT_TIMEZONE", "Mars/Olympus"),
        ("RASA_PORT", "http"),
        ("ACTION_PORT", "70000"),
        ("DEFAULT_COUNTRY", "XX"),
        ("BOT_ENV", "staging"),
    ],
)
def test_a_bad_value_is_refused_with_its_name(name, value):
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({name: value})


def test_twilio_settings_are_read_and_public_url_loses_its_trailing_slash():
    settings = Settings.from_env(
        {
            "TWILIO_ACCOUNT_SID": "AC123",
            "TWILIO_AUTH_TOKEN": "secret",
            "TWILIO_WHATSAPP_NUMBER": "+14155238886",
            "TWILIO_SMS_NUMBER": "+15005550006",
            "TWILIO_API_BASE": "http://127.0.0.1:9999",
            "PUBLIC_URL": "https://bot.example.com/",
        }
    )
    assert (settings.twilio_account_sid, settings.twilio_auth_token) == ("AC123", "secret")
    assert settings.public_url == "https://bot.example.com"
    assert settings.twilio_validate_signature


def test_signature_checks_can_be_turned_off_only_in_development():
    development = {"TWILIO_VALIDATE_SIGNATURE": "false", "BOT_ENV": "development"}
    assert not Settings.from_env(development).twilio_validate_signature
    with pytest.raises(SettingsError, match="only with BOT_ENV=development"):
        Settings.from_env({"TWILIO_VALIDATE_SIGNATURE": "false", "BOT_ENV": "production"})
    with pytest.raises(SettingsError, match="only with BOT_ENV=development"):
        Settings.from_env({"TWILIO_VALIDATE_SIGNATURE": "false"})  # production by default
    with pytest.raises(SettingsError, match="TWILIO_VALIDATE_SIGNATURE"):
        Settings.from_env({"TWILIO_VALIDATE_SIGNATURE": "maybe"})


def test_public_url_must_be_a_full_url():
    with pytest.raises(SettingsError, match="PUBLIC_URL"):
        Settings.from_env({"PUBLIC_URL": "bot.example.com"})


def test_the_console_reaches_rasa_on_loopback_unless_rasa_url_says_where():
    assert Settings.from_env({"RASA_PORT": "5010"}).rasa_base_url == "http://127.0.0.1:5010"
    assert Settings.from_env({"RASA_URL": "http://rasa-lb:5005/"}).rasa_base_url == "http://rasa-lb:5005"
    with pytest.raises(SettingsError, match="RASA_URL"):
        Settings.from_env({"RASA_URL": "rasa-lb:5005"})


def test_the_outbox_workers_health_endpoint_listens_on_loopback_unless_told():
    settings = Settings.from_env({})
    assert (settings.outbox_worker_host, settings.outbox_worker_port) == ("127.0.0.1", 5056)
    with pytest.raises(SettingsError, match="OUTBOX_WORKER_PORT"):
        Settings.from_env({"OUTBOX_WORKER_PORT": "0"})


# --- CRM/ERP backends ---


def test_backends_are_sql_unless_asked():
    settings = Settings.from_env({})
    assert (settings.crm.kind, settings.erp.kind) == ("sql", "sql")
    assert not settings.crm.is_rest and settings.crm_server_port == 8090
    assert settings.crm_server_database_url == f"sqlite:///{PROJECT_ROOT / 'var' / 'crm.db'}"
    assert settings.crm_server_demo_data == DEFAULT_DEMO_DATA


def test_the_reference_servers_own_database_gets_no_demo_data_unless_asked():
    own = Settings.from_env({"CRM_SERVER_DATABASE_URL": "postgresql://db/crm"})
    assert own.crm_server_demo_data is None
    asked = Settings.from_env({"CRM_SERVER_DATABASE_URL": "postgresql://db/crm", "DEMO_DATA": "x.yml"})
    assert asked.crm_server_demo_data == PROJECT_ROOT / "x.yml"


def test_rest_backends_read_url_credentials_and_timeouts():
    settings = Settings.from_env(
        {
            "CRM_BACKEND": "rest",
            "CRM_URL": "https://crm.example.com/v1/",
            "CRM_TOKEN": "t0k",
            "ERP_BACKEND": "REST",
            "ERP_URL": "http://127.0.0.1:8090/v1",
            "ERP_API_KEY": "k3y",
            "ERP_READ_TIMEOUT_S": "2.5",
            "ERP_CIRCUIT_FAILURES": "3",
            "ERP_READ_RETRIES": "0",
        }
    )
    assert settings.crm.is_rest and settings.crm.url == "https://crm.example.com/v1"
    assert (settings.crm.token, settings.crm.api_key) == ("t0k", None)
    assert (settings.erp.api_key, settings.erp.read_timeout_s) == ("k3y", 2.5)
    assert (settings.erp.circuit_failures, settings.erp.read_retries) == (3, 0)


@pytest.mark.parametrize("system", ["CRM", "ERP"])
def test_rest_without_a_url_says_what_to_set(system):
    with pytest.raises(SettingsError, match=f"{system}_BACKEND=rest needs {system}_URL"):
        Settings.from_env({f"{system}_BACKEND": "rest"})


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"CRM_BACKEND": "soap"}, "CRM_BACKEND"),
        ({"ERP_BACKEND": "rest", "ERP_URL": "erp.local"}, "ERP_URL"),
        ({"CRM_TOKEN": "a", "CRM_API_KEY": "b"}, "CRM_TOKEN or CRM_API_KEY"),
        ({"CRM_READ_TIMEOUT_S": "0"}, "CRM_READ_TIMEOUT_S"),
        ({"ERP_READ_RETRIES": "-1"}, "ERP_READ_RETRIES"),
        ({"OUTBOX_MAX_ATTEMPTS": "many"}, "OUTBOX_MAX_ATTEMPTS"),
        ({"CRM_SERVER_PORT": "0"}, "CRM_SERVER_PORT"),
    ],
)
def test_a_bad_backend_setting_is_refused_with_its_name(env, name):
    with pytest.raises(SettingsError, match=name):
        Settings.from_env(env)


def test_build_backends_picks_the_rest_adapters_when_asked():
    from bot.adapters.rest import RestCaseBook, RestCrm, RestErp
    from bot.adapters.sql import SqlCrm
    from bot.backends import build_backends

    url = "http://127.0.0.1:8090/v1"
    mixed = build_backends(Settings.from_env({"CRM_BACKEND": "sql", "ERP_BACKEND": "rest", "ERP_URL": url}))
    assert isinstance(mixed.crm, SqlCrm) and isinstance(mixed.erp, RestErp)
    rest = build_backends(Settings.from_env({"CRM_BACKEND": "rest", "CRM_URL": url}))
    assert isinstance(rest.crm, RestCrm) and isinstance(rest.cases, RestCaseBook)
    assert rest.outbox is not None


def test_rasa_patches_are_on_by_default_and_off_turns_them_off():
    assert Settings.from_env({}).rasa_patches
    assert not Settings.from_env({"RASA_PATCHES": "OFF"}).rasa_patches
    with pytest.raises(SettingsError, match="RASA_PATCHES='maybe': use on .* or off"):
        Settings.from_env({"RASA_PATCHES": "maybe"})


def test_console_login_limits_default_to_5_per_account_20_per_address_in_15_minutes():
    settings = Settings.from_env({})
    assert settings.console_login_max_tries == 5
    assert settings.console_login_max_tries_per_address == 20
    assert settings.console_login_window_minutes == 15


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("CONSOLE_LOGIN_MAX_TRIES", "0"),
        ("CONSOLE_LOGIN_MAX_TRIES", "cinco"),
        ("CONSOLE_LOGIN_MAX_TRIES_PER_ADDRESS", "-1"),
        ("CONSOLE_LOGIN_WINDOW_MINUTES", "0"),
        ("CONSOLE_LOGIN_WINDOW_MINUTES", "2000"),
    ],
)
def test_a_console_login_limit_that_is_not_a_sensible_count_is_named(name, raw):
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({"BOT_ENV": "development", name: raw})


def test_each_door_of_the_rasa_server_has_its_own_token():
    settings = Settings.from_env(
        {"RASA_TOKEN": "api", "REST_CHANNEL_TOKEN": "rest", "CONSOLE_RASA_TOKEN": "desk"}
    )
    assert (settings.rasa_token, settings.rest_channel_token, settings.console_rasa_token) == (
        "api",
        "rest",
        "desk",
    )


@pytest.mark.parametrize(
    "env",
    [
        {"RASA_TOKEN": "same", "REST_CHANNEL_TOKEN": "same"},
        {"RASA_TOKEN": "same", "CONSOLE_RASA_TOKEN": "same"},
        {"REST_CHANNEL_TOKEN": "same", "CONSOLE_RASA_TOKEN": "same"},
    ],
)
def test_one_value_for_two_doors_is_refused(env):
    with pytest.raises(SettingsError, match="same value"):
        Settings.from_env(env)


@pytest.mark.parametrize("variable", ["RASA_TOKEN", "REST_CHANNEL_TOKEN", "CONSOLE_RASA_TOKEN"])
def test_a_missing_door_token_says_what_to_set(variable):
    with pytest.raises(SettingsError, match=f"{variable} must be set: .*var/{variable.lower()}"):
        required_token(Settings.from_env({}), variable)
    assert required_token(Settings.from_env({variable: "secret"}), variable) == "secret"


def test_the_http_api_only_reads_unless_writes_are_turned_on():
    assert Settings.from_env({}).rasa_api_writes is False
    assert Settings.from_env({"RASA_API_WRITES": "off"}).rasa_api_writes is False
    assert Settings.from_env({"RASA_API_WRITES": "ON"}).rasa_api_writes is True
    with pytest.raises(SettingsError, match="RASA_API_WRITES='yes'"):
        Settings.from_env({"RASA_API_WRITES": "yes"})


def test_urls_are_shown_without_their_password():
    from bot.settings import shown_url

    assert (
        shown_url("postgresql+psycopg2://bot:pa55-w0rd@db:5432/bot")
        == "postgresql+psycopg2://bot:***@db:5432/bot"
    )
    assert shown_url("redis://:pa55-w0rd@127.0.0.1:6379/0") == "redis://:***@127.0.0.1:6379/0"
    assert shown_url("amqp://guest:pa55-w0rd@127.0.0.1:5672/%2F") == "amqp://guest:***@127.0.0.1:5672/%2F"
    assert shown_url("sqlite:///var/bot.db") == "sqlite:///var/bot.db"
    assert shown_url(None) == ""
    assert "pa55" not in shown_url("not a url :pa55-w0rd@")


def test_media_settings_and_where_twilio_fetches_media():
    from bot.settings import media_base_url, require_media_secret

    settings = Settings.from_env({"BOT_ENV": "development", "RASA_PORT": "5099"})
    assert (settings.media_link_ttl_minutes, settings.media_max_bytes) == (60, 5 * 1024 * 1024)
    assert media_base_url(settings) == "http://127.0.0.1:5099"  # only this machine reaches it
    public = Settings.from_env({"BOT_ENV": "development", "PUBLIC_URL": "https://bot.example.com/"})
    assert media_base_url(public) == "https://bot.example.com"
    with pytest.raises(SettingsError, match="MEDIA_LINK_SECRET"):
        require_media_secret(settings)
    for name, value in (("MEDIA_LINK_TTL", "0"), ("MEDIA_MAX_BYTES", "100"), ("MEDIA_MAX_BYTES", "99999999")):
        with pytest.raises(SettingsError, match=name):
            Settings.from_env({"BOT_ENV": "development", name: value})
