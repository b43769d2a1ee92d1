"""Builds the CRM, ERP and case book the settings ask for, once per process."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from bot.adapters.base import CaseBook, Crm, Erp
from bot.adapters.sql import SqlCaseBook, SqlCrm, SqlErp, SqlStore
from bot.settings import Settings, current


@dataclass(frozen=True)
class Backends:
    crm: Crm
    erp: Erp
    cases: CaseBook


def build_backends(settings: Settings) -> Backends:
    """The SQL CRM, ERP and case book on DATABASE_URL (the REST adapter joins here when it exists)."""
    store = SqlStore(settings.database_url)
    return Backends(crm=SqlCrm(store), erp=SqlErp(store), cases=SqlCaseBook(store))


@lru_cache(maxsize=1)
def backends() -> Backends:
    """This process's backends, built from its environment on first use."""
    return build_backends(current())
