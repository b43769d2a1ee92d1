"""The HTTP core every REST adapter method goes through: pooling, timeouts, retries, breaker, errors.

An operation of the contract is one small method on top of `get` (reads: retried with
exponential backoff and full jitter on timeouts, connection errors, 5xx and 429) or `write`
(POST/PUT/PATCH: sent once, always with an Idempotency-Key, so the caller or the outbox can
send it again and the system applies it once).
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from bot.adapters.base import current_idempotency_key
from bot.adapters.rest.breaker import CircuitBreaker
from bot.adapters.rest.errors import (
    BackendProtocolError,
    BackendRejected,
    BackendServerError,
    BackendTimeout,
    BackendUnreachable,
    CircuitOpen,
)
from bot.settings import BackendSettings

logger = logging.getLogger(__name__)

BACKOFF_BASE_S = 0.2  # first retry after up to 0.2 s, then 0.4, 0.8 ... (full jitter)
BACKOFF_CAP_S = 2.0
RETRY_AFTER_CAP_S = 2.0  # a customer is waiting: honour Retry-After only this far
POOL_SIZE = 16  # connections kept per host: one per action-server worker thread is plenty


@dataclass(frozen=True)
class Reply:
    status: int
    body: Any  # parsed JSON, or None for an empty answer


class RestClient:
    """One system (the CRM or the ERP) at `settings.url`, with one pooled Session and one breaker."""

    def __init__(
        self,
        system: str,
        settings: BackendSettings,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not settings.url:
            raise ValueError(f"{system}: the REST adapter needs a URL")
        self.system = system
        self.base_url = settings.url.rstrip("/")
        self.timeout = (settings.connect_timeout_s, settings.read_timeout_s)
        self.read_retries = settings.read_retries
        self.breaker = CircuitBreaker(settings.circuit_failures, settings.circuit_cooldown_s, clock)
        self._sleep = sleep
        self.session = requests.Session()
        # Retries are ours (reads only, with jitter); urllib3 must not retry writes behind our back.
        pooled = HTTPAdapter(pool_connections=2, pool_maxsize=POOL_SIZE, max_retries=0)
        self.session.mount("http://", pooled)
        self.session.mount("https://", pooled)
        self.session.headers.update({"Accept": "application/json", "User-Agent": "autoservicio-bot/1"})
        if settings.token:
            self.session.headers["Authorization"] = f"Bearer {settings.token}"
        elif settings.api_key:
            self.session.headers["X-API-Key"] = settings.api_key

    # --- the generic core -------------------------------------------------------------------

    def get(
        self,
        path: str,
        params: Mapping[str, str] | None = None,
        *,
        missing_ok: bool = True,
        document: str | None = None,
    ) -> Any:
        """GET `path` and return its JSON; None for 404 when `missing_ok`. Retried when it may help.
        With `document` (a media type, e.g. application/pdf) the answer is that document's bytes."""
        attempt = 0
        while True:
            try:
                reply = self._send("GET", path, params=params, document=document)
                if reply.status == 404 and missing_ok:
                    return None
                return self._expect(reply, "GET", path, (200,))
            except (BackendTimeout, BackendUnreachable, BackendServerError) as error:
                if attempt >= self.read_retries:
                    raise
                delay = self._backoff(attempt, error)
                attempt += 1
                logger.warning(
                    "%s GET %s failed (%s); retry %d in %.2f s", self.system, path, error, attempt, delay
                )
                self._sleep(delay)

    def write(
        self,
        method: str,
        path: str,
        body: Any,
        *,
        expected: Iterable[int] = (200, 201),
        passthrough: Iterable[int] = (),
        idempotency_key: str | None = None,
    ) -> Reply:
        """Send a write once with an Idempotency-Key (the outbox's, else `idempotency_key`, else new).

        Statuses in `expected` return their reply; those in `passthrough` (e.g. 409) too, for the
        method to interpret; any other 4xx raises BackendRejected.
        """
        key = current_idempotency_key() or idempotency_key or str(uuid.uuid4())
        reply = self._send(method, path, json=body, headers={"Idempotency-Key": key})
        if reply.status in set(passthrough):
            return reply
        return Reply(reply.status, self._expect(reply, method, path, tuple(expected)))

    # --- one request ----------------------------------------------------------------------------

    def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        document: str | None = None,
    ) -> Reply:
        if not self.breaker.allow():
            raise CircuitOpen(
                f"{self.system} circuit open after repeated failures; "
                f"next probe in {self.breaker.retry_in():.0f} s"
            )
        url = f"{self.base_url}{path}"
        if document:
            headers = {**(headers or {}), "Accept": f"{document}, application/json;q=0.1"}
        try:
            response = self.session.request(
                method, url, params=params, json=json, headers=headers, timeout=self.timeout
            )
        except requests.Timeout as error:
            # The exception's own text holds the full URL, query and phone number included.
            self.breaker.record_failure()
            raise BackendTimeout(
                f"{self.system} {method} {path}: {type(error).__name__} (timeouts {self.timeout} s)"
            ) from error
        except requests.RequestException as error:
            self.breaker.record_failure()
            raise BackendUnreachable(f"{self.system} {method} {path}: {type(error).__name__}") from error
        except BaseException:
            self.breaker.record_failure()  # whatever happened, a half-open probe must report back
            raise

        status = response.status_code
        if status >= 500 or status == 429:
            self.breaker.record_failure()
            raise BackendServerError(
                f"{self.system} {method} {path} answered {status}", status, _retry_after(response)
            )
        # Any other answer, a 4xx included, shows the system is up and serving.
        self.breaker.record_success()
        if document and status == 200:
            given = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
            if given != document:
                problem = f"{given or 'no content type'}, not {document}"
                raise BackendProtocolError(f"{self.system} {method} {path}: {problem}")
            return Reply(status, response.content)
        try:
            body = response.json() if response.content else None
        except ValueError:
            raise BackendProtocolError(f"{self.system} {method} {path}: the answer is not JSON") from None
        return Reply(status, body)

    def _expect(self, reply: Reply, method: str, path: str, expected: tuple[int, ...]) -> Any:
        if reply.status in expected:
            return reply.body
        if 400 <= reply.status < 500:
            code = reply.body.get("code") if isinstance(reply.body, dict) else None
            raise BackendRejected(
                f"{self.system} {method} {path} refused with {reply.status} ({code or 'no code'})",
                reply.status,
                code,
            )
        raise BackendProtocolError(f"{self.system} {method} {path}: unexpected status {reply.status}")

    def _backoff(self, attempt: int, error: Exception) -> float:
        retry_after = getattr(error, "retry_after_s", None)
        if retry_after is not None:
            return min(retry_after, RETRY_AFTER_CAP_S)
        return random.uniform(0, min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2**attempt))

    def close(self) -> None:
        self.session.close()


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After", "")
    return float(value) if value.isdigit() else None
