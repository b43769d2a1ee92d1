"""WhatsApp and SMS through Twilio: a hardened replacement for Rasa's built-in twilio channel.

Inbound (POST /webhooks/twilio/webhook): signature checked against PUBLIC_URL, MessageSid
claimed once (Redis SET NX across replicas), empty 204 to Twilio at once, then processing in
the background, one conversation at a time in arrival order, on a thread of its own: Rasa's
NLU and policies are CPU-bound and run in whatever loop calls them, so on the server's loop
they would hold every acknowledgement back. Outbound: every reply goes through
bot.messaging.sender.MessageSender (async Twilio REST client, retries, 24-hour window, opt-out).
Delivery status callbacks (POST /webhooks/twilio/status) update each outbound message.

Handoff: while a conversation waits for or talks to an agent (an active row in the handoffs
table), what the customer writes skips NLU: it is masked, stored for the console, announced, and
appended to the (paused) tracker as it is. "cancelar" or "ya no" while still waiting withdraws
the request. Angry or urgent wording (bot/handoff_config.yml) is handed over at once.
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
from sanic.request import Request
from twilio.request_validator import RequestValidator

from bot.adapters.base import BackendUnavailable
from bot.adapters.sql import SqlStore
from bot.choices import fold, numbered_options, pick_choice
from bot.clock import SystemClock
from bot.handoff.packet import is_secret_slot, mask_customer_text
from bot.handoff.rules import language_reason
from bot.handoff.service import HandoffServices, build_services
from bot.masking import mask_card_data, mask_sensitive, screen_message
from bot.messaging.claims import MessageClaims, claims_for
from bot.messaging.inbound import (
    OPT_OUT_WHEN_IDLE,
    Channel,
    InboundMessage,
    Keyword,
    MalformedWebhook,
    keyword_of,
    parse_inbound,
    rasa_text,
)
from bot.messaging.sender import MessageSender, OutboundMessage, OutsideSessionWindow, transport_for
from bot.messaging.store import MessagingStore
from bot.phone import InvalidPhoneNumber
from bot.responses import render
from bot.settings import Settings, current
from connectors import rasa_tuning

logger = logging.getLogger(__name__)


# While waiting for a person, these (the whole message) withdraw the request.
WITHDRAW_WORDS = {
    "cancelar",
    "cancela",
    "cancelo",
    "ya no",
    "ya no gracias",
    "mejor no",
    "olvidalo",
    "ya no hace falta",
}


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

    def __init__(self, sender: MessageSender, store: MessagingStore, channel: Channel | None) -> None:
        self.sender = sender
        self.store = store
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
        await asyncio.to_thread(self.store.set_pending_buttons, recipient_id, options)
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
        return cls(current())

    def __init__(
        self,
        settings: Settings,
        store: MessagingStore | None = None,
        claims: MessageClaims | None = None,
        sender: MessageSender | None = None,
        handoff: HandoffServices | None = None,
    ) -> None:
        rasa_tuning.apply()
        self.settings = settings
        self.clock = SystemClock(settings.clock_shift)
        self.store = store or MessagingStore(SqlStore(settings.database_url), self.clock)
        self.handoff = handoff or build_services(settings)
        self._api_sender: MessageSender | None = None
        self.claims = claims or claims_for(settings.redis_url)
        self.sender = sender or MessageSender(settings, self.store, transport_for(settings), clock=self.clock)
        self._conversations: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        self._worker: ConversationWorker | None = None
        self._card_senders: set[str] = set()  # whose last message held a card number
        if not settings.twilio_validate_signature:
            logger.warning("TWILIO_VALIDATE_SIGNATURE=false: webhooks are NOT verified (development only)")
        elif not settings.twilio_auth_token:
            logger.warning("TWILIO_AUTH_TOKEN is unset: every Twilio webhook will be refused with 403")

    # --- verification ----------------------------------------------------------------------

    @staticmethod
    def twilio_form(request: Request) -> dict[str, str]:
        """The POSTed parameters, blank ones included: Twilio signs them all (an empty Body too)."""
        return dict(parse_qsl(request.body.decode("utf-8", errors="replace"), keep_blank_values=True))

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
        return TwilioOutput(self._api_sender, self.store, None)

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

    async def _route_to_agent(self, message: InboundMessage, app: Any) -> bool:
        """While a handoff is active, the message goes to the agent; True when it was handled here."""
        try:
            handoff = await asyncio.to_thread(self.handoff.store.active_for, message.phone)
        except BackendUnavailable:
            # The bot still answers (and apologises if it needs the same database).
            logger.exception("handoff table unavailable; %s goes to the bot", message.sid)
            return False
        if handoff is None:
            return False
        word = fold(message.text)
        if handoff.status == "waiting" and word in WITHDRAW_WORDS:
            if await asyncio.to_thread(self.handoff.store.end, handoff.id, "withdrawn"):
                self.handoff.announcer.announce("handoff_withdrawn", handoff.id)
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
            return True
        if keyword_of(message.text) is not None and word not in OPT_OUT_WHEN_IDLE:
            return False  # BAJA / STOP still opt out, handoff or not; "cancelar" goes to the agent
        answering_secret = is_secret_slot(handoff.packet.get("requested_slot"))
        # The same card screening as for the bot (a lone CVV right after a card number too): the
        # agent, the handoff tables and the tracker only ever get the masked text.
        screened = mask_card_data(message.text, after_card=message.phone in self._card_senders)
        self._remember_card_sender(message.phone, screened.changed)
        text = mask_customer_text(screened.text, answering_secret)
        media = [{"url": m.url, "content_type": m.content_type} for m in message.media]
        await asyncio.to_thread(self.handoff.store.add_message, handoff.id, "customer", text, None, media)
        self.handoff.announcer.announce("customer_message", handoff.id)
        events: list[Event] = [
            UserUttered(text, input_channel=self.name(), message_id=message.sid, metadata=message.metadata())
        ]
        if screened.changed:
            events.append(await self._advise_against_card_data(message, handoff.id))
        await self._append_to_tracker(app, message.phone, events)
        return True

    def _remember_card_sender(self, phone: str, sent_card_data: bool) -> None:
        """A 3-4 digit message right after card data is its security code."""
        if sent_card_data:
            self._card_senders.add(phone)
        else:
            self._card_senders.discard(phone)

    async def _advise_against_card_data(self, message: InboundMessage, handoff_id: str) -> Event:
        """Card data typed to an agent: the customer gets the same advice the bot gives, and the
        agent sees it in the conversation. Returns the bot message for the tracker."""
        advice = channel_response("utter_card_data_refused")
        await asyncio.to_thread(self.handoff.store.add_message, handoff_id, "bot", advice)
        await self.sender.send(OutboundMessage(message.phone, message.channel, body=advice))
        return BotUttered(advice)

    def _hand_over_at_once(self, message: InboundMessage, text: str) -> tuple[str, dict[str, Any]]:
        """Angry or urgent wording becomes a request for a person, keeping what was written."""
        metadata = message.metadata()
        reason = language_reason(text, self.handoff.config) if text and not text.startswith("/") else None
        if reason is None:
            return text, metadata
        return "/human_handoff", {
            **metadata,
            "handoff_reason": reason.value,
            "original_text": mask_sensitive(text),
        }

    # --- processing -------------------------------------------------------------------------

    async def _question_open(self, phone: str, app: Any) -> bool:
        """Whether the bot is waiting for an answer: options on screen or a form running."""
        contact = await asyncio.to_thread(self.store.contact, phone)
        if contact and contact.pending_buttons:
            return True
        agent = getattr(getattr(app, "ctx", None), "agent", None)
        if agent is None or agent.tracker_store is None:
            return False
        tracker = await agent.tracker_store.retrieve(phone)
        return bool(tracker and tracker.active_loop_name)

    async def _apply_keyword(self, message: InboundMessage, app: Any) -> bool:
        """Opt-out / opt-in keywords; True when the message was one and is fully handled."""
        keyword = keyword_of(message.text)
        if keyword is Keyword.OPT_OUT:
            if fold(message.text) in OPT_OUT_WHEN_IDLE and await self._question_open(message.phone, app):
                return False  # "cancelar" answers the open question; NLU reads it
            await asyncio.to_thread(self.store.opt_out, message.phone, message.channel)
            logger.info("%s opted out on %s", message.phone, message.channel.value)
            reply = OutboundMessage(message.phone, message.channel, body=channel_response("utter_opted_out"))
            await self.sender.send(reply, opt_out_confirmation=True)
            return True
        if keyword is Keyword.OPT_IN:
            contact = await asyncio.to_thread(self.store.contact, message.phone)
            if not (contact and contact.opted_out):
                return False  # "yes" / "start" from someone subscribed is just a message
            await asyncio.to_thread(self.store.opt_in, message.phone)
            logger.info("%s opted back in on %s", message.phone, message.channel.value)
            reply = OutboundMessage(message.phone, message.channel, body=channel_response("utter_opted_in"))
            await self.sender.send(reply)
            return True
        return False

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
            if await self._route_to_agent(message, app):
                return
            if await self._apply_keyword(message, app):
                return
            # payments (issue 6): card data never reaches Rasa, its logs or its tracker store.
            screened = screen_message(rasa_text(message), after_card=message.phone in self._card_senders)
            self._remember_card_sender(message.phone, screened.card_data)
            text = screened.text
            offered = await asyncio.to_thread(self.store.take_pending_buttons, message.phone)
            if offered and not text.startswith("/"):
                picked = pick_choice(text, [option["title"] for option in offered])
                if picked is not None:
                    text = offered[picked]["payload"]
            text, metadata = self._hand_over_at_once(message, text)
            output = TwilioOutput(self.sender, self.store, message.channel)
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

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        webhook = Blueprint("hardened_twilio_webhook", __name__)

        @webhook.listener("after_server_start")
        async def warm_up(app: Any, _loop: Any) -> None:
            # Rasa loads the model before the server starts; trace it and freeze it now.
            await rasa_tuning.warm_up_and_freeze(getattr(app.ctx, "agent", None))

        @webhook.route("/", methods=["GET"])
        async def health(_: Request) -> response.HTTPResponse:
            return response.json({"status": "ok"})

        @webhook.route("/webhook", methods=["POST"])
        async def receive(request: Request) -> response.HTTPResponse:
            form = self.twilio_form(request)
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

        @webhook.route("/status", methods=["POST"])
        async def delivery_status(request: Request) -> response.HTTPResponse:
            form = self.twilio_form(request)
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
