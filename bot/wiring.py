"""The composition root: builds the settings, clock, CRM/ERP adapters, outbox, messaging store,
sender and handoff services once per process and hands them to the entrypoints.

Entrypoints (actions/, connectors/, the console, the outbox worker, CLIs) call `wiring()` and
pass what a service needs as arguments; nothing else in bot/ imports this module
(tests/unit/test_architecture.py). Tests build the same graph with fakes (`Wiring.of(...)`) and
`install()` it, so one call replaces what every module of the process sees.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from bot.adapters.base import CaseBook, Crm, Erp
from bot.adapters.outbox_sql import Outbox
from bot.adapters.sql import SqlOtpSecrets, SqlStore
from bot.backends import Backends, build_backends
from bot.clock import Clock, SystemClock
from bot.consents.store import ConsentBook
from bot.handoff.logins import LoginLimits
from bot.handoff.service import HandoffServices, build_services
from bot.identity import IdentitySigner
from bot.media_links import MediaLinkSigner
from bot.messaging.attachments import AttachmentStore
from bot.messaging.journal import InboundJournal
from bot.messaging.memory import ConversationMemory, memory_for
from bot.messaging.sender import MessageSender, transport_for
from bot.messaging.store import MessagingStore
from bot.messaging.templates import DEFAULT_TEMPLATES, TemplateCatalog, check_content_sids, load_templates
from bot.settings import (
    Settings,
    media_base_url,
    require_identity_secret,
    require_media_secret,
    require_payment_secrets,
)
from bot.verification import CodeVerifier, IdentityGuesses, attempt_store_for


class NotWired:
    """A part a test did not give: any use says so instead of reaching a real system."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attribute: str) -> Any:
        raise LookupError(f"{self._name} is not wired in this test: pass it to Wiring.of({self._name}=...)")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise LookupError(f"{self._name} is not wired in this test: pass it to Wiring.of({self._name}=...)")


@dataclass
class Wiring:
    """Everything a process of the assistant uses, built once."""

    settings: Settings
    clock: Clock
    backends: Backends
    messaging: MessagingStore
    handoff: HandoffServices
    memory: ConversationMemory  # what the inbound rules remember between messages
    journal: InboundJournal | None = None  # the Twilio channel's inbound messages, durable
    consents: ConsentBook | None = None  # what each number receives, per topic and channel, and the log
    # The approved WhatsApp templates, checked when the process starts (None: the shipped file,
    # read when the sender is first built).
    templates: TemplateCatalog | None = None
    # Built on first use: the verifier needs the payment secrets (refused without them), and the
    # sender's HTTP session belongs to the event loop that first sends.
    verifier: CodeVerifier | None = None
    message_sender: MessageSender | None = None
    login_limits: LoginLimits | None = None
    identity: IdentitySigner | None = None
    guesses: IdentityGuesses | None = None
    # Agents' uploads (the console stores, the Rasa server serves) and the signer of media URLs.
    attachments: AttachmentStore | None = None
    media_signer: MediaLinkSigner | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def crm(self) -> Crm:
        return self.backends.crm

    @property
    def erp(self) -> Erp:
        return self.backends.erp

    @property
    def cases(self) -> CaseBook:
        return self.backends.cases

    @property
    def outbox(self) -> Outbox:
        if self.backends.outbox is None:
            raise LookupError("these backends have no outbox: build them with one")
        return self.backends.outbox

    def code_verifier(self) -> CodeVerifier:
        """The one-time-code verifier: secrets in the database, attempts in Redis or memory."""
        with self._lock:
            if self.verifier is None:
                require_payment_secrets(self.settings)
                self.verifier = CodeVerifier(
                    SqlOtpSecrets(SqlStore(self.settings.database_url)),
                    attempt_store_for(self.settings.redis_url, self.clock),
                    self.settings.otp_secret_key,
                )
            return self.verifier

    def identity_signer(self) -> IdentitySigner:
        """Signs and checks identity claims (IDENTITY_SECRET; refused without it)."""
        with self._lock:
            if self.identity is None:
                require_identity_secret(self.settings)
                self.identity = IdentitySigner(self.settings.identity_secret)
            return self.identity

    def identity_guesses(self) -> IdentityGuesses:
        """Wrong identity answers per number and per customer: in Redis when REDIS_URL is set
        (every action-server replica counts together), else in this process on the graph's clock."""
        with self._lock:
            if self.guesses is None:
                settings = self.settings
                self.guesses = IdentityGuesses(
                    attempt_store_for(settings.redis_url, self.clock, prefix="autoservicio:identity-guess:"),
                    per_number=settings.identity_max_wrong_per_number,
                    per_customer=settings.identity_max_wrong_per_customer,
                    window=timedelta(hours=settings.identity_guess_window_hours),
                )
            return self.guesses

    def console_logins(self) -> LoginLimits:
        """The console's failed-login counts: in Redis when REDIS_URL is set (every replica and the
        unlock command see them), else in this process on the graph's clock."""
        with self._lock:
            if self.login_limits is None:
                settings = self.settings
                self.login_limits = LoginLimits(
                    attempt_store_for(settings.redis_url, self.clock, prefix="autoservicio:console-login:"),
                    per_account=settings.console_login_max_tries,
                    per_address=settings.console_login_max_tries_per_address,
                    window=timedelta(minutes=settings.console_login_window_minutes),
                )
            return self.login_limits

    def media_links(self) -> MediaLinkSigner:
        """Signs and checks the expiring URLs of invoice PDFs and agents' files (MEDIA_LINK_SECRET;
        refused without it), under PUBLIC_URL, where Twilio fetches them."""
        with self._lock:
            if self.media_signer is None:
                require_media_secret(self.settings)
                self.media_signer = MediaLinkSigner(
                    self.settings.media_link_secret,
                    media_base_url(self.settings),
                    timedelta(minutes=self.settings.media_link_ttl_minutes),
                )
            return self.media_signer

    def sender(self) -> MessageSender:
        """The one sender (Twilio, or the local outbox without an account)."""
        with self._lock:
            if self.message_sender is None:
                self.message_sender = MessageSender(
                    self.settings,
                    self.messaging,
                    transport_for(self.settings),
                    clock=self.clock,
                    templates=self.templates,
                )
            return self.message_sender

    @classmethod
    def of(cls, settings: Settings, clock: Clock, **parts: Any) -> Wiring:
        """A graph of the given parts only (tests): a part left out fails loudly when used."""
        names = ("backends", "messaging", "handoff", "memory", "consents")
        # `is None`, not falsiness: an empty in-process memory is a part given, not one left out.
        given = {
            name: part if (part := parts.pop(name, None)) is not None else NotWired(name) for name in names
        }
        return cls(settings=settings, clock=clock, **given, **parts)


def build_wiring(settings: Settings, clock: Clock | None = None) -> Wiring:
    """The real graph for `settings`: what `make run` starts each process with."""
    clock = clock or SystemClock(settings.clock_shift)
    # Every process that sends builds this graph first: a wrong templates file stops it here.
    templates = load_templates(settings.whatsapp_templates or DEFAULT_TEMPLATES)
    # The shipped placeholder SIDs stop a production process that would send them to Twilio.
    check_content_sids(
        templates,
        production=not settings.is_development,
        sends_to_twilio=bool(settings.twilio_account_sid and settings.twilio_auth_token),
    )
    store = SqlStore(settings.database_url)
    return Wiring(
        settings=settings,
        clock=clock,
        backends=build_backends(settings, store),
        messaging=MessagingStore(store, clock),
        handoff=build_services(settings, store, clock),
        memory=memory_for(settings.redis_url),
        journal=InboundJournal(store, clock),
        consents=ConsentBook(store, clock),
        templates=templates,
        attachments=AttachmentStore(store, clock, settings.media_max_bytes),
    )


_process: Wiring | None = None
_building = threading.Lock()


def wiring() -> Wiring:
    """This process's graph, built from its environment on first use."""
    global _process
    with _building:
        if _process is None:
            _process = build_wiring(Settings.from_env())
        return _process


def install(graph: Wiring | None) -> None:
    """Make `graph` this process's graph (None: build it again from the environment)."""
    global _process
    with _building:
        _process = graph
