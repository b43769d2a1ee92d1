"""A local HTTP server that speaks Twilio's Messages API, for tests and the benchmark.

POST /2010-04-01/Accounts/{AccountSid}/Messages.json takes the same form fields as Twilio
(To, From, Body, MediaUrl, ContentSid, ContentVariables, StatusCallback, MessagingServiceSid),
checks HTTP basic auth, answers 201 with a JSON message resource and records the request.
It can be told to fail the next requests (429, 500, a 4xx with a Twilio error code), to be
slow, to accept a message and answer too late (`fail_next(201, delay_s=…)`), or to accept one
and drop the connection without answering (`drop_after_accepting`): the ambiguous cases where
Twilio has the message and the sender cannot know it. Also signs webhooks the way Twilio
does, for sending messages to the assistant.
"""

from __future__ import annotations

import base64
import json
import re
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

from twilio.request_validator import RequestValidator

from bot.phone import normalize_phone


class _QuietServer(ThreadingHTTPServer):
    """A client killed mid-connection (a kill -9 of the assistant) is no error of the fake's."""

    def handle_error(self, request: object, client_address: object) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


MESSAGES_PATH = re.compile(r"^/2010-04-01/Accounts/(?P<account>AC\w+)/Messages\.json$")


@dataclass
class ReceivedMessage:
    """One Messages API request the fake accepted."""

    sid: str
    to: str
    from_: str | None
    body: str | None
    media_urls: list[str]
    content_sid: str | None
    content_variables: str | None
    status_callback: str | None
    messaging_service_sid: str | None
    received_at: float  # time.perf_counter()


@dataclass
class Failure:
    status: int
    code: int | None = None
    delay_s: float = 0.0
    drop: bool = False  # accept the message, then close the connection without an answer


@dataclass
class FakeTwilio:
    account_sid: str = "AC" + "0" * 32
    auth_token: str = "test-auth-token"
    received: list[ReceivedMessage] = field(default_factory=list)
    attempts: int = 0  # every request, failed ones included

    def __post_init__(self) -> None:
        self._lock = threading.Condition()
        # Called (in the server's thread) with each accepted message; the benchmark listens here.
        self.on_message: Callable[[ReceivedMessage], None] | None = None
        self._failures: deque[Failure] = deque()
        self._delay_s = 0.0
        self._server: ThreadingHTTPServer | None = None

    # --- control -----------------------------------------------------------------------------

    def fail_next(self, status: int, times: int = 1, code: int | None = None, delay_s: float = 0.0) -> None:
        with self._lock:
            self._failures.extend(Failure(status, code, delay_s) for _ in range(times))

    def drop_after_accepting(self, times: int = 1) -> None:
        with self._lock:
            self._failures.extend(Failure(201, drop=True) for _ in range(times))

    def slow_down(self, delay_s: float) -> None:
        self._delay_s = delay_s

    def reset(self) -> None:
        with self._lock:
            self.received.clear()
            self._failures.clear()
            self.attempts = 0
        self._delay_s = 0.0

    def messages_to(self, phone: str) -> list[ReceivedMessage]:
        with self._lock:
            return [m for m in self.received if normalize_phone(m.to) == phone]

    def wait_for(self, phone: str, count: int = 1, timeout_s: float = 30) -> list[ReceivedMessage]:
        found = self.wait_quietly(phone, count, timeout_s)
        if len(found) < count:
            raise AssertionError(f"{count} message(s) to {phone} expected, got {found}")
        return found

    def wait_quietly(self, phone: str, count: int, timeout_s: float) -> list[ReceivedMessage]:
        """Messages to `phone` once there are `count`, or what came within `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while True:
                found = [m for m in self.received if normalize_phone(m.to) == phone]
                remaining = deadline - time.monotonic()
                if len(found) >= count or remaining <= 0:
                    return found
                self._lock.wait(remaining)

    # --- server ------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        assert self._server is not None, "start() first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self, port: int = 0) -> FakeTwilio:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_: object) -> None:
                pass

            def _reply(self, status: int, payload: dict) -> None:
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                fake.list_messages(self)

            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                length = int(self.headers.get("Content-Length") or 0)
                form = parse_qs(self.rfile.read(length).decode(), keep_blank_values=True)
                fake.handle(self, form)

        self._server = _QuietServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def _resource(self, message: ReceivedMessage) -> dict:
        return {
            "sid": message.sid,
            "account_sid": self.account_sid,
            "to": message.to,
            "from": message.from_,
            "body": message.body or "",
            "status": "queued",
            "num_segments": "1",
            "num_media": str(len(message.media_urls)),
            "direction": "outbound-api",
            "api_version": "2010-04-01",
            "uri": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{message.sid}.json",
        }

    def list_messages(self, request: BaseHTTPRequestHandler) -> None:
        """GET Messages.json?To=…&From=…: the messages accepted, newest first, as Twilio lists them."""
        path, _, query = request.path.partition("?")
        match = MESSAGES_PATH.match(path)
        if not match or match["account"] != self.account_sid:
            request._reply(404, {"code": 20404, "message": "not found", "status": 404})
            return
        params = {key: values[0] for key, values in parse_qs(query).items()}
        with self._lock:
            found = [
                m
                for m in reversed(self.received)
                if m.to == params.get("To", m.to) and m.from_ == params.get("From", m.from_)
            ][: int(params.get("PageSize") or 50)]
        request._reply(
            200,
            {
                "messages": [self._resource(m) for m in found],
                "page": 0,
                "page_size": len(found),
                "start": 0,
                "end": max(len(found) - 1, 0),
                "uri": path,
                "first_page_uri": path,
                "next_page_uri": None,
                "previous_page_uri": None,
            },
        )

    def handle(self, request: BaseHTTPRequestHandler, form: dict[str, list[str]]) -> None:
        arrived = time.perf_counter()  # before any simulated latency: when Twilio has the request
        with self._lock:
            self.attempts += 1
            failure = self._failures.popleft() if self._failures else None
        match = MESSAGES_PATH.match(request.path)
        if not match or match["account"] != self.account_sid:
            request._reply(
                404, {"code": 20404, "message": "The requested resource was not found", "status": 404}
            )
            return
        expected = "Basic " + base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        if request.headers.get("Authorization") != expected:
            request._reply(401, {"code": 20003, "message": "Authenticate", "status": 401})
            return
        delay = (failure.delay_s if failure else 0.0) or self._delay_s
        if failure and failure.status >= 400:
            time.sleep(delay)
            request._reply(
                failure.status,
                {
                    "code": failure.code or failure.status * 100 + 29,
                    "message": "injected failure",
                    "status": failure.status,
                },
            )
            return

        def one(name: str) -> str | None:
            values = form.get(name)
            return values[0] if values else None

        to = one("To")
        if not to or not (one("Body") or form.get("MediaUrl") or one("ContentSid")):
            request._reply(400, {"code": 21602, "message": "Message body is required.", "status": 400})
            return
        message = ReceivedMessage(
            sid="SM" + uuid.uuid4().hex,
            to=to,
            from_=one("From"),
            body=one("Body"),
            media_urls=form.get("MediaUrl", []),
            content_sid=one("ContentSid"),
            content_variables=one("ContentVariables"),
            status_callback=one("StatusCallback"),
            messaging_service_sid=one("MessagingServiceSid"),
            received_at=arrived,
        )
        with self._lock:
            self.received.append(message)
            self._lock.notify_all()
        if self.on_message is not None:
            self.on_message(message)
        time.sleep(delay)  # the API's own latency: the message is accepted, the answer comes later
        if failure is not None and failure.drop:
            request.close_connection = True
            request.connection.shutdown(2)  # a reset: no status line ever reaches the client
            return
        request._reply(201, self._resource(message))

    # --- the other direction: webhooks signed as Twilio signs them ---------------------------

    def sign(self, url: str, params: dict[str, str]) -> str:
        return RequestValidator(self.auth_token).compute_signature(url, params)


def inbound_form(
    phone: str,
    body: str,
    channel: str = "whatsapp",
    sid: str | None = None,
    **extra: str,
) -> dict[str, str]:
    """The form Twilio POSTs for an inbound message, as WhatsApp or SMS send it."""
    address = f"whatsapp:{phone}" if channel == "whatsapp" else phone
    form = {
        "MessageSid": sid or "SM" + uuid.uuid4().hex,
        "SmsMessageSid": sid or "",
        "AccountSid": "AC" + "0" * 32,
        "From": address,
        "To": "whatsapp:+14155238886" if channel == "whatsapp" else "+15005550006",
        "Body": body,
        "NumMedia": "0",
        "NumSegments": "1",
        "ApiVersion": "2010-04-01",
    }
    if channel == "whatsapp":
        form["ProfileName"] = "Cliente"
        form["WaId"] = phone.removeprefix("+")
    form.update(extra)
    form["SmsMessageSid"] = form["MessageSid"]
    return form
