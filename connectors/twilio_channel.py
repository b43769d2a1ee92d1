"""WhatsApp and SMS through Twilio: a hardened replacement for Rasa's built-in twilio channel.

Inbound (POST /webhooks/twilio/webhook): no signature header or a body over MAX_FORM_BYTES is
refused before the body is read (`refuse_before_body`); then the signature is checked against
PUBLIC_URL, MessageSid claimed once (Redis SET NX across replicas), empty 204 to Twilio at once,
then processing in the background, one conversation at a time in arrival order, on a thread of
its own: Rasa's NLU and policies are CPU-bound and run in whatever loop calls them, so on the
server's loop they would hold every acknowledgement back. Outbound: every reply goes through
bot.messaging.sender.MessageSender (async Twilio REST client, retries, 24-hour window, opt-out).
Delivery status callbacks (POST /webhooks/twilio/status) update each outbound message.

What a message means before Rasa (handoff routing, opt-out and opt-in words, card screening,
numbered options, escalation) is decided by bot.messaging.inbound_rules.decide; this module reads
the conversation's state for it and carries the decision out. While a conversation waits for or
talks to an agent, what the customer writes skips NLU: it is stored for the console, announced,
and appended to the (paused) tracker as it is.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import sys
import threading
import weakref
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any
from urllib.parse import parse_qsl

from rasa.core.channels.channel import InputChannel, OutputChannel, UserMessage
from rasa.shared.core.constants import ACTION_LISTEN_NAME
from rasa.shared.core.events import ActionExecuted, BotUttered, ConversationResumed, Event, UserUttered
from sanic import Blueprint, response
from sanic.exceptions import PayloadTooLarge
from sanic.request import Request
from twilio.request_validator import RequestValidator

from bot.adapters.base import BackendUnavailable
from bot.choices import numbered_options
from bot.clock import Clock
from bot.handoff.service import HandoffServices
from bot.handoff.store import Handoff
from bot.messaging.claims import MessageClaims, claims_for
from bot.messaging.inbound import Channel, InboundMessage, MalformedWebhook, parse_inbound
from bot.messaging.inbound_rules import (
    ConversationState,
    HandoffState,
    InboundDecision,
    Route,
    decide,
    facts_needed,
)
from bot.messaging.memory import ConversationMemory, memory_for
from bot.messaging.sender import MessageSender, OutboundMessage, OutsideSessionWindow, transport_for
from bot.messaging.store import MessagingStore
from bot.phone import InvalidPhoneNumber
from bot.responses import render
from bot.settings import Settings
from bot.wiring import wiring
from connectors import rasa_patches

logger = logging.getLogger(__name__)

# The largest webhook body accepted. Twilio's form for a message with 10 media is about 3 KB
# (ten MediaUrlN/MediaContentTypeN pairs of ~150 bytes, plus some twenty short fields); the
# largest legitimate one is a 4,096-character WhatsApp Body of 4-byte characters, which
# percent-encodes to 48 KiB. 64 KiB holds that with room; Sanic's default is 100 MB.
MAX_FORM_BYTES = 64 * 1024


def channel_response(name: str) -> str:
    """A wording of a domain response the channel sends itself (opt-out, withdrawn handoff)."""
    return render(name)


class ConversationWorker:
    """A thread with its own event loop where conversations are processed.

    The server's loop only verifies, claims and acknowledges webhooks. Everything the
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
    ) -> None:
        self.sender = sender
        self.store = store
        self.memory = memory
        self.channel = channel  # None: the channel the customer last wrote from

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
        try:
            await self.sender.send(message)
        except OutsideSessionWindow:
            logger.exception("reply to %s not sent: outside the WhatsApp 24-hour window", recipient_id)

    async def send_text_message(self, recipient_id: str, text: str, **kwargs: Any) -> None:
        await self._send(recipient_id, body=text)

    async def send_text_with_buttons(
        self, recipient_id: str, text: str, buttons: list[dict[str, Any]], **kwargs: Any
    ) -> None:
        # WhatsApp free-form messages and SMS have no buttons: a numbered list, and the
        # options are remembered so "2", "dos", "la segunda" or a title can be read back.
        options = [{"title": b.get("title", ""), "payload": b.get("payload", "")} for b in buttons]
        await asyncio.to_thread(self.memory.set_pending_buttons, recipient_id, options)
        await self._send(recipient_id, body=numbered_options(text or "", [o["title"] for o in options]))

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
        )

    def __init__(
        self,
        settings: Settings,
        *,
        store: MessagingStore,
        handoff: HandoffServices,
        clock: Clock,
        claims: MessageClaims | None = None,
        sender: MessageSender | None = None,
        memory: ConversationMemory | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.store = store
        self.handoff = handoff
        self._api_sender: MessageSender | None = None
        self.claims = claims or claims_for(settings.redis_url)
        self.sender = sender or MessageSender(settings, self.store, transport_for(settings), clock=self.clock)
        self._conversations: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        self._worker: ConversationWorker | None = None
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
                self.settings, self.store, transport_for(self.settings), clock=self.clock
            )
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

    async def _withdraw(self, message: InboundMessage, handoff: Handoff, app: Any) -> None:
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
        await self.sender.send(OutboundMessage(message.phone, message.channel, body=text))

    async def _to_agent(
        self, message: InboundMessage, handoff: Handoff, decision: InboundDecision, app: Any
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
            events.append(await self._advise_against_card_data(message, handoff.id))
        await self._append_to_tracker(app, message.phone, events)

    async def _advise_against_card_data(self, message: InboundMessage, handoff_id: str) -> Event:
        """Card data typed to an agent: the customer gets the same advice the bot gives, and the
        agent sees it in the conversation. Returns the bot message for the tracker."""
        advice = channel_response("utter_card_data_refused")
        await asyncio.to_thread(self.handoff.store.add_message, handoff_id, "bot", advice)
        await self.sender.send(OutboundMessage(message.phone, message.channel, body=advice))
        return BotUttered(advice)

    async def _opt_out(self, message: InboundMessage) -> None:
        await asyncio.to_thread(self.store.opt_out, message.phone, message.channel)
        logger.info("%s opted out on %s", message.phone, message.channel.value)
        reply = OutboundMessage(message.phone, message.channel, body=channel_response("utter_opted_out"))
        await self.sender.send(reply, opt_out_confirmation=True)

    async def _opt_in(self, message: InboundMessage) -> None:
        await asyncio.to_thread(self.store.opt_in, message.phone)
        logger.info("%s opted back in on %s", message.phone, message.channel.value)
        reply = OutboundMessage(message.phone, message.channel, body=channel_response("utter_opted_in"))
        await self.sender.send(reply)

    # --- processing -------------------------------------------------------------------------

    async def handle(
        self,
        message: InboundMessage,
        sender_address: str,
        on_new_message: Callable[[UserMessage], Awaitable[Any]],
        app: Any = None,
    ) -> None:
        """Everything after the acknowledgement, for one message, in its conversation's turn."""
        lock = self._conversations.get(message.phone)
        if lock is None:
            lock = self._conversations[message.phone] = asyncio.Lock()
        async with lock:
            await asyncio.to_thread(self.store.record_inbound, message.phone, message.channel, sender_address)
            handoff = await self._active_handoff(message)
            decision = decide(message, await self._state(message, handoff, app), self.handoff.config)
            if decision.held_card_data is not None:
                await asyncio.to_thread(
                    self.memory.remember_card, message.phone, decision.held_card_data, decision.card_tail
                )
            if decision.answered_buttons:
                await asyncio.to_thread(self.memory.clear_pending_buttons, message.phone)
            if decision.route is Route.WITHDRAW_HANDOFF and handoff is not None:
                await self._withdraw(message, handoff, app)
            elif decision.route is Route.TO_AGENT and handoff is not None:
                await self._to_agent(message, handoff, decision, app)
            elif decision.route is Route.OPT_OUT:
                await self._opt_out(message)
            elif decision.route is Route.OPT_IN:
                await self._opt_in(message)
            elif decision.route is Route.TO_BOT:
                output = TwilioOutput(self.sender, self.store, message.channel, self.memory)
                await on_new_message(
                    UserMessage(
                        decision.text,
                        output,
                        message.phone,
                        input_channel=self.name(),
                        message_id=message.sid,
                        metadata=decision.metadata,
                    )
                )

    def _spawn(self, work: Coroutine[Any, Any, None], sid: str) -> None:
        async def guarded() -> None:
            try:
                await work
            except Exception:
                logger.exception("processing message %s failed", sid)

        if self._worker is None:
            self._worker = ConversationWorker()
        self._worker.submit(guarded())

    async def drain(self, timeout_s: float = 20) -> None:
        """Let in-flight messages finish (on shutdown), then release connections."""
        if self._worker is not None:
            await self._worker.wait_idle(timeout_s)
            # The Twilio client's session belongs to the worker's loop: close it there.
            self._worker.run(self.sender.transport.close(), timeout_s=5)
            self._worker.stop()
        await self.claims.close()
        self.memory.close()

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        webhook = Blueprint("hardened_twilio_webhook", __name__)

        @webhook.listener("after_server_start")
        async def warm_up(app: Any, _loop: Any) -> None:
            # Rasa loads the model before the server starts; trace it and freeze it now.
            await rasa_patches.warm_up_and_freeze(getattr(app.ctx, "agent", None))

        @webhook.route("/", methods=["GET"])
        async def health(_: Request) -> response.HTTPResponse:
            return response.json({"status": "ok"})

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
            if not await self.claims.claim(message.sid):
                logger.info("MessageSid %s already claimed: duplicate ignored", message.sid)
                return response.empty(status=204)
            self._spawn(self.handle(message, form["From"], on_new_message, request.app), message.sid)
            return response.empty(status=204)

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
            await self.drain()

        return webhook
