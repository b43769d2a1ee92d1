"""CRM, ERP and case book over HTTP (docs/crm-erp-api.yaml), and the reference server that speaks it."""

from bot.adapters.rest.adapters import RestCaseBook, RestCrm, RestErp
from bot.adapters.rest.client import RestClient
from bot.adapters.rest.errors import (
    BackendProtocolError,
    BackendRejected,
    BackendServerError,
    BackendTimeout,
    BackendUnreachable,
    CircuitOpen,
)

__all__ = [
    "BackendProtocolError",
    "BackendRejected",
    "BackendServerError",
    "BackendTimeout",
    "BackendUnreachable",
    "CircuitOpen",
    "RestCaseBook",
    "RestClient",
    "RestCrm",
    "RestErp",
]
