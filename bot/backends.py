"""Builds the CRM, ERP and case book the settings ask for, once per process."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from bot.adapters.base import CaseBook, Crm, Erp
from bot.adapters.rest import RestCaseBook, RestClient, RestCrm, RestErp
from bot.adapters.sql import SqlCaseBook, SqlCrm, SqlErp, SqlStore
from bot.outbox import Outbox
from bot.settings import Settings, current


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
    erp = RestErp(RestClient("ERP", settings.erp)) if settings.erp.is_rest else SqlErp(store)
    return Backends(crm=crm, erp=erp, cases=cases, outbox=Outbox(store))


@lru_cache(maxsize=1)
def backends() -> Backends:
    """This process's backends, built from its environment on first use."""
    return build_backends(current())
