"""The one way the assistant sends a WhatsApp or SMS message (bot replies, notifications, agents).

It enforces the channel's rules before anything leaves: opted-out numbers get nothing but the
opt-out confirmation; WhatsApp free-form text only within 24 hours of the customer's last
message; long texts split at natural breaks.

Outside the window, whoever sends (a bot reply, the outbox worker's confirmation, an agent's
console reply, a notification) gets the same treatment: the template meant for the message
(`OutboundMessage.template`, declared in bot/whatsapp_templates.yml), else the generic one, goes
out in its place, and the message itself is kept in the held_messages table (unless its template
is `complete`, saying all of it). `deliver_held` sends what was kept, oldest first and each once
(key held:<id>), when the customer writes again; the channel calls it before answering them. A
generic template already sent for an earlier held message is not sent again for the next one
(one "you have news" per absence). Every path is recorded and logged; nothing is dropped.

It records every message and its fate in the outbound_messages table, and
retries with backoff only what Twilio certainly did not accept (429, 503, a connection refused
before the request left): a timeout, a reset connection or another 5xx after the request was
sent may mean Twilio took it, so that part is recorded as "unknown" and never sent again.

Options (a Rasa response's buttons) go out on WhatsApp as native buttons or a list when they fit
(bot/messaging/buttons.py decides; bot/messaging/contents.py makes the Twilio content once):
the message is then sent with that ContentSid and its text as the variable {{1}}. On SMS, when
they do not fit, without a Twilio account, or when the Content API fails, they are the numbered
text they always were. Native or numbered, the 24-hour window applies as to any free-form text.

A reply to a customer's message carries a key (the inbound MessageSid and its place among that
message's replies); the key is recorded with the message before the request leaves, under a
unique index, so a replay of the inbound message skips every reply already sent. A reply a dead
process left "sending" (killed between recording it and recording Twilio's answer) is looked up
at Twilio (`Transport.find`) and sent only if Twilio does not have it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import uuid
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import aiohttp
from twilio.base.exceptions import TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client

from bot.choices import numbered_options
from bot.clock import Clock
from bot.messaging.buttons import Option, choose
from bot.messaging.contents import ContentCatalog
from bot.messaging.inbound import Channel
from bot.messaging.sms import TWILIO_MAX_BODY, sms_part_limit, split_text
from bot.messaging.store import Contact, HeldMessage, MessagingStore
from bot.messaging.templates import Template, TemplateCatalog, load_templates
from bot.responses import render
from bot.settings import Settings

logger = logging.getLogger(__name__)

WHATSAPP_WINDOW = timedelta(hours=24)
TWILIO_API = "https://api.twilio.com"
CONTENT_API = "https://content.twilio.com"
# The text of the button that opens a WhatsApp list (≤ 20 characters): the domain response
# `utter_list_button` when designers add one, else this.
LIST_BUTTON_RESPONSE = "utter_list_button"
DEFAULT_LIST_BUTTON = "Ver opciones"


@dataclass(frozen=True)
class OutboundMessage:
    to: str  # E.164
    channel: Channel
    body: str = ""
    media_urls: tuple[str, ...] = ()
    content_sid: str | None = None  # an approved WhatsApp template (Twilio Content API)
    content_variables: dict[str, str] | None = None
    # Options under `body` (a response's buttons): WhatsApp buttons or list, else numbered text.
    options: tuple[Option, ...] = ()
    # Outside the WhatsApp window: the template meant for this message (bot/whatsapp_templates.yml;
    # None: the generic one) and the values that fill its variables.
    template: str | None = None
    template_values: Mapping[str, str] | None = None
    source: str = "bot"  # who sends it (bot | outbox | console | notification): kept if held
    expires_at: datetime | None = None  # if held: not delivered after this (stale news)


@dataclass(frozen=True)
class SendResult:
    # queued (or Twilio's first status) | outbox | blocked | failed | unknown | duplicate | held
    # (and, for a held message found stale when delivering it, expired)
    status: str
    record_ids: list[int] = field(default_factory=list)
    sids: list[str] = field(default_factory=list)
    error_code: str | None = None
    held_id: int | None = None  # "held": the held_messages row that keeps the message
    template: str | None = None  # the template sent in the message's place (outside the window)


@dataclass(frozen=True)
class Delivery:
    """One request to the Messages API."""

    to: str
    from_: str | None
    messaging_service_sid: str | None
    body: str | None
    media_url: str | None
    content_sid: str | None
    content_variables: str | None
    status_callback: str | None


class TransientSendError(Exception):
    """Worth retrying: rate limited, server error, network trouble."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class AmbiguousSendError(Exception):
    """The request left and no clear answer came back (a timeout, a reset connection, a 5xx other
    than 503): Twilio may have accepted the message. Sending it again could send it twice."""


class PermanentSendError(Exception):
    """Retrying cannot help (invalid number, unsubscribed recipient, bad request)."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class Transport(ABC):
    name: str
    supports_content = False  # whether it can create Content API resources (native options)

    @abstractmethod
    async def deliver(self, delivery: Delivery) -> tuple[str, str]:
        """Hand one message over; return (sid, status). Raise Transient/PermanentSendError."""

    async def find(self, delivery: Delivery, newer_than_sid: str | None) -> list[tuple[str, str]]:
        """(sid, status) of the messages like `delivery` the provider holds, newest first, down to
        `newer_than_sid` (excluded); raise AmbiguousSendError when it cannot be asked. A transport
        that cannot be asked finds nothing: a repeat of what it sends is harmless (the outbox)."""
        return []

    async def create_content(self, definition: dict[str, Any]) -> str:
        """Create a Content API resource; return its SID. Only if `supports_content`."""
        raise NotImplementedError(f"the {self.name} transport has no Content API")

    async def delete_content(self, content_sid: str) -> None:  # noqa: B027 (optional)
        """Delete a Content API resource (best effort)."""

    async def content_exists(self, content_sid: str) -> bool:
        """Whether a Content API resource is still there; True when that cannot be told."""
        return True

    async def close(self) -> None:  # noqa: B027 (optional: the outbox holds nothing)
        """Release connections."""


class _ApiBaseHttpClient(AsyncTwilioHttpClient):
    """Twilio's async HTTP client, aimed at TWILIO_API_BASE instead of api.twilio.com and at
    TWILIO_CONTENT_API_BASE instead of content.twilio.com."""

    def __init__(self, api_base: str | None, content_api_base: str | None = None) -> None:
        super().__init__()
        self._bases = {
            TWILIO_API: (api_base or "").rstrip("/"),
            CONTENT_API: (content_api_base or "").rstrip("/"),
        }

    async def request(self, method: str, url: str, *args, **kwargs):
        for real, base in self._bases.items():
            if base and url.startswith(real):
                url = base + url[len(real) :]
                break
        return await super().request(method, url, *args, **kwargs)


class TwilioTransport(Transport):
    """The Messages API through the twilio library's async client (never blocks the event loop)."""

    name = "twilio"
    supports_content = True

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        api_base: str | None,
        timeout_s: float = 10,
        content_api_base: str | None = None,
    ) -> None:
        self._account_sid, self._auth_token = account_sid, auth_token
        self._api_base, self._timeout = api_base, timeout_s
        self._content_api_base = content_api_base
        self._client: Client | None = None
        # The library logs every request at INFO; customers' messages stay out of the logs.
        for name in ("twilio.http_client", "twilio.async_http_client"):
            logging.getLogger(name).setLevel(logging.WARNING)

    def _twilio(self) -> Client:
        # Built on first use, inside the running event loop its aiohttp session belongs to.
        if self._client is None:
            http = _ApiBaseHttpClient(self._api_base, self._content_api_base)
            self._client = Client(self._account_sid, self._auth_token, http_client=http)
        return self._client

    async def deliver(self, delivery: Delivery) -> tuple[str, str]:
        arguments = {
            "to": delivery.to,
            "from_": delivery.from_,
            "messaging_service_sid": delivery.messaging_service_sid,
            "body": delivery.body,
            "media_url": [delivery.media_url] if delivery.media_url else None,
            "content_sid": delivery.content_sid,
            "content_variables": delivery.content_variables,
            "status_callback": delivery.status_callback,
        }
        arguments = {key: value for key, value in arguments.items() if value}
        try:
            # The library sends no timeout of its own (aiohttp would wait five minutes).
            message = await asyncio.wait_for(self._twilio().messages.create_async(**arguments), self._timeout)
        except TwilioRestException as error:
            code = str(error.code) if error.code else str(error.status)
            if error.status in (429, 503):  # rate limited, or unavailable: no message was created
                raise TransientSendError(f"Twilio answered {error.status}", code) from error
            if error.status >= 500:
                raise AmbiguousSendError(f"Twilio answered {error.status}") from error
            raise PermanentSendError(f"Twilio refused the message ({error.status}, {code})", code) from error
        except (aiohttp.ClientConnectorError, ConnectionRefusedError) as error:
            # The connection was never made: nothing was sent.
            raise TransientSendError(f"could not connect: {error!r}") from error
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as error:
            raise AmbiguousSendError(f"no answer after sending: {error!r}") from error
        return message.sid, message.status or "queued"

    async def find(self, delivery: Delivery, newer_than_sid: str | None) -> list[tuple[str, str]]:
        filters = {"to": delivery.to, **({"from_": delivery.from_} if delivery.from_ else {})}
        try:
            listed = await asyncio.wait_for(
                self._twilio().messages.list_async(**filters, limit=50, page_size=50), self._timeout
            )
        except (TwilioRestException, aiohttp.ClientError, asyncio.TimeoutError, OSError) as error:
            raise AmbiguousSendError(f"could not list messages: {error!r}") from error
        found = []
        for message in listed:  # newest first
            if message.sid == newer_than_sid:
                break
            if _same_message(message.body or "", int(message.num_media or 0), delivery):
                found.append((message.sid, message.status or "queued"))
        return found

    async def create_content(self, definition: dict[str, Any]) -> str:
        """POST /v1/Content with a JSON body (the library of this version has no create)."""
        try:
            answer = await asyncio.wait_for(
                self._twilio().request_async(
                    "POST",
                    f"{CONTENT_API}/v1/Content",
                    data=json.dumps(definition, ensure_ascii=False),  # type: ignore[arg-type]
                    headers={"Content-Type": "application/json"},
                ),
                self._timeout,
            )
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as error:
            raise TransientSendError(f"the Content API did not answer: {error!r}") from error
        if answer.status_code not in (200, 201):
            raise PermanentSendError(
                f"the Content API refused the content ({answer.status_code}): {answer.text[:300]}",
                str(answer.status_code),
            )
        return str(json.loads(answer.text)["sid"])

    async def content_exists(self, content_sid: str) -> bool:
        try:
            answer = await asyncio.wait_for(
                self._twilio().request_async("GET", f"{CONTENT_API}/v1/Content/{content_sid}"), self._timeout
            )
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
            return True  # cannot tell: the send will say
        return answer.status_code != 404

    async def delete_content(self, content_sid: str) -> None:
        answer = await asyncio.wait_for(
            self._twilio().request_async("DELETE", f"{CONTENT_API}/v1/Content/{content_sid}"), self._timeout
        )
        if answer.status_code not in (200, 204, 404):
            raise PermanentSendError(f"the Content API did not delete {content_sid} ({answer.status_code})")

    async def close(self) -> None:
        if self._client is not None:
            await self._client.http_client.close()


def _same_message(body: str, num_media: int, delivery: Delivery) -> bool:
    if delivery.body:
        return body == delivery.body
    if delivery.media_url:
        return num_media > 0 and not body
    return True  # a template: Twilio stores it rendered, so any message to them could be it


class OutboxTransport(Transport):
    """No Twilio account: messages stay in the outbound_messages table and are printed."""

    name = "outbox"

    async def deliver(self, delivery: Delivery) -> tuple[str, str]:
        what = delivery.body or ""
        if delivery.media_url:
            what = f"{what} [media: {delivery.media_url}]".strip()
        if delivery.content_sid:
            what = f"[template {delivery.content_sid} {delivery.content_variables or ''}]"
        print(f"[outbox → {delivery.to}] {what}", flush=True)
        return f"OUTBOX{uuid.uuid4().hex}", "outbox"


def transport_for(settings: Settings) -> Transport:
    if settings.twilio_account_sid and settings.twilio_auth_token:
        return TwilioTransport(
            settings.twilio_account_sid,
            settings.twilio_auth_token,
            settings.twilio_api_base,
            content_api_base=settings.twilio_content_api_base or settings.twilio_api_base,
        )
    return OutboxTransport()


class MessageSender:
    """Sends messages under the channel's rules and records each one; see the module docstring."""

    def __init__(
        self,
        settings: Settings,
        store: MessagingStore,
        transport: Transport,
        retry_delays_s: Sequence[float] = (0.5, 1.0, 2.0, 4.0),
        *,
        clock: Clock,
        list_button: str | None = None,
        templates: TemplateCatalog | None = None,
    ) -> None:
        self._settings = settings
        self._store = store
        self.transport = transport
        self._retry_delays = tuple(retry_delays_s)
        self._clock = clock
        self._contents = ContentCatalog(store, transport)
        self._list_button = list_button if list_button is not None else list_button_text()
        self._templates = templates

    @property
    def templates(self) -> TemplateCatalog:
        """The declared WhatsApp templates (bot/whatsapp_templates.yml unless the graph gave others)."""
        if self._templates is None:
            self._templates = load_templates()
        return self._templates

    async def _with_options(self, message: OutboundMessage) -> OutboundMessage:
        """`message` with its options as a native WhatsApp content, or as numbered text."""
        native = None
        if self.transport.supports_content:
            native = choose(message.channel, message.body.strip(), message.options, self._list_button)
        if native is not None:
            try:
                sid = await self._contents.sid_for(native)
            except Exception as error:  # noqa: BLE001 (the numbered text always works)
                logger.warning("options to %s sent as numbered text: no content (%s)", message.to, error)
            else:
                # Recorded as Twilio lists it: the content's text fallback, the numbered options.
                text = message.body.strip()
                listed = numbered_options(text, [item.full_title for item in native.items])
                variables = {"1": text}
                return replace(message, body=listed, content_sid=sid, content_variables=variables, options=())
        numbered = numbered_options(message.body, [option.title for option in message.options])
        return replace(message, body=numbered, options=())

    def _addresses(self, message: OutboundMessage, whatsapp_address: str | None) -> tuple[str, str | None]:
        settings = self._settings
        if message.channel is Channel.WHATSAPP:
            sender = settings.twilio_whatsapp_number
            to = whatsapp_address or f"whatsapp:{message.to}"
            return to, (f"whatsapp:{sender}" if sender and not sender.startswith("whatsapp:") else sender)
        return message.to, settings.twilio_sms_number

    def _parts(self, message: OutboundMessage) -> list[tuple[str | None, str | None]]:
        """(body, media_url) per request: text parts first, then one request per attachment."""
        if message.content_sid:
            return [(None, None)]
        body = message.body.strip()
        if message.channel is Channel.SMS:
            texts = split_text(body, sms_part_limit(body), sms=True)
        else:
            texts = split_text(body, TWILIO_MAX_BODY)
        return [(text, None) for text in texts] + [(None, url) for url in message.media_urls]

    async def send(
        self, message: OutboundMessage, *, opt_out_confirmation: bool = False, key: str | None = None
    ) -> SendResult:
        """Send `message`; WhatsApp free-form after 24 h is held and a template sent instead.

        `key` names a reply to a customer's message (see the module docstring): the parts already
        recorded under it are skipped ("duplicate" when they all were)."""
        contact = await asyncio.to_thread(self._store.contact, message.to)
        if contact and contact.opted_out and not opt_out_confirmation:
            record = await asyncio.to_thread(
                self._store.add_outbound, message.to, message.channel, self.transport.name,
                message.body, list(message.media_urls), message.content_sid, "blocked",
                None if key is None else f"{key}.0",
            )  # fmt: skip
            if record is None:
                return SendResult("duplicate")
            await asyncio.to_thread(self._store.update_outbound, record, error_message="recipient opted out")
            logger.info("not sent to %s: opted out (outbound #%s)", message.to, record)
            return SendResult("blocked", [record])

        if message.channel is Channel.WHATSAPP and not message.content_sid and not self._in_window(contact):
            return await self._hold(message, contact, key)
        return await self._transmit(message, contact, key)

    def _in_window(self, contact: Contact | None) -> bool:
        last = contact.whatsapp_last_inbound_at if contact else None
        return last is not None and self._clock.now() - last <= WHATSAPP_WINDOW

    async def _transmit(
        self, message: OutboundMessage, contact: Contact | None, key: str | None
    ) -> SendResult:
        if message.options and not message.content_sid:
            message = await self._with_options(message)

        to, from_ = self._addresses(message, contact.whatsapp_address if contact else None)
        service = None if from_ else self._settings.twilio_messaging_service_sid
        callback = (
            f"{self._settings.public_url}/webhooks/twilio/status" if self._settings.public_url else None
        )
        variables = (
            json.dumps(message.content_variables, ensure_ascii=False) if message.content_variables else None
        )

        result = SendResult("duplicate" if key else "queued")
        for part, (body, media_url) in enumerate(self._parts(message)):
            delivery = Delivery(to, from_, service, body, media_url, message.content_sid, variables, callback)
            record = await asyncio.to_thread(
                self._store.add_outbound, message.to, message.channel, self.transport.name,
                body or (message.body if message.content_sid else ""), [media_url] if media_url else [],
                message.content_sid, "sending",
                None if key is None else f"{key}.{part}",
            )  # fmt: skip
            if record is None:
                record = await self._unsent(delivery, message.to, f"{key}.{part}")
                if record is None:
                    continue
            result.record_ids.append(record)
            sid, status, code = await self._deliver_with_retries(delivery, record)
            if sid:
                result.sids.append(sid)
            if status == "failed":
                # Later parts would read as nonsense without this one: stop, and say so.
                return SendResult("failed", result.record_ids, result.sids, code)
            result = SendResult(status, result.record_ids, result.sids)
        return result

    # --- outside the WhatsApp window --------------------------------------------------------

    def _template_for(self, message: OutboundMessage) -> Template:
        templates = self.templates
        if message.template and message.template in templates.templates:
            return templates.get(message.template)
        if message.template:  # start-up checks the names senders use; a bug would end here
            logger.error("template %r is not declared: the generic one stands in", message.template)
        return templates.fallback

    async def _send_template(
        self, message: OutboundMessage, template: Template, contact: Contact | None, key: str | None
    ) -> SendResult:
        values = message.template_values or {}
        approved = OutboundMessage(
            message.to, message.channel, body=template.rendered(values), content_sid=template.content_sid,
            content_variables=template.content_variables(values) or None, source=message.source,
        )  # fmt: skip
        return await self._transmit(approved, contact, key)

    async def _hold(self, message: OutboundMessage, contact: Contact | None, key: str | None) -> SendResult:
        """Outside the window: the message's template (or the generic one) in its place, the message
        kept until the customer writes (unless the template says all of it)."""
        template = self._template_for(message)
        last = contact.whatsapp_last_inbound_at if contact else None
        if template.complete:
            result = await self._send_template(message, template, contact, key)
            logger.info(
                "%s message to %s outside the WhatsApp window (last wrote %s): sent as template %s (%s)",
                message.source, message.to, last or "never", template.name, result.status,
            )  # fmt: skip
            return replace(result, template=template.name)
        options = [{"title": option.title, "payload": option.payload} for option in message.options]
        held_id = await asyncio.to_thread(
            self._store.hold, message.to, message.channel, message.source, message.body,
            list(message.media_urls), options, key, message.expires_at,
        )  # fmt: skip
        if held_id is None:  # held before under this key: a replayed reply, a retried notification
            assert key is not None
            earlier = await asyncio.to_thread(self._store.held_by_key, key)
            assert earlier is not None
            logger.info("%s to %s was held before as #%s: not held again", key, message.to, earlier.id)
            if earlier.template_status is not None:  # its template was tried too
                return SendResult("held", held_id=earlier.id, template=earlier.template)
            held_id = earlier.id  # interrupted before its template: that is sent now (keyed, once)
        pending = await asyncio.to_thread(self._store.held, message.to)
        announced = next(
            (
                earlier
                for earlier in pending
                if earlier.id < held_id and earlier.template and earlier.template_status != "failed"
            ),
            None,
        )
        if template.name == self.templates.generic and announced is not None:
            # One "you have news" per absence: the customer has it already.
            why = f"not sent: template {announced.template} sent for held #{announced.id}"
            await asyncio.to_thread(self._store.note_template, held_id, None, why)
            logger.info(
                "%s message to %s outside the WhatsApp window: held as #%s (%s)",
                message.source, message.to, held_id, why,
            )  # fmt: skip
            return SendResult("held", held_id=held_id)
        result = await self._send_template(message, template, contact, f"held:{held_id}:template")
        await asyncio.to_thread(self._store.note_template, held_id, template.name, result.status)
        log = logger.error if result.status == "failed" else logger.info
        log(
            "%s message to %s outside the WhatsApp window (last wrote %s): held as #%s until they write; "
            "template %s sent in its place (%s)",
            message.source, message.to, last or "never", held_id, template.name, result.status,
        )  # fmt: skip
        return SendResult(
            "held", result.record_ids, result.sids, result.error_code, held_id=held_id, template=template.name
        )

    async def deliver_held(
        self, phone: str, after_sid: str | None = None
    ) -> list[tuple[HeldMessage, SendResult]]:
        """Send what the window held back for `phone`, oldest first, each once: call it when they
        write on WhatsApp (`after_sid`: that message), before answering them. Nothing happens while
        the window is closed; a send that fails or is blocked is recorded as such, not retried."""
        waiting = await asyncio.to_thread(self._store.held, phone)  # one read for most messages
        if not waiting:
            return []
        contact = await asyncio.to_thread(self._store.contact, phone)
        if not self._in_window(contact):
            return []
        delivered = []
        for held in waiting:
            if held.expires_at is not None and self._clock.now() >= held.expires_at:
                # Old news is not sent late ("llega mañana" a week on): recorded, not delivered.
                if await asyncio.to_thread(self._store.finish_held, held.id, "expired", after_sid):
                    logger.info(
                        "held #%s to %s expired at %s: not delivered", held.id, phone, held.expires_at
                    )
                    delivered.append((held, SendResult("expired")))
                continue
            message = OutboundMessage(
                held.phone, Channel(held.channel), body=held.body, media_urls=tuple(held.media_urls),
                options=tuple(Option(item["title"], item["payload"]) for item in held.options),
                source=held.source,
            )  # fmt: skip
            # The key makes the send once-only, also when two deliveries race or one is replayed.
            result = await self.send(message, key=f"held:{held.id}")
            fate = result.status if result.status in ("blocked", "failed", "unknown") else "delivered"
            if await asyncio.to_thread(self._store.finish_held, held.id, fate, after_sid):
                log = logger.info if fate == "delivered" else logger.warning
                log("held #%s (%s) to %s: %s after %s", held.id, held.source, phone, fate, after_sid or "?")
                delivered.append((held, result))
        return delivered

    async def _unsent(self, delivery: Delivery, to_phone: str, part_key: str) -> int | None:
        """The record of `part_key` if its message must still be sent, else None.

        A reply recorded "sending" (or "unknown") was being sent when its process died, or got
        no clear answer: Twilio may have it or not, and only Twilio knows. It is asked (the
        messages to that address since the last one this database knows), and the reply is sent
        only if Twilio does not have it; if Twilio cannot be asked, it is not sent (at most once).
        """
        existing = await asyncio.to_thread(self._store.outbound_by_key, part_key)
        if existing is None or existing.status not in ("sending", "unknown"):
            logger.info("reply %s to %s was sent before: not sent again", part_key, to_phone)
            return None
        anchor = await asyncio.to_thread(self._store.last_sid_before, to_phone, existing.id)
        try:
            candidates = await self.transport.find(delivery, anchor)
        except AmbiguousSendError as error:
            logger.error(
                "reply %s may or may not have reached %s (%s): not sent again", part_key, to_phone, error
            )
            return None
        known = await asyncio.to_thread(self._store.known_sids, [sid for sid, _ in candidates])
        unclaimed = [(sid, status) for sid, status in candidates if sid not in known]
        if unclaimed:
            sid, status = unclaimed[-1]  # the oldest one no other record claims
            await asyncio.to_thread(self._store.update_outbound, existing.id, sid=sid, status=status)
            logger.info("reply %s reached Twilio before the interruption (%s): not sent again", part_key, sid)
            return None
        logger.warning("reply %s to %s never reached Twilio: sending it now", part_key, to_phone)
        return existing.id

    async def _deliver_with_retries(
        self, delivery: Delivery, record: int
    ) -> tuple[str | None, str, str | None]:
        attempts = 0
        while True:
            attempts += 1
            try:
                sid, status = await self.transport.deliver(delivery)
            except TransientSendError as error:
                if attempts > len(self._retry_delays):
                    return await self._failed(record, attempts, error.code, str(error))
                delay = self._retry_delays[attempts - 1] * random.uniform(0.8, 1.2)
                logger.warning(
                    "send to %s failed (%s); retry %d in %.1f s", delivery.to, error, attempts, delay
                )
                await asyncio.sleep(delay)
            except PermanentSendError as error:
                return await self._failed(record, attempts, error.code, str(error))
            except AmbiguousSendError as error:
                # Twilio may have it: recorded as such, never sent again (a status callback for
                # it cannot be matched without its sid; an operator can look it up in Twilio).
                logger.error("outbound #%s to %s: %s; not retried", record, delivery.to, error)
                await asyncio.to_thread(
                    self._store.update_outbound, record, status="unknown",
                    error_message=str(error)[:500], attempts=attempts,
                )  # fmt: skip
                return None, "unknown", None
            else:
                await asyncio.to_thread(
                    self._store.update_outbound, record, sid=sid, status=status, attempts=attempts
                )
                return sid, status, None

    async def _failed(
        self, record: int, attempts: int, code: str | None, reason: str
    ) -> tuple[None, str, str | None]:
        logger.error("outbound #%s failed after %d attempt(s): %s", record, attempts, reason)
        await asyncio.to_thread(
            self._store.update_outbound, record, status="failed", error_code=code,
            error_message=reason[:500], attempts=attempts,
        )  # fmt: skip
        return None, "failed", code


def list_button_text() -> str:
    """The designers' `utter_list_button` when domain.yml has it (≤ 20 characters), else the default."""
    try:
        text = render(LIST_BUTTON_RESPONSE)
    except (KeyError, OSError, IndexError):
        return DEFAULT_LIST_BUTTON
    return text if 0 < len(text) <= 20 else DEFAULT_LIST_BUTTON
