"""The CRM, ERP, case book and outbox the settings ask for: `sql` on DATABASE_URL, or `rest`.

Only the composition root (bot/wiring.py) and tests build them; services receive them as
arguments from their callers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from bot.adapters.base import CaseBook, Crm, Erp
from bot.adapters.outbox_sql import Outbox
from bot.adapters.payment_links import PaymentLinkSigner
from bot.adapters.rest import RestCaseBook, RestClient, RestCrm, RestErp
from bot.adapters.sql import SqlCaseBook, SqlCrm, SqlErp, SqlStore
from bot.settings import Settings


@dataclass(frozen=True)
class Backends:
    crm: Crm
    erp: Erp
    cases: CaseBook
    outbox: Outbox | None = None  # where writes wait while a system is down


def build_backends(settings: Settings, store: SqlStore | None = None) -> Backends:
    """CRM (with the case book) and ERP as CRM_BACKEND / ERP_BACKEND say: `sql` on DATABASE_URL,
    or `rest` against CRM_URL / ERP_URL (docs/crm-erp-api.yaml); the outbox on DATABASE_URL."""
    store = store or SqlStore(settings.database_url)
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


def payment_link_signer(settings: Settings) -> PaymentLinkSigner | None:
    """The signer of the embedded ERP's payment links (None without PAYMENT_LINK_SECRET)."""
    if not settings.payment_link_secret:
        return None
    return PaymentLinkSigner(
        settings.payment_link_secret,
        settings.payment_base_url,
        timedelta(minutes=settings.payment_link_ttl_minutes),
    )
