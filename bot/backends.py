"""Builds the CRM, ERP and case book the settings ask for, once per process."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache

from bot.adapters.base import CaseBook, Crm, Erp
from bot.adapters.rest import RestCaseBook, RestClient, RestCrm, RestErp
from bot.adapters.sql import SqlCaseBook, SqlCrm, SqlErp, SqlOtpSecrets, SqlStore
from bot.clock import Clock, SystemClock
from bot.messaging.sender import MessageSender, transport_for
from bot.messaging.store import MessagingStore
from bot.outbox import Outbox
from bot.payments import PaymentLinkSigner
from bot.settings import Settings, current, require_payment_secrets
from bot.verification import CodeVerifier, attempt_store_for


@dataclass(frozen=True)
class Backends:
    crm: Crm
    erp: Erp
    cases: CaseBook
    outbox: Outbox | None = None  # where writes wait while a system is down; None: on DATABASE_URL


def build_backends(settings: Settings) -> Backends:
    """CRM (with the case book) and ERP as CRM_BACKEND / ERP_BACKEND say: `sql` on DATABASE_URL,
    or `rest` against CRM_URL / ERP_URL (docs/crm-erp-api.yaml); the outbox on DATABASE_URL."""
    store = SqlStore(settings.database_url)
    if settings.crm.is_rest:
        crm_client = RestClient("CRM", settings.crm)
        crm, cases = RestCrm(crm_client), RestCaseBook(crm_client)
    else:
        crm, cases = SqlCrm(store), SqlCaseBook(store)
    if settings.erp.is_rest:
        erp: Erp = RestErp(RestClient("ERP", settings.erp))
    else:
        erp = SqlErp(store, payment_link_signer(settings))
    return Backends(crm=crm, erp=erp, cases=cases, outbox=Outbox(store))


@lru_cache(maxsize=1)
def clock() -> Clock:
    """This process's clock: the machine's, moved by BOT_NOW in development (bot/clock.py)."""
    return SystemClock(current().clock_shift)


@lru_cache(maxsize=1)
def backends() -> Backends:
    """This process's backends, built from its environment on first use."""
    return build_backends(current())


# --- payments and one-time codes (issue 6) ---


def payment_link_signer(settings: Settings) -> PaymentLinkSigner | None:
    """The signer of the embedded ERP's payment links (None without PAYMENT_LINK_SECRET)."""
    if not settings.payment_link_secret:
        return None
    return PaymentLinkSigner(
        settings.payment_link_secret,
        settings.payment_base_url,
        timedelta(minutes=settings.payment_link_ttl_minutes),
    )


@lru_cache(maxsize=1)
def code_verifier() -> CodeVerifier:
    """This process's one-time-code verifier: secrets in the database, attempts in Redis or memory."""
    settings = current()
    require_payment_secrets(settings)
    return CodeVerifier(
        SqlOtpSecrets(SqlStore(settings.database_url)),
        attempt_store_for(settings.redis_url, clock()),
        settings.otp_secret_key,
    )


@lru_cache(maxsize=1)
def message_sender() -> MessageSender:
    """The one sender (Twilio or the local outbox), for messages the actions send themselves: codes."""
    settings = current()
    store = MessagingStore(SqlStore(settings.database_url), clock())
    return MessageSender(settings, store, transport_for(settings), clock=clock())
