"""Typed failures of a CRM/ERP reached over HTTP; all are BackendUnavailable, so actions apologise."""

from __future__ import annotations

from bot.adapters.base import BackendUnavailable


class BackendTimeout(BackendUnavailable):
    """The system did not connect or answer within the configured timeout."""


class BackendUnreachable(BackendUnavailable):
    """The connection failed: refused, reset, DNS, TLS."""


class BackendServerError(BackendUnavailable):
    """The system answered 5xx or 429: it is there but cannot serve now."""

    def __init__(self, message: str, status: int, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after_s = retry_after_s


class CircuitOpen(BackendUnavailable):
    """Recent calls kept failing: fail fast instead of waiting on a system that is down."""


class BackendRejected(BackendUnavailable):
    """The system refused the request (4xx): retrying the same request cannot help."""

    retryable = False

    def __init__(self, message: str, status: int, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class BackendProtocolError(BackendUnavailable):
    """The answer does not follow docs/crm-erp-api.yaml (not JSON, a field missing or malformed).

    Retryable: a proxy's HTML error page during an outage looks like this too.
    """
