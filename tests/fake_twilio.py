"""A local HTTP server that speaks Twilio's Messages API, for tests and the benchmark.

POST /2010-04-01/Accounts/{AccountSid}/Messages.json takes the same form fields as Twilio
(To, From, Body, MediaUrl, ContentSid, ContentVariables, StatusCallback, MessagingServiceSid; each
MediaUrl must be an absolute http(s) URL, at most ten, as Twilio fetches them itself: else 21620),
checks HTTP basic auth, answers 201 with a JSON message resource and records the request.
It can be told to fail the next requests (429, 500, a 4xx with a Twilio error code), to be
slow, to accept a message and answer too late (`fail_next(201, delay_s=…)`), or to accept one
and drop the connection without answering (`drop_after_accepting`): the ambiguous cases where
Twilio has the message and the sender cannot know it. Also signs webhooks the way Twilio
does, for sending messages to the assistant.

It speaks Twilio's Content API too (content.twilio.com, served at the same base URL):
POST /v1/Content with a JSON body creates a content after checking its shape as strictly as
WhatsApp would show it in a session (see `content_problem`: the types it knows, 3 quick-reply
buttons of at most 20 characters, 10 list items of at most 24, required fields, unique ids),
refusing anything else with a Twilio-like 400; GET and DELETE /v1/Content/{sid}. A message sent
with a ContentSid is refused unless that content exists and its ContentVariables give exactly
the variables the content uses; it is recorded with the text its "twilio/text" type renders
(what Twilio lists as its body), and `content_of` / `options_of` tell what WhatsApp showed. A
variable may stand in a quick reply's id (a template's button that carries a notification's
signed link): the id filled from ContentVariables must keep the id's limits (1 to 200
characters), and `options_of` gives it filled, as a tap sends it back.
`contents` holds what was created; `content_creations` counts the requests that created one.
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
from pathlib import Path
from urllib.parse import parse_qs

import yaml
from twilio.request_validator import RequestValidator

from bot.phone import normalize_phone


class _QuietServer(ThreadingHTTPServer):
    """A client killed mid-connection (a kill -9 of the assistant) is no error of the fake's."""

    def handle_error(self, request: object, client_address: object) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


MESSAGES_PATH = re.compile(r"^/2010-04-01/Accounts/(?P<account>AC\w+)/Messages\.json$")
CONTENTS_PATH = "/v1/Content"
CONTENT_PATH = re.compile(r"^/v1/Content/(?P<sid>HX\w+)$")
PLACEHOLDER = re.compile(r"\{\{\s*(\w+)\s*\}\}")
# What WhatsApp shows in a session (twilio.com/docs/content/twilio-quick-reply and
# /twiliolist-picker; WhatsApp's interactive messages pages).
QUICK_REPLY_MAX_ACTIONS, QUICK_REPLY_MAX_TITLE = 3, 20
LIST_MAX_ITEMS, LIST_MAX_ITEM, LIST_MAX_DESCRIPTION, LIST_MAX_BUTTON = 10, 24, 72, 20
CONTENT_MAX_BODY, CONTENT_MAX_ID, TEXT_MAX_BODY = 1024, 200, 1600
MAX_MEDIA = 10  # MediaUrl values per message


def _text(value: object, limit: int) -> bool:
    return isinstance(value, str) and bool(value.strip()) and len(value) <= limit


def _check_quick_reply(shown: dict) -> str | None:
    actions = shown.get("actions")
    if not isinstance(actions, list) or not 1 <= len(actions) <= QUICK_REPLY_MAX_ACTIONS:
        return f"twilio/quick-reply needs 1 to {QUICK_REPLY_MAX_ACTIONS} actions in a WhatsApp session"
    for action in actions:
        if not isinstance(action, dict) or set(action) - {"title", "id", "type"}:
            return "a quick-reply action has only title, id and type"
        if not _text(action.get("title"), QUICK_REPLY_MAX_TITLE):
            return f"a quick-reply title is required, at most {QUICK_REPLY_MAX_TITLE} characters"
        if not _text(action.get("id"), CONTENT_MAX_ID):
            return f"a quick-reply id is required, at most {CONTENT_MAX_ID} characters"
    if len({a["title"] for a in actions}) != len(actions) or len({a["id"] for a in actions}) != len(actions):
        return "quick-reply titles and ids must be unique"
    return None


def _check_list_picker(shown: dict) -> str | None:
    if not _text(shown.get("button"), LIST_MAX_BUTTON):
        return f"twilio/list-picker needs a button of at most {LIST_MAX_BUTTON} characters"
    items = shown.get("items")
    if not isinstance(items, list) or not 1 <= len(items) <= LIST_MAX_ITEMS:
        return f"twilio/list-picker needs 1 to {LIST_MAX_ITEMS} items"
    for item in items:
        if not isinstance(item, dict) or set(item) - {"item", "id", "description"}:
            return "a list item has only item, id and description"
        if not _text(item.get("item"), LIST_MAX_ITEM):
            return f"a list item is required, at most {LIST_MAX_ITEM} characters"
        if not _text(item.get("id"), CONTENT_MAX_ID):
            return f"a list item id is required, at most {CONTENT_MAX_ID} characters"
        if "description" in item and not _text(item["description"], LIST_MAX_DESCRIPTION):
            return f"a list item description has at most {LIST_MAX_DESCRIPTION} characters"
    if len({i["id"] for i in items}) != len(items):
        return "list item ids must be unique"
    return None


def content_problem(definition: object) -> str | None:
    """Why the Content API would refuse this create request, or None."""
    if not isinstance(definition, dict):
        return "the body must be a JSON object"
    unknown = set(definition) - {"friendly_name", "language", "variables", "types"}
    if unknown:
        return f"unknown parameters: {sorted(unknown)}"
    if not _text(definition.get("language"), 10):
        return "language is required"
    if "friendly_name" in definition and not _text(definition["friendly_name"], 64):
        return "friendly_name has at most 64 characters"
    variables = definition.get("variables", {})
    if not isinstance(variables, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and v for k, v in variables.items()
    ):
        return "variables maps names to non-empty sample values"
    types = definition.get("types")
    if not isinstance(types, dict) or not types:
        return "types is required"
    checks = {
        "twilio/text": None,
        "twilio/quick-reply": _check_quick_reply,
        "twilio/list-picker": _check_list_picker,
    }
    for kind, shown in types.items():
        if kind not in checks:
            return f"unknown content type {kind}"
        limit = TEXT_MAX_BODY if kind == "twilio/text" else CONTENT_MAX_BODY
        if not isinstance(shown, dict) or not _text(shown.get("body"), limit):
            return f"{kind} needs a body of at most {limit} characters"
        check = checks[kind]
        problem = (
            check(shown) if check else (None if set(shown) == {"body"} else "twilio/text has only a body")
        )
        if problem:
            return problem
    missing = set(PLACEHOLDER.findall(json.dumps(types))) - set(variables)
    if missing:
        return f"variables used without a sample value: {sorted(missing)}"
    return None


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
class Content:
    """One content the fake's Content API holds."""

    sid: str
    definition: dict

    @property
    def placeholders(self) -> set[str]:
        return set(PLACEHOLDER.findall(json.dumps(self.definition["types"])))


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
    contents: dict[str, Content] = field(default_factory=dict)
    content_creations: int = 0

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
            # Contents stay, as they do at Twilio: a stack keeps the SIDs it made in its database.
            self.content_creations = 0
        self._delay_s = 0.0

    def add_content(self, definition: dict) -> str:
        """A content created directly (an approved template made in Twilio's console): its SID."""
        problem = content_problem(definition)
        assert problem is None, problem
        content = Content("HX" + uuid.uuid4().hex, definition)
        with self._lock:
            self.contents[content.sid] = content
        return content.sid

    def options_of(self, message: ReceivedMessage) -> tuple[str, list[tuple[str, str]]] | None:
        """(content type, [(title, id)]) of the buttons or list a message showed, ids with the
        message's ContentVariables filled in (what a tap sends back as ButtonPayload); None for text."""
        definition = self.content_of(message)
        if definition is None:
            return None
        given = json.loads(message.content_variables) if message.content_variables else {}

        def filled(value: str) -> str:
            return PLACEHOLDER.sub(lambda match: given.get(match[1], match[0]), value)

        for kind, shown in definition["types"].items():
            if kind == "twilio/quick-reply":
                return kind, [(action["title"], filled(action["id"])) for action in shown["actions"]]
            if kind == "twilio/list-picker":
                return kind, [(item["item"], filled(item["id"])) for item in shown["items"]]
        return None

    def content_of(self, message: ReceivedMessage) -> dict | None:
        """The definition of the content a message was sent with."""
        with self._lock:
            content = self.contents.get(message.content_sid or "")
        return None if content is None else content.definition

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
                if self.path.startswith(CONTENTS_PATH):
                    fake.content_resource(self)
                else:
                    fake.list_messages(self)

            def do_DELETE(self) -> None:  # noqa: N802 (http.server's name)
                fake.content_resource(self)

            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode()
                if self.path == CONTENTS_PATH:
                    fake.create_content(self, raw)
                    return
                form = parse_qs(raw, keep_blank_values=True)
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

    def _authorised(self, request: BaseHTTPRequestHandler) -> bool:
        expected = "Basic " + base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        if request.headers.get("Authorization") != expected:
            request._reply(401, {"code": 20003, "message": "Authenticate", "status": 401})
            return False
        return True

    def _content_json(self, content: Content) -> dict:
        return {
            "sid": content.sid,
            "account_sid": self.account_sid,
            **content.definition,
            "url": f"https://content.twilio.com/v1/Content/{content.sid}",
        }

    def create_content(self, request: BaseHTTPRequestHandler, raw: str) -> None:
        """POST /v1/Content: a JSON create request, checked by `content_problem`."""
        if not self._authorised(request):
            return
        if "application/json" not in (request.headers.get("Content-Type") or ""):
            request._reply(
                400, {"code": 20001, "message": "Content-Type must be application/json", "status": 400}
            )
            return
        try:
            definition = json.loads(raw)
        except ValueError:
            definition = None
        problem = content_problem(definition)
        if problem is not None:
            request._reply(400, {"code": 20001, "message": f"Invalid Parameter: {problem}", "status": 400})
            return
        content = Content("HX" + uuid.uuid4().hex, definition)
        with self._lock:
            self.contents[content.sid] = content
            self.content_creations += 1
        request._reply(201, self._content_json(content))

    def content_resource(self, request: BaseHTTPRequestHandler) -> None:
        """GET or DELETE /v1/Content/{sid}."""
        if not self._authorised(request):
            return
        match = CONTENT_PATH.match(request.path)
        with self._lock:
            content = self.contents.get(match["sid"]) if match else None
            if content is not None and request.command == "DELETE":
                del self.contents[content.sid]
        if content is None:
            request._reply(
                404, {"code": 20404, "message": "The requested resource was not found", "status": 404}
            )
        elif request.command == "DELETE":
            request.send_response(204)
            request.send_header("Content-Length", "0")
            request.end_headers()
        else:
            request._reply(200, self._content_json(content))

    def _rendered(self, content_sid: str | None, variables: str | None) -> str | None:
        """The text of a content's "twilio/text" type with its variables filled in."""
        with self._lock:
            content = self.contents.get(content_sid or "")
        text = content.definition["types"].get("twilio/text", {}).get("body") if content else None
        if text is None:
            return None
        given = json.loads(variables) if variables else {}
        return PLACEHOLDER.sub(lambda match: given.get(match[1], match[0]), text)

    def _content_refusal(self, content_sid: str, variables: str | None) -> dict | None:
        """Why a message with this ContentSid and ContentVariables would be refused, or None."""
        with self._lock:
            content = self.contents.get(content_sid)
        if content is None:
            return {"code": 21655, "message": f"The ContentSid {content_sid} is invalid", "status": 400}
        try:
            given = json.loads(variables) if variables else {}
        except ValueError:
            given = None
        if not isinstance(given, dict) or not all(isinstance(v, str) and v for v in given.values()):
            return {"code": 21656, "message": "ContentVariables must map names to text", "status": 400}
        if set(given) != content.placeholders:
            return {
                "code": 21656,
                "message": f"ContentVariables {sorted(given)} do not match {sorted(content.placeholders)}",
                "status": 400,
            }
        # A variable in a quick reply's id: the id once filled keeps the id's limits.
        for action in content.definition["types"].get("twilio/quick-reply", {}).get("actions", []):
            filled = PLACEHOLDER.sub(lambda match: given.get(match[1], ""), action["id"])
            if not _text(filled, CONTENT_MAX_ID):
                return {
                    "code": 21656,
                    "message": f"a filled quick-reply id has 1 to {CONTENT_MAX_ID} characters",
                    "status": 400,
                }
        return None

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
        media = form.get("MediaUrl", [])
        if len(media) > MAX_MEDIA or not all(url.startswith(("http://", "https://")) for url in media):
            # Twilio fetches each MediaUrl itself: only public http(s) URLs, at most ten.
            request._reply(400, {"code": 21620, "message": "Invalid media URL(s)", "status": 400})
            return
        if one("ContentSid"):
            refusal = self._content_refusal(one("ContentSid") or "", one("ContentVariables"))
            if refusal is not None:
                request._reply(400, refusal)
                return
        message = ReceivedMessage(
            sid="SM" + uuid.uuid4().hex,
            to=to,
            from_=one("From"),
            body=one("Body") or self._rendered(one("ContentSid"), one("ContentVariables")),
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


def approve_templates(fake: FakeTwilio, templates_file: Path) -> dict:
    """A WhatsApp templates file (bot/whatsapp_templates.yml's shape) whose templates are approved
    at the fake's Content API, as a business approves them in Twilio's console: the same file with
    each `content_sid` replaced by the SID the fake gave it."""
    raw = yaml.safe_load(templates_file.read_text(encoding="utf-8"))
    for name, spec in raw["templates"].items():
        types: dict = {"twilio/text": {"body": spec["text"]}}
        samples = {str(number): "muestra" for number in range(1, len(spec.get("variables") or []) + 1)}
        if spec.get("quick_replies"):
            # A reply that opens a flow is approved with a variable id ("{{5}}"), filled per message.
            actions = [
                {"title": reply["title"], "id": reply.get("id") or reply["payload"]}
                for reply in spec["quick_replies"]
            ]
            types["twilio/quick-reply"] = {"body": spec["text"], "actions": actions}
            for action in actions:
                samples.update({number: "/muestra" for number in PLACEHOLDER.findall(action["id"])})
        spec["content_sid"] = fake.add_content(
            {"friendly_name": name, "language": spec["language"], "variables": samples, "types": types}
        )
    return raw
