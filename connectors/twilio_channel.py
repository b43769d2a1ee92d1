"""WhatsApp and SMS through Twilio: a hardened replacement for Rasa's built-in twilio channel.

Inbound (POST /webhooks/twilio/webhook): no signature header or a body over MAX_FORM_BYTES is
refused before the body is read (`refuse_before_body`); then the signature is checked against
PUBLIC_URL and the message is written to the inbound journal (bot/messaging/journal.py) before
anything is answered: empty 204 once the row is committed, 204 for a MessageSid already there
(Twilio's duplicate delivery), 503 when the database cannot take it (Twilio delivers again).
Processing happens on a thread of its own (Rasa's NLU and policies are CPU-bound and would hold
every acknowledgement back on the server's loop): a worker takes each conversation's journal
rows one at a time in arrival order under a lease, marks them done when finished, and gives them
back with a backoff when processing failed (the action server or the database was down). At
start, and every `SWEEP_S` after, it takes what was accepted and not finished: the rows a crash
or a dead replica left. Replies are keyed by the inbound MessageSid and their place among its
replies (`ReplyKeys`), so a replay never answers twice; a message whose turn is already in the
tracker is not run through Rasa again, only its replies not sent yet are sent. Outbound: every
reply goes through bot.messaging.sender.MessageSender (async Twilio REST client, 24-hour window,
opt-out). Delivery status callbacks (POST /webhooks/twilio/status) update each outbound message.

What a message means before Rasa (handoff routing, opt-out and opt-in words, card screening,
numbered options, escalation) is decided by bot.messaging.inbound_rules.decide; this module reads
the conversation's state for it and carries the decision out. While a conversation waits for or
talks to an agent, what the customer writes skips NLU: it is stored for the console, announced,
and appended to the (paused) tracker as it is.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import enum
import logging
import os
import socket
import sys
import threading
import time
import uuid
import weakref
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any
from urllib.parse import parse_qsl

import redis
import sqlalchemy
from rasa.core.channels.channel import InputChannel, OutputChannel, UserMessage
from rasa.core.lock_store import LockError
from rasa.shared.core.constants import ACTION_LISTEN_NAME
from rasa.shared.core.events import ActionExecuted, BotUttered, ConversationResumed, Event, UserUttered
from sanic import Blueprint, response
from sanic.exceptions import PayloadTooLarge
from sanic.request import Request
from twilio.request_validator import RequestValidator

from bot.adapters.base import BackendUnavailable
from bot.adapters.sql import SqlStore
from bot.clock import Clock
from bot.consents.store import ConsentBook, ConsentChange
from bot.consents.topics import ALL_TOPICS
from bot.deep_links import EXPIRED_PAYLOAD, LINK_METADATA, NOTIFICATION_KEY, DeepLinks, link_token
from bot.handoff.service import HandoffServices
from bot.handoff.store import Handoff
from bot.messaging.buttons import Option
from bot.messaging.inbound import Channel, InboundMessage, MalformedWebhook, parse_inbound
from bot.messaging.inbound_rules import (
    ConversationState,
    HandoffState,
    InboundDecision,
    Route,
    decide,
    facts_needed,
)
from bot.messaging.journal import LEASE, DuplicateMessage, InboundJournal, JournalEntry
from bot.messaging.memory import ConversationMemory, memory_for
from bot.messaging.sender import MessageSender, OutboundMessage, transport_for
from bot.messaging.store import MessagingStore
from bot.messaging.templates import TemplateCatalog
from bot.phone import InvalidPhoneNumber
from bot.responses import render
from bot.settings import Settings
from bot.wiring import wiring
from connectors import rasa_patches
from connectors.media import add_media_routes

logger = logging.getLogger(__name__)

# The largest webhook body accepted. Twilio's form for a message with 10 media is about 3 KB
# (ten MediaUrlN/MediaContentTypeN pairs of ~150 bytes, plus some twenty short fields); the
# largest legitimate one is a 4,096-character WhatsApp Body of 4-byte characters, which
# percent-encodes to 48 KiB. 64 KiB holds that with room; Sanic's default is 100 MB.
MAX_FORM_BYTES = 64 * 1024
# How often a worker looks for journal rows nobody is processing: left by a crash, a dead
# replica whose lease expired, or a failure whose backoff is over.
SWEEP_S = 1.0
PRUNE_EVERY_S = 3600.0  # finished rows older than the journal's RETENTION are deleted


def is_outage(error: BaseException) -> bool:
    """Whether processing failed because a system was down (the action server, Redis, the
    database, Rasa's lock), not because of the message itself: retried without a limit."""
    outages = (
        rasa_patches.ActionServerUnavailable,
        BackendUnavailable,
        LockError,
        redis.exceptions.ConnectionError,
        redis.exceptions.TimeoutError,
        sqlalchemy.exc.OperationalError,
        sqlalchemy.exc.InterfaceError,
        ConnectionError,
        TimeoutError,
        asyncio.TimeoutError,
    )
    return isinstance(error, outages)


class ReplyKeys:
    """The keys of the replies to one inbound message, in the order they are produced: the n-th
    reply to message X is "X:n" whether it is produced the first time or on a replay."""

    def __init__(self, message_sid: str) -> None:
        self.message_sid = message_sid
        self._next = 0

    def next(self) -> str:
        key = f"{self.message_sid}:{self._next}"
        self._next += 1
        return key


class Outcome(enum.Enum):
    """What became of a journal row the worker processed."""

    DONE = "done"  # to be marked done; the conversation's next row may follow
    RETRY_LATER = "retry later"  # given back with a backoff: the newer rows wait for it
    GIVEN_UP = "given up"  # marked failed: the conversation goes on


def _keyed(keys: ReplyKeys | None) -> str | None:
    return keys.next() if keys is not None else None


def channel_response(name: str) -> str:
    """A wording of a domain response the channel sends itself (opt-out, withdrawn handoff)."""
    return render(name)


class ConversationWorker:
    """A thread with its own event loop where conversations are processed.

    The server's loop only verifies, journals and acknowledges webhooks. Everything the
    processing touches works from any loop: Rasa's lock stores poll, its action-server client
    opens a session per call, the SQL stores are synchronous, and the Twilio client is created
    on first use inside this loop.
    """

    # How long a thread may hold the GIL before another one that wants it gets it. Python's
    # default, 5 ms, lets the model's pure-Python featurising hold the webhook handler up for
    # several of those per request; 0.5 ms keeps acknowledgements quick at a tiny cost in switches.
    GIL_SWITCH_INTERVAL_S = 0.0005

    def __init__(self) -> None:
        sys.setswitchinterval(min(sys.getswitchinterval(), self.GIL_SWITCH_INTERVAL_S))
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="twilio-conversations", daemon=True)
        self._thread.start()
        self._pending: set[concurrent.futures.Future] = set()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def submit(self, work: Coroutine[Any, Any, None]) -> None:
        future = asyncio.run_coroutine_threadsafe(work, self.loop)
        self._pending.add(future)
        future.add_done_callback(self._pending.discard)

    def run(self, work: Coroutine[Any, Any, Any], timeout_s: float) -> Any:
        return asyncio.run_coroutine_threadsafe(work, self.loop).result(timeout_s)

    async def wait_idle(self, timeout_s: float) -> None:
        """Wait (without blocking the caller's loop) until submitted work is done."""
        pending = [asyncio.wrap_future(future) for future in set(self._pending)]
        if pending:
            await asyncio.wait(pending, timeout=timeout_s)

    def stop(self) -> None:
        """Cancel what still runs here (the journal's sweep, unfinished messages: they stay in the
        journal and are replayed), then stop the loop and its thread."""

        async def cancel_all() -> None:
            tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        try:
            asyncio.run_coroutine_threadsafe(cancel_all(), self.loop).result(5)
        except Exception:  # noqa: BLE001 (stopping anyway)
            logger.warning("the conversation worker's tasks did not all stop in 5 s")
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)


class TwilioOutput(OutputChannel):
    """Renders Rasa's responses for WhatsApp/SMS and hands them to the one sender."""

    @classmethod
    def name(cls) -> str:
        return "twilio"

    def __init__(
        self,
        sender: MessageSender,
        store: MessagingStore,
        channel: Channel | None,
        memory: ConversationMemory,
        keys: ReplyKeys | None = None,
    ) -> None:
        self.sender = sender
        self.store = store
        self.memory = memory
        self.channel = channel  # None: the channel the customer last wrote from
        self.keys = keys  # the replies to a customer's message: sent once each, also on a replay

    async def _channel_for(self, recipient_id: str) -> Channel:
        if self.channel is not None:
            return self.channel
        contact = await asyncio.to_thread(self.store.contact, recipient_id)
        return Channel(contact.last_channel) if contact and contact.last_channel else Channel.WHATSAPP

    async def _send(
        self, recipient_id: str, body: str = "", media_urls: tuple[str, ...] = (), **extra: Any
    ) -> None:
        channel = await self._channel_for(recipient_id)
        message = OutboundMessage(to=recipient_id, channel=channel, body=body, media_urls=media_urls, **extra)
        # Outside the WhatsApp window (a reply after a long handoff, the 1–5 question) the sender
        # sends the generic template and holds the reply until the customer writes.
        result = await self.sender.send(message, key=_keyed(self.keys))
        if result.status == "held":
            logger.info("reply to %s held as #%s: outside the WhatsApp window", recipient_id, result.held_id)

    async def send_text_message(self, recipient_id: str, text: str, **kwargs: Any) -> None:
        await self._send(recipient_id, body=text)

    async def send_text_with_buttons(
        self, recipient_id: str, text: str, buttons: list[dict[str, Any]], **kwargs: Any
    ) -> None:
        # The sender shows them as WhatsApp buttons or a list when they fit, else as a numbered
        # list; either way they are remembered, so a tap (its id), "2", "dos", "la segunda" or a
        # title is read back as the payload of an option the bot really offered.
        options = [{"title": b.get("title", ""), "payload": b.get("payload", "")} for b in buttons]
        await asyncio.to_thread(self.memory.set_pending_buttons, recipient_id, options)
        shown = tuple(Option(o["title"], o["payload"]) for o in options)
        await self._send(recipient_id, body=text or "", options=shown)

    async def send_quick_replies(
        self, recipient_id: str, text: str, quick_replies: list[dict[str, Any]], **kwargs: Any
    ) -> None:
        await self.send_text_with_buttons(recipient_id, text, quick_replies, **kwargs)

    async def send_image_url(self, recipient_id: str, image: str, **kwargs: Any) -> None:
        await self._send(recipient_id, media_urls=(image,))

    async def send_attachment(self, recipient_id: str, attachment: Any, **kwargs: Any) -> None:
        url = attachment if isinstance(attachment, str) else (attachment or {}).get("url")
        if url and str(url).startswith(("http://", "https://")):
            await self._send(recipient_id, media_urls=(str(url),))
        elif url:
            await self._send(recipient_id, body=str(url))

    async def send_elements(self, recipient_id: str, elements: list[dict[str, Any]], **kwargs: Any) -> None:
        lines = [" — ".join(filter(None, (e.get("title"), e.get("subtitle")))) for e in elements]
        await self._send(recipient_id, body="\n".join(lines))

    async def send_custom_json(self, recipient_id: str, json_message: dict[str, Any], **kwargs: Any) -> None:
        """`custom: {content_sid, content_variables}` sends an approved WhatsApp template."""
        if json_message.get("content_sid"):
            await self._send(
                recipient_id,
                content_sid=json_message["content_sid"],
                content_variables=json_message.get("content_variables") or None,
            )
        else:
            logger.warning("custom payload without content_sid not sent to %s", recipient_id)


class TwilioInput(InputChannel):
    """POST /webhooks/twilio/webhook and /webhooks/twilio/status; see the module docstring."""

    @classmethod
    def name(cls) -> str:
        return "twilio"

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any] | None) -> TwilioInput:
        graph = wiring()
        return cls(
            graph.settings,
            store=graph.messaging,
            handoff=graph.handoff,
            clock=graph.clock,
            memory=graph.memory,
            journal=graph.journal,
            templates=graph.templates,
            consents=graph.consents,
        )

    def __init__(
        self,
        settings: Settings,
        *,
        store: MessagingStore,
        handoff: HandoffServices,
        clock: Clock,
        sender: MessageSender | None = None,
        memory: ConversationMemory | None = None,
        journal: InboundJournal | None = None,
        templates: TemplateCatalog | None = None,
        consents: ConsentBook | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.store = store
        self.handoff = handoff
        self._api_sender: MessageSender | None = None
        self.journal = journal or InboundJournal(SqlStore(settings.database_url), clock)
        # BAJA and ALTA are logged with every other consent change (bot/consents/store.py).
        self.consents = consents or ConsentBook(self.journal.store, clock)
        # A notification's quick reply that opens a flow carries a signed link (bot/deep_links.py).
        self.links = DeepLinks(settings.identity_secret) if settings.identity_secret else None
        # Who holds a journal row's lease: unique per process, and readable in the table.
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._draining: dict[str, asyncio.Task] = {}  # phone -> its drain, on the worker's loop
        self._again: set[str] = set()  # phones given new rows while their drain was reading
        self._on_new_message: Callable[[UserMessage], Awaitable[Any]] | None = None
        self._app: Any = None
        self.sender = sender or MessageSender(
            settings, self.store, transport_for(settings), clock=self.clock, templates=templates
        )
        self._conversations: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        self._worker: ConversationWorker | None = None
        self._stopping = False  # SIGTERM: draining, no longer ready
        # What the inbound rules remember between messages (card data, options on screen).
        self.memory = memory or memory_for(settings.redis_url)
        if not settings.twilio_validate_signature:
            logger.warning("TWILIO_VALIDATE_SIGNATURE=false: webhooks are NOT verified (development only)")
        elif not settings.twilio_auth_token:
            logger.warning("TWILIO_AUTH_TOKEN is unset: every Twilio webhook will be refused with 403")

    # --- verification ----------------------------------------------------------------------

    @staticmethod
    def twilio_form(request: Request) -> dict[str, str]:
        """The POSTed parameters, blank ones included: Twilio signs them all (an empty Body too)."""
        return dict(parse_qsl(request.body.decode("utf-8", errors="replace"), keep_blank_values=True))

    def refuse_before_body(self, request: Request) -> response.HTTPResponse | None:
        """A refusal decided from the headers alone, before a byte of the body is read.

        The routes stream their body (Sanic would otherwise read up to REQUEST_MAX_SIZE, 100 MB,
        before the handler runs), so a request without Twilio's signature header costs nothing,
        and one declaring more than MAX_FORM_BYTES is refused without reading it. The stream's own
        limit is lowered too: a chunked body stops being read at the limit, and what a refused
        request still sends is not drained (the connection is closed instead).
        """
        if request.stream is not None:
            request.stream.request_max_size = MAX_FORM_BYTES
        if self.settings.twilio_validate_signature and not request.headers.get("X-Twilio-Signature"):
            logger.warning(
                "refused a Twilio webhook without a signature from %s", request.remote_addr or request.ip
            )
            return response.text("forbidden", status=403)
        length = request.headers.get("Content-Length")
        if length is None and request.headers.get("Transfer-Encoding", "").lower() != "chunked":
            return response.text("length required", status=411)
        if length is not None and (not length.isdigit() or int(length) > MAX_FORM_BYTES):
            logger.warning("refused a Twilio webhook of %s bytes (limit %d)", length, MAX_FORM_BYTES)
            return response.text("payload too large", status=413)
        return None

    async def read_form(self, request: Request) -> dict[str, str] | response.HTTPResponse:
        """The form, read only after `refuse_before_body` let the request through."""
        refusal = self.refuse_before_body(request)
        if refusal is not None:
            return refusal
        try:
            await request.receive_body()
        except PayloadTooLarge:  # a chunked body that went past the limit
            return response.text("payload too large", status=413)
        return self.twilio_form(request)

    def _url_twilio_signed(self, request: Request) -> str:
        if not self.settings.public_url:
            return request.url
        query = f"?{request.query_string}" if request.query_string else ""
        return f"{self.settings.public_url}{request.path}{query}"

    def is_signed_by_twilio(self, request: Request, form: dict[str, str]) -> bool:
        if not self.settings.twilio_validate_signature:
            return True
        signature = request.headers.get("X-Twilio-Signature")
        if not signature or not self.settings.twilio_auth_token:
            return False
        validator = RequestValidator(self.settings.twilio_auth_token)
        return validator.validate(self._url_twilio_signed(request), form, signature)

    # --- output for Rasa's HTTP API ----------------------------------------------------------

    def get_output_channel(self) -> OutputChannel | None:
        """For `?output_channel=twilio` on Rasa's HTTP API (the console's hand-back): replies go to
        the channel the customer last wrote from, through a sender of the server's own loop."""
        if self._api_sender is None:
            self._api_sender = MessageSender(
                self.settings, self.store, transport_for(self.settings), clock=self.clock,
                templates=self.sender.templates,
            )  # fmt: skip
        return TwilioOutput(self._api_sender, self.store, None, self.memory)

    # --- handoff ----------------------------------------------------------------------------

    @staticmethod
    async def _append_to_tracker(app: Any, conversation_id: str, events: list[Event]) -> None:
        """Write events into the conversation without running NLU or policies (it is paused)."""
        agent = getattr(getattr(app, "ctx", None), "agent", None)
        if agent is None or agent.tracker_store is None:
            return
        async with agent.lock_store.lock(conversation_id):
            tracker = await agent.tracker_store.get_or_create_tracker(conversation_id)
            for event in events:
                tracker.update(event)
            await agent.tracker_store.save(tracker)

    async def _active_handoff(self, message: InboundMessage) -> Handoff | None:
        try:
            return await asyncio.to_thread(self.handoff.store.active_for, message.phone)
        except BackendUnavailable:
            # The bot still answers (and apologises if it needs the same database).
            logger.exception("handoff table unavailable; %s goes to the bot", message.sid)
            return None

    async def _form_active(self, phone: str, app: Any) -> bool:
        agent = getattr(getattr(app, "ctx", None), "agent", None)
        if agent is None or agent.tracker_store is None:
            return False
        tracker = await agent.tracker_store.retrieve(phone)
        return bool(tracker and tracker.active_loop_name)

    async def _opted_out(self, phone: str) -> bool:
        contact = await asyncio.to_thread(self.store.contact, phone)
        return bool(contact and contact.opted_out)

    async def _state(self, message: InboundMessage, handoff: Handoff | None, app: Any) -> ConversationState:
        """What the inbound rules need to know of the conversation; costly reads only when needed."""
        phone, needed = message.phone, facts_needed(message.text)
        buttons = await asyncio.to_thread(self.memory.pending_buttons, phone)
        card = await asyncio.to_thread(self.memory.card_context, phone)
        return ConversationState(
            handoff=None
            if handoff is None
            else HandoffState(handoff.status, handoff.packet.get("requested_slot")),
            pending_buttons=tuple(buttons),
            after_card=card.after_card,
            card_tail=card.tail,
            form_active=needed.form_active and not buttons and await self._form_active(phone, app),
            opted_out=needed.opted_out and await self._opted_out(phone),
        )

    async def _withdraw(
        self, message: InboundMessage, handoff: Handoff, app: Any, keys: ReplyKeys | None
    ) -> None:
        if not await asyncio.to_thread(self.handoff.store.end, handoff.id, "withdrawn"):
            return
        await asyncio.to_thread(self.handoff.announcer.announce, "handoff_withdrawn", handoff.id)
        text = channel_response("utter_handoff_withdrawn")
        await self._append_to_tracker(
            app,
            message.phone,
            [
                UserUttered(message.text, input_channel=self.name(), message_id=message.sid),
                ConversationResumed(),
                BotUttered(text),
                ActionExecuted(ACTION_LISTEN_NAME),  # the bot listens again, as after any turn
            ],
        )
        await self.sender.send(OutboundMessage(message.phone, message.channel, body=text), key=_keyed(keys))

    async def _to_agent(
        self,
        message: InboundMessage,
        handoff: Handoff,
        decision: InboundDecision,
        app: Any,
        keys: ReplyKeys | None,
    ) -> None:
        media = [{"url": m.url, "content_type": m.content_type} for m in message.media]
        await asyncio.to_thread(
            self.handoff.store.add_message, handoff.id, "customer", decision.text, None, media
        )
        await asyncio.to_thread(self.handoff.announcer.announce, "customer_message", handoff.id)
        events: list[Event] = [
            UserUttered(
                decision.text, input_channel=self.name(), message_id=message.sid, metadata=message.metadata()
            )
        ]
        if decision.advise_against_card_data:
            events.append(await self._advise_against_card_data(message, handoff.id, keys))
        await self._append_to_tracker(app, message.phone, events)

    async def _advise_against_card_data(
        self, message: InboundMessage, handoff_id: str, keys: ReplyKeys | None
    ) -> Event:
        """Card data typed to an agent: the customer gets the same advice the bot gives, and the
        agent sees it in the conversation. Returns the bot message for the tracker."""
        advice = channel_response("utter_card_data_refused")
        await asyncio.to_thread(self.handoff.store.add_message, handoff_id, "bot", advice)
        await self.sender.send(OutboundMessage(message.phone, message.channel, body=advice), key=_keyed(keys))
        return BotUttered(advice)

    async def _log_keyword(self, message: InboundMessage, granted: bool) -> None:
        """BAJA / ALTA in the consent log: every topic ("*"), the channel it was written on."""
        change = ConsentChange(
            message.phone, ALL_TOPICS, message.channel, granted, via=message.channel.value,
            source="keyword", message_id=message.sid, message_text=message.text,
        )  # fmt: skip
        await asyncio.to_thread(self.consents.change, change)

    async def _opt_out(self, message: InboundMessage, keys: ReplyKeys | None) -> None:
        await asyncio.to_thread(self.store.opt_out, message.phone, message.channel)
        await self._log_keyword(message, granted=False)
        logger.info("%s opted out on %s", message.phone, message.channel.value)
        reply = OutboundMessage(message.phone, message.channel, body=channel_response("utter_opted_out"))
        await self.sender.send(reply, opt_out_confirmation=True, key=_keyed(keys))

    async def _opt_in(self, message: InboundMessage, keys: ReplyKeys | None) -> None:
        await asyncio.to_thread(self.store.opt_in, message.phone)
        await self._log_keyword(message, granted=True)
        logger.info("%s opted back in on %s", message.phone, message.channel.value)
        reply = OutboundMessage(message.phone, message.channel, body=channel_response("utter_opted_in"))
        await self.sender.send(reply, key=_keyed(keys))

    async def _remember_held_options(self, phone: str, delivered: list) -> None:
        """The options of the last held message just delivered are on screen now, as the bot's
        own are: a tap on its buttons (a notification's "Cambiar fecha" or "Pagar ahora", with
        their signed links), its number or its title reads back as their payload. The bot's
        answer, if it offers options of its own, replaces them as any newer options do."""
        gone = ("blocked", "failed", "unknown", "expired")  # what did not reach the customer
        shown = [held.options for held, result in delivered if held.options and result.status not in gone]
        if shown:
            await asyncio.to_thread(self.memory.set_pending_buttons, phone, shown[-1])

    def _opened_link(self, text: str, phone: str, metadata: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """A tapped (or numbered) link payload as the flow it opens, with what it opened in the
        metadata (the invoice "Pagar ahora" is about, and the notification that offered it, which
        analytics counts as a tap: docs/kpis.md), or /link_expired when it is expired, forged or
        another number's; any other text and its metadata as they are."""
        if link_token(text) is None:
            return text, metadata
        if self.links is None:
            return EXPIRED_PAYLOAD, metadata  # no IDENTITY_SECRET here: no link can be checked
        opened, link = self.links.opened(text, phone, self.clock.now())
        if link is None:
            return opened, metadata
        extra: dict[str, Any] = {LINK_METADATA: {"flow": link.flow.value, "target": link.target}}
        if link.notification is not None:
            extra[NOTIFICATION_KEY] = link.notification
        return opened, {**(metadata or {}), **extra}

    # --- processing -------------------------------------------------------------------------

    async def handle(
        self,
        message: InboundMessage,
        sender_address: str,
        on_new_message: Callable[[UserMessage], Awaitable[Any]],
        app: Any = None,
        keys: ReplyKeys | None = None,
    ) -> None:
        """Everything after the acknowledgement, for one message, in its conversation's turn.
        `keys` names its replies (the journal's worker gives them; a direct call may not)."""
        lock = self._conversations.get(message.phone)
        if lock is None:
            lock = self._conversations[message.phone] = asyncio.Lock()
        async with lock:
            await asyncio.to_thread(self.store.record_inbound, message.phone, message.channel, sender_address)
            handoff = await self._active_handoff(message)
            decision = decide(message, await self._state(message, handoff, app), self.handoff.config)
            # The window is open again: what it held back goes first, oldest first, each once
            # (keyed by its held row, so a replay of this message does not send it twice). Not to
            # a BAJA; after the confirmation of an ALTA (until then the number is opted out).
            whatsapp = message.channel is Channel.WHATSAPP
            delivered = []
            if whatsapp and decision.route not in (Route.OPT_OUT, Route.OPT_IN):
                delivered = await self.sender.deliver_held(message.phone, message.sid)
            if decision.held_card_data is not None:
                await asyncio.to_thread(
                    self.memory.remember_card, message.phone, decision.held_card_data, decision.card_tail
                )
            if decision.answered_buttons:
                await asyncio.to_thread(self.memory.clear_pending_buttons, message.phone)
            await self._remember_held_options(message.phone, delivered)
            if decision.route is Route.WITHDRAW_HANDOFF and handoff is not None:
                await self._withdraw(message, handoff, app, keys)
            elif decision.route is Route.TO_AGENT and handoff is not None:
                await self._to_agent(message, handoff, decision, app, keys)
            elif decision.route is Route.OPT_OUT:
                await self._opt_out(message, keys)
            elif decision.route is Route.OPT_IN:
                await self._opt_in(message, keys)
                if whatsapp:
                    await self.sender.deliver_held(message.phone, message.sid)
            elif decision.route is Route.TO_BOT:
                output = TwilioOutput(self.sender, self.store, message.channel, self.memory, keys)
                text, metadata = self._opened_link(decision.text, message.phone, decision.metadata)
                await on_new_message(
                    UserMessage(
                        text,
                        output,
                        message.phone,
                        input_channel=self.name(),
                        message_id=message.sid,
                        metadata=metadata,
                    )
                )

    # --- the journal's worker -------------------------------------------------------------

    def _worker_loop(self) -> ConversationWorker:
        if self._worker is None:
            self._worker = ConversationWorker()
        return self._worker

    def dispatch(self, phone: str) -> None:
        """Have the worker process `phone`'s journal rows (from any thread)."""
        worker = self._worker_loop()
        worker.loop.call_soon_threadsafe(self._start_drain, phone)

    def _start_drain(self, phone: str) -> None:
        # On the worker's loop only: `_draining` and `_again` are never touched from elsewhere.
        if phone in self._draining:
            self._again.add(phone)
            return
        task = self._worker_loop().loop.create_task(self._drain(phone))
        self._draining[phone] = task
        task.add_done_callback(lambda _: self._draining.pop(phone, None))

    async def _drain(self, phone: str) -> None:
        """Process the conversation's rows oldest first, until none is left that this worker may
        take: one failing (retried after its backoff) holds back the newer ones. A row done is
        marked so in the same transaction that takes the next one."""
        if not self._model_ready():
            return  # no model yet (starting, or being replaced): the sweep comes back for it
        done: int | None = None
        try:
            while True:
                self._again.discard(phone)
                if done is None:
                    entry = await asyncio.to_thread(self.journal.take_next, phone, self.worker_id)
                else:
                    entry = await asyncio.to_thread(
                        self.journal.finish_and_take_next, done, self.worker_id, phone
                    )
                    done = None
                if entry is None:
                    if phone in self._again:
                        continue
                    return
                outcome = await self._process(entry)
                if outcome is Outcome.RETRY_LATER:
                    return
                if outcome is Outcome.DONE:
                    done = entry.id
        except Exception:
            # The database is down: the rows stay accepted and the sweep takes them again (a row
            # processed and not yet marked done is taken again once its lease expires: a replay).
            logger.exception("the journal of %s could not be read; retrying on the next sweep", phone)

    async def _keep_lease(self, entry: JournalEntry) -> None:
        while True:
            await asyncio.sleep(LEASE.total_seconds() / 3)
            try:
                if not await asyncio.to_thread(self.journal.renew, entry.id, self.worker_id):
                    logger.error("lost the lease of message %s", entry.message.sid)
                    return
            except Exception:
                logger.exception("could not renew the lease of message %s", entry.message.sid)

    async def _process(self, entry: JournalEntry) -> Outcome:
        """One journal row, to the end (not yet marked done: the caller does, see `_drain`)."""
        lease = asyncio.create_task(self._keep_lease(entry))
        try:
            await self._process_once(entry)
        except Exception as error:
            logger.exception(
                "processing message %s failed (attempt %d); it will be retried",
                entry.message.sid,
                entry.attempts,
            )
            retried = await asyncio.to_thread(
                self.journal.retry_later, entry, self.worker_id, repr(error), outage=is_outage(error)
            )
            # Given up: the conversation goes on with its next message.
            return Outcome.RETRY_LATER if retried else Outcome.GIVEN_UP
        finally:
            lease.cancel()
        return Outcome.DONE

    def _model_ready(self) -> bool:
        agent = getattr(getattr(self._app, "ctx", None), "agent", None)
        return agent is not None and agent.is_ready()

    async def _process_once(self, entry: JournalEntry) -> None:
        message, keys = entry.message, ReplyKeys(entry.message.sid)
        agent = getattr(getattr(self._app, "ctx", None), "agent", None)
        if agent is None or not agent.is_ready():
            raise RuntimeError("no model is loaded yet")
        if entry.replayed:
            replies = await self._replies_in_tracker(agent, message)
            if replies is not None:
                # Rasa saved this turn before the crash: its replies are in the tracker. Only those
                # not sent yet go out (the sender skips the keys it recorded).
                logger.info("message %s was handled before: sending its unsent replies", message.sid)
                output = TwilioOutput(self.sender, self.store, message.channel, self.memory, keys)
                for reply in replies:
                    await output.send_response(message.phone, reply.message())
                return
        assert self._on_new_message is not None
        await self.handle(message, entry.address or "", self._on_new_message, self._app, keys)

    @staticmethod
    async def _replies_in_tracker(agent: Any, message: InboundMessage) -> list[BotUttered] | None:
        """The bot messages after `message`'s user turn in its tracker; None when Rasa never saved
        that turn (then the message is to be handled from the start)."""
        if agent.tracker_store is None:
            return None
        tracker = await agent.tracker_store.retrieve(message.phone)
        if tracker is None:
            return None
        replies: list[BotUttered] | None = None
        for event in tracker.events:
            if isinstance(event, UserUttered):
                if replies is not None:
                    break  # the next user turn
                if event.message_id == message.sid:
                    replies = []
            elif replies is not None and isinstance(event, BotUttered):
                replies.append(event)
        return replies

    async def _sweep(self) -> None:
        """Take, now and every SWEEP_S, what nobody is processing: the replay after a restart."""
        next_prune = 0.0
        while True:
            try:
                for phone in await asyncio.to_thread(self.journal.conversations_due):
                    self._start_drain(phone)
                if time.monotonic() >= next_prune:
                    next_prune = time.monotonic() + PRUNE_EVERY_S
                    pruned = await asyncio.to_thread(self.journal.prune)
                    if pruned:
                        logger.info("deleted %d finished rows from the inbound journal", pruned)
            except Exception:
                logger.exception("the inbound journal could not be read; trying again")
            await asyncio.sleep(SWEEP_S)

    def start_processing(self, app: Any, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> None:
        """Begin processing the journal (the server started): first what a crash left unfinished."""
        self._app, self._on_new_message = app, on_new_message
        worker = self._worker_loop()
        worker.submit(self._sweep())

    def is_ready(self) -> bool:
        """Whether this replica serves customers: the model is loaded and the journal is being
        processed (after_server_start ran), and it is not stopping. What `/webhooks/twilio/ready`
        answers a load balancer or a readiness probe (docs/deploy.md)."""
        agent = getattr(getattr(self._app, "ctx", None), "agent", None)
        loaded = agent is not None and agent.is_ready()
        return loaded and self._worker is not None and not self._stopping

    async def drain(self, timeout_s: float = 20) -> None:
        """Let in-flight messages finish (on shutdown), then release connections. What is not
        finished stays accepted in the journal: the next start replays it."""
        if self._worker is not None:
            worker = self._worker

            async def in_flight() -> None:
                tasks = [task for task in self._draining.values() if not task.done()]
                if tasks:
                    await asyncio.wait(tasks, timeout=timeout_s)

            try:
                await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(in_flight(), worker.loop))
            except Exception:
                logger.exception("in-flight messages did not finish; they will be replayed")
            # The Twilio client's session belongs to the worker's loop: close it there.
            worker.run(self.sender.transport.close(), timeout_s=5)
            worker.stop()
        self.memory.close()

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        webhook = Blueprint("hardened_twilio_webhook", __name__)
        self._on_new_message = on_new_message

        @webhook.listener("after_server_start")
        async def warm_up(app: Any, _loop: Any) -> None:
            # Rasa loads the model before the server starts; trace it and freeze it now.
            await rasa_patches.warm_up_and_freeze(getattr(app.ctx, "agent", None))
            # Then the journal: what was accepted and not finished before a crash first.
            self.start_processing(app, on_new_message)

        @webhook.route("/", methods=["GET"])
        async def health(_: Request) -> response.HTTPResponse:
            return response.json({"status": "ok"})

        # Readiness without a credential, for load balancers and probes: one word, nothing else
        # (the model's name and fingerprint are /status's, behind RASA_TOKEN).
        @webhook.route("/ready", methods=["GET"])
        async def ready(_: Request) -> response.HTTPResponse:
            if self.is_ready():
                return response.json({"status": "ready"})
            return response.json({"status": "not ready"}, status=503)

        @webhook.route("/webhook", methods=["POST"], stream=True)
        async def receive(request: Request) -> response.HTTPResponse:
            form = await self.read_form(request)
            if isinstance(form, response.HTTPResponse):
                return form
            if not self.is_signed_by_twilio(request, form):
                logger.warning(
                    "refused a Twilio webhook with a missing or wrong signature from %s (MessageSid %s)",
                    request.remote_addr or request.ip,
                    form.get("MessageSid", "?"),
                )
                return response.text("forbidden", status=403)
            try:
                message = parse_inbound(form, self.settings.default_country)
            except (MalformedWebhook, InvalidPhoneNumber) as error:
                logger.warning("refused a Twilio webhook: %s", error)
                return response.text("bad request", status=400)
            try:
                await asyncio.to_thread(self.journal.accept, message, form["From"])
            except DuplicateMessage:
                logger.info("MessageSid %s is already in the journal: duplicate ignored", message.sid)
                return response.empty(status=204)
            except Exception:
                # Not stored, so not acknowledged: Twilio delivers it again.
                logger.exception("message %s could not be journaled: answered 503", message.sid)
                return response.text("service unavailable", status=503)
            if self._app is None:  # before after_server_start ran (never, under Rasa's server)
                self._app = request.app
            self.dispatch(message.phone)
            return response.empty(status=204)

        # The media of the messages we send (invoice PDFs, agents' files): Twilio fetches them here.
        add_media_routes(webhook, self.clock)

        @webhook.route("/status", methods=["POST"], stream=True)
        async def delivery_status(request: Request) -> response.HTTPResponse:
            form = await self.read_form(request)
            if isinstance(form, response.HTTPResponse):
                return form
            if not self.is_signed_by_twilio(request, form):
                logger.warning("refused a status callback with a missing or wrong signature")
                return response.text("forbidden", status=403)
            sid, status = form.get("MessageSid"), form.get("MessageStatus")
            if not sid or not status:
                return response.text("bad request", status=400)
            known = await asyncio.to_thread(
                self.store.record_status, sid, status, form.get("ErrorCode") or None
            )
            if not known:
                logger.info("status %s for unknown MessageSid %s", status, sid)
            return response.empty(status=204)

        @webhook.listener("before_server_stop")
        async def finish_in_flight(*_: Any) -> None:
            self._stopping = True
            await self.drain()

        return webhook
