"""The reference CRM/ERP server: docs/crm-erp-api.yaml over the SQL store, for `rest` mode and integrators.

`make crm-server` runs it (`python -m reference`): a threaded stdlib HTTP server (blocking SQL is
fine on its own threads, and it needs nothing outside the lock). It checks the same credentials
the bot sends (CRM_TOKEN / ERP_TOKEN as bearer tokens, CRM_API_KEY / ERP_API_KEY as X-API-Key),
stores every Idempotency-Key with the first answer in its own `idempotency_keys` table, in the
same transaction as the change, and replays that answer for a repeated key. Fault injection
(latency, 5xx, answers lost after the change) exists only as a Python object handed to the
constructor by tests: no request, setting or flag can turn it on.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bot.adapters.base import BackendUnavailable
from bot.adapters.sql import SqlStore
from bot.payments import PaymentLinkSigner
from bot.settings import VAR_DIR, Settings
from reference.operations import (
    PAYMENT_LINKS,
    ROUTES,
    ApiError,
    Document,
    Handler,
    create_payment_link,
    server_now,
)
from reference.tables import create_tables, idempotency_keys

logger = logging.getLogger(__name__)

BASE_PATH = "/v1"
MAX_BODY_BYTES = 64 * 1024
IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")


@dataclass
class Credentials:
    """Accepted bearer tokens and API keys; none at all means an open server (development)."""

    tokens: frozenset[str] = frozenset()
    api_keys: frozenset[str] = frozenset()

    @property
    def open(self) -> bool:
        return not self.tokens and not self.api_keys

    @classmethod
    def from_settings(cls, settings: Settings) -> Credentials:
        tokens = {s.token for s in (settings.crm, settings.erp) if s.token}
        keys = {s.api_key for s in (settings.crm, settings.erp) if s.api_key}
        return cls(frozenset(tokens), frozenset(keys))

    def accepts(self, headers: Any) -> bool:
        if self.open:
            return True
        authorization = headers.get("Authorization") or ""
        if authorization.startswith("Bearer ") and authorization[7:].strip() in self.tokens:
            return True
        return (headers.get("X-API-Key") or "") in self.api_keys


@dataclass
class Faults:
    """Test-only trouble: set by tests on the server object, never from outside the process."""

    latency_s: float = 0.0  # every request waits this long before it is handled
    _fail_left: int = 0
    _fail_status: int = 500
    _lose_left: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def fail_next(self, count: int, status: int = 500) -> None:
        """The next `count` requests answer `status` without being handled."""
        with self._lock:
            self._fail_left, self._fail_status = count, status

    def lose_next_answers(self, count: int) -> None:
        """The next `count` writes are applied, then answered 500: the client cannot know."""
        with self._lock:
            self._lose_left = count

    def clear(self) -> None:
        with self._lock:
            self.latency_s, self._fail_left, self._lose_left = 0.0, 0, 0

    def take_failure(self) -> int | None:
        with self._lock:
            if self._fail_left <= 0:
                return None
            self._fail_left -= 1
            return self._fail_status

    def take_lost_answer(self) -> bool:
        with self._lock:
            if self._lose_left <= 0:
                return False
            self._lose_left -= 1
            return True


# --- the HTTP server ----------------------------------------------------------------------------


class ReferenceServer:
    """The contract over `store`, on 127.0.0.1:`port` (0 picks a free port), on its own threads."""

    def __init__(
        self,
        store: SqlStore,
        credentials: Credentials | None = None,
        port: int = 0,
        faults: Faults | None = None,
        host: str = "127.0.0.1",
        link_signer: PaymentLinkSigner | None = None,
    ) -> None:
        self.store = store
        create_tables(store)
        self.routes = [*ROUTES, ("POST", PAYMENT_LINKS, partial(create_payment_link, link_signer), True)]
        self.credentials = credentials or Credentials()
        self.faults = faults or Faults()
        # One idempotent write at a time, so two requests with one key never race. Several server
        # processes would instead rely on the key's primary key: the loser gets a 500 and its
        # client's retry is then answered from the stored response.
        self._write_lock = threading.Lock()
        # (method, path) of the latest requests, for tests; bounded for a long-running server.
        self.received: deque[tuple[str, str]] = deque(maxlen=1000)
        self.httpd = ThreadingHTTPServer((host, port), _handler_class(self))
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}{BASE_PATH}"

    def start(self) -> ReferenceServer:
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="crm-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread:
            self._thread.join(timeout=5)

    def serve_forever(self) -> None:
        self.httpd.serve_forever()

    # --- request handling ----------------------------------------------------------------------

    def answer(self, method: str, target: str, headers: Any, raw_body: bytes) -> tuple[int, Any, dict]:
        """(status, JSON body, extra headers) for one request."""
        self.received.append((method, urlsplit(target).path))
        if self.faults.latency_s:
            time.sleep(self.faults.latency_s)
        failure = self.faults.take_failure()
        if failure is not None:
            return failure, {"code": "injected_failure", "message": "test fault"}, {}
        split = urlsplit(target)
        if split.path in ("/health", f"{BASE_PATH}/health"):
            if method != "GET":
                return 405, {"code": "method_not_allowed", "message": "use GET"}, {"Allow": "GET"}
            return 200, {"status": "ok"}, {}
        if not self.credentials.accepts(headers):
            return (
                401,
                {"code": "unauthorized", "message": "send Authorization: Bearer <token> or X-API-Key"},
                {"WWW-Authenticate": 'Bearer realm="crm"'},
            )
        try:
            if not split.path.startswith(BASE_PATH + "/"):
                raise ApiError(404, "not_found", "no such path")
            path = split.path[len(BASE_PATH) :]
            query = {key: values[0] for key, values in parse_qs(split.query, keep_blank_values=True).items()}
            allowed = []
            for route_method, pattern, handler, is_write in self.routes:
                match = pattern.match(path)
                if not match:
                    continue
                allowed.append(route_method)
                if route_method != method:
                    continue
                match_values = {k: unquote(v) for k, v in match.groupdict().items()}
                if is_write:
                    return self._write(method, split.path, headers, raw_body, handler, match_values)
                with self.store.connect() as conn:
                    status, body = handler(conn, match_values, query, None)
                return status, body, {}
            if allowed:
                methods = ", ".join(sorted(set(allowed)))
                return 405, {"code": "method_not_allowed", "message": f"use {methods}"}, {"Allow": methods}
            raise ApiError(404, "not_found", "no such path")
        except ApiError as error:
            return error.status, {"code": error.code, "message": error.message}, {}
        except BackendUnavailable:
            logger.exception("reference server: database unavailable")
            return (
                503,
                {"code": "unavailable", "message": "the database is unavailable"},
                {"Retry-After": "1"},
            )

    def _write(
        self, method: str, path: str, headers: Any, raw_body: bytes, handler: Handler, match: dict
    ) -> tuple[int, Any, dict]:
        key = headers.get("Idempotency-Key") or ""
        if not IDEMPOTENCY_KEY.match(key):
            raise ApiError(
                400,
                "idempotency_key_required",
                "send an Idempotency-Key header: 1-255 visible ASCII characters",
            )
        if "json" not in (headers.get("Content-Type") or ""):
            raise ApiError(415, "unsupported_media_type", "send Content-Type: application/json")
        try:
            body = json.loads(raw_body or b"null")
        except ValueError:
            raise ApiError(400, "invalid_json", "the body is not JSON") from None
        digest = hashlib.sha256(method.encode() + b" " + path.encode() + b"\n" + raw_body).hexdigest()
        with self._write_lock:
            try:
                with self.store.connect() as conn:
                    seen = conn.execute(
                        sa.select(idempotency_keys).where(idempotency_keys.c.key == key)
                    ).first()
                    if seen is not None:
                        if seen.request_sha256 != digest:
                            raise ApiError(
                                422,
                                "idempotency_key_reused",
                                "this Idempotency-Key was used for another request",
                            )
                        return seen.status, json.loads(seen.body), {"Idempotent-Replayed": "true"}
                    status, answer = handler(conn, match, {}, body)
                    self._remember(conn, key, method, path, digest, status, answer)
            except ApiError as error:
                if error.code == "idempotency_key_reused":
                    raise
                # A refused write changes nothing (leaving the block rolled back whatever the
                # handler did), and the refusal is what a retry with this key hears again.
                status, answer = error.status, {"code": error.code, "message": error.message}
                with self.store.connect() as conn:
                    self._remember(conn, key, method, path, digest, status, answer)
        if self.faults.take_lost_answer():
            return 500, {"code": "injected_failure", "message": "applied, answer lost (test fault)"}, {}
        return status, answer, {}

    @staticmethod
    def _remember(
        conn: Connection, key: str, method: str, path: str, digest: str, status: int, answer: Any
    ) -> None:
        conn.execute(
            idempotency_keys.insert().values(
                key=key,
                method=method,
                path=path,
                request_sha256=digest,
                status=status,
                body=json.dumps(answer, ensure_ascii=False),
                created_at=server_now().replace(tzinfo=None),
            )
        )


def _handler_class(server: ReferenceServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, so the bot's pooled connections are reused
        server_version = "crm-reference/1"

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY_BYTES:
                self._reply(413, {"code": "too_large", "message": "the body is too large"}, {})
                self.close_connection = True
                return
            raw = self.rfile.read(length) if length else b""
            try:
                status, body, extra = server.answer(self.command, self.path, self.headers, raw)
            except Exception:
                logger.exception("reference server: %s %s failed", self.command, self.path)
                status, body, extra = 500, {"code": "internal_error", "message": "unexpected error"}, {}
            self._reply(status, body, extra)

        def _reply(self, status: int, body: Any, extra: dict) -> None:
            content_type = body.content_type if isinstance(body, Document) else "application/json"
            if isinstance(body, Document):
                payload = body.data
            else:
                payload = json.dumps(body, ensure_ascii=False).encode("utf-8")
            try:
                self.send_response(
                    status, HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else ""
                )
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                for name, value in extra.items():
                    self.send_header(name, value)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True  # the client gave up (its read timeout)

        def __getattr__(self, name: str) -> Any:
            # Every method (TRACE, QUERY...) reaches the router: those the contract lacks get 405.
            if name.startswith("do_"):
                return self._handle
            raise AttributeError(name)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib signature)
            logger.info("%s - %s", self.address_string(), format % args)

    return Handler


def link_signer(settings: Settings) -> PaymentLinkSigner | None:
    """Signs the payment links this server issues, as the embedded ERP does (PAYMENT_LINK_SECRET;
    in development the one `make run` generated into var/, so the bot's checks accept them)."""
    secret = settings.payment_link_secret
    generated = VAR_DIR / "payment_link_secret"
    if not secret and settings.is_development and generated.exists():
        secret = generated.read_text().strip()
    if not secret:
        return None
    return PaymentLinkSigner(
        secret,
        settings.payment_base_url,
        timedelta(minutes=settings.payment_link_ttl_minutes),
    )
