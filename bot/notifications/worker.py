"""The notification worker: decides each due notification and sends it through the one
MessageSender at a steady pace, recording the result per notification.

Its own process (`python -m connectors.notification_worker`, started by `make run`), so a campaign
of thousands never competes with conversations for the Rasa or action server. Each due row is
leased; the send carries the key `notification:<id>`, so a worker killed between sending and
recording the result does not send again when the row is leased anew (the sender finds the
message it already recorded, or asks Twilio about one left "sending").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import phonenumbers
from phonenumbers import timezone as phone_zones

from bot.consents.topics import granted
from bot.deep_links import TARGET_VARIABLE, DeepLinks, Link
from bot.messaging.buttons import Option
from bot.messaging.inbound import Channel
from bot.messaging.sender import OutboundMessage, SendResult
from bot.notifications.decide import Action, decide, local_day_bounds
from bot.notifications.rules import NotificationRules, Rule, render_text, template_values
from bot.notifications.store import NotificationStore, StoredNotification
from bot.outbox import backoff
from bot.phone import phone_country
from bot.records import Customer

logger = logging.getLogger(__name__)
LINK_DEFAULT_LIFE = timedelta(hours=72)  # a link of a rule whose news does not expire


class TokenBucket:
    """At most `rate_per_s` takes per second on average, `burst` at once: paces a campaign."""

    def __init__(
        self,
        rate_per_s: float,
        monotonic: Callable[[], float],
        burst: float = 1.0,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        if rate_per_s <= 0:
            raise ValueError("rate_per_s must be positive")
        self.rate = rate_per_s
        self.burst = max(burst, 1.0)
        self._monotonic = monotonic
        self._sleep = sleep
        self._tokens = self.burst
        self._last = monotonic()

    async def take(self) -> None:
        while True:
            now = self._monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now
            if self._tokens >= 1:
                self._tokens -= 1
                return
            await self._sleep((1 - self._tokens) / self.rate)


@dataclass(frozen=True)
class Recipient:
    phone: str
    customer: Customer | None
    zone: str
    country: str


def customer_zone(customer: Customer | None, phone: str, default_zone: str) -> str:
    """The customer's time zone: the CRM's, else the phone's when its country has one, else the
    business's."""
    if customer and customer.timezone:
        return customer.timezone
    with contextlib.suppress(phonenumbers.NumberParseException):
        zones = phone_zones.time_zones_for_number(phonenumbers.parse(phone, None))
        if len(zones) == 1 and "/" in zones[0] and not zones[0].startswith("Etc/"):
            return zones[0]
    return default_zone


class NotificationWorker:
    """See the module docstring."""

    def __init__(
        self,
        store: NotificationStore,
        rules: NotificationRules,
        sender: Any,  # MessageSender
        messaging: Any,  # MessagingStore: opt-outs and the channel last written from
        crm: Any,  # Crm: who the customer is, their zone
        clock: Callable[[], datetime],
        bucket: TokenBucket,
        *,
        default_zone: str,
        default_country: str,
        lease: timedelta = timedelta(seconds=60),
        max_attempts: int = 10,
        batch: int = 20,
        memory: Any = None,  # ConversationMemory: the quick replies offered, as the channel keeps them
        consents: Any = None,  # ConsentBook: the customer's choices per topic and channel
        links: DeepLinks | None = None,  # signs the quick replies that open a flow
    ) -> None:
        self.store, self.rules, self.sender = store, rules, sender
        self.messaging, self.crm, self.clock, self.bucket = messaging, crm, clock, bucket
        self.default_zone, self.default_country = default_zone, default_country
        self.lease, self.max_attempts = lease, max_attempts
        self.memory = memory
        self.consents = consents
        self.links = links
        # No more per lease than can be sent in half of it at the configured pace.
        self.batch = max(1, min(batch, int(bucket.rate * lease.total_seconds() / 2)))

    async def run_once(self) -> int:
        """Decide (and send) every notification due now, a batch at a time; how many were handled."""
        items = await asyncio.to_thread(self.store.claim_due, self.clock(), self.lease, self.batch)
        for item in items:
            await self._handle(item)
        return len(items)

    async def run_forever(self, stop: asyncio.Event, poll_s: float = 1.0) -> None:
        while not stop.is_set():
            try:
                handled = await self.run_once()
            except Exception:
                logger.exception("notifications: a round failed; trying again")
                handled = 0
            if not handled:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stop.wait(), poll_s)

    def _recipient(self, item: StoredNotification) -> Recipient | None:
        event = item.event
        customer = None
        phone = event.phone
        if phone:
            customer = self.crm.customer_by_phone(phone)
        elif event.customer_id:
            customer = self.crm.customer_by_id(event.customer_id)
            phone = customer.phone if customer else None
        if not phone:
            return None
        zone = customer_zone(customer, phone, self.default_zone)
        country = (customer.country if customer else None) or phone_country(phone) or self.default_country
        return Recipient(phone, customer, zone, country)

    async def _handle(self, item: StoredNotification) -> None:
        attempts = item.attempts + 1
        try:
            recipient = await asyncio.to_thread(self._recipient, item)
            if recipient is None:
                await self._finish(item, "skipped", attempts, reason="unknown_customer")
                return
            rule = self.rules.rule_for(item.event.kind)
            contact = await asyncio.to_thread(self.messaging.contact, recipient.phone)
            channel = self._channel(item, rule, contact)
            refused = await asyncio.to_thread(self._refused_consent, rule, recipient.phone, channel)
            now = self.clock()
            start, end = local_day_bounds(now, recipient.zone)
            sent_today = await asyncio.to_thread(self.store.sent_between, recipient.phone, start, end)
            decision = decide(
                item.event, rule, now=now, zone=recipient.zone,
                opted_out=bool(contact and contact.opted_out), sent_today=sent_today,
                refused_consent=refused,
            )  # fmt: skip
            if decision.action is Action.DEFER:
                await asyncio.to_thread(self.store.defer, item.id, decision.at, decision.reason or "")
                logger.info("notification #%s deferred to %s (%s)", item.id, decision.at, decision.reason)
                return
            if decision.action is Action.SKIP:
                await self._finish(
                    item, "skipped", attempts, reason=decision.reason, phone=recipient.phone,
                    channel=channel.value,
                )  # fmt: skip
                return
            assert rule is not None
            await self.bucket.take()
            await self._send(item, rule, recipient, channel, attempts)
        except Exception as error:
            await self._retry_or_fail(item, attempts, error)

    @staticmethod
    def _channel(item: StoredNotification, rule: Rule | None, contact: Any) -> Channel:
        """The event's channel, else the one the customer last wrote from, else the rule's."""
        if item.event.channel is not None:
            return item.event.channel
        last = contact.last_channel if contact else None
        if last:
            return Channel(last)
        return rule.channel if rule else Channel.WHATSAPP

    def _refused_consent(self, rule: Rule | None, phone: str, channel: Channel) -> str | None:
        """ "<topic>/<channel>" when the customer said no to the rule's topic on that channel (or
        never said yes to a topic that is off by default); None when they receive it."""
        if rule is None or rule.topic is None or self.consents is None:
            return None
        if granted(self.rules.topics, self.consents.choices(phone), rule.topic, channel):
            return None
        return f"{rule.topic}/{channel.value}"

    async def _send(
        self, item: StoredNotification, rule: Rule, who: Recipient, channel: Channel, attempts: int
    ) -> None:
        event = item.event
        variables = {"customer_name": who.customer.first_name if who.customer else "", **event.variables}
        text = render_text(rule, variables, who.country, numbered=False)
        options, link_expires_at = self._options(rule, item, who.phone)
        delivered = {"channel": channel.value, "link_expires_at": link_expires_at}
        # The same signed links fill the ids of the template's buttons that open a flow, so a tap
        # on the template outside the window opens the flow as a tap on the message would.
        links = {
            reply.opens: option.payload
            for reply, option in zip(rule.quick_replies, options, strict=True)
            if reply.opens and option.payload != reply.payload
        }
        key = f"notification:{item.id}"
        # Outside the WhatsApp window the sender sends the rule's template (or the generic one)
        # and holds the text until the customer writes: the result says which.
        message = OutboundMessage(
            who.phone, channel, body=text, options=options, template=rule.whatsapp_template,
            template_values=template_values(variables, who.country, links), source="notification",
            expires_at=event.occurred_at + rule.expires_after if rule.expires_after else None,
        )  # fmt: skip
        # The options are remembered before the customer can see them, as the channel remembers
        # its own, so a tap (or "1") that comes back at once is read as what was offered; shared
        # when REDIS_URL is set. Forgotten again if they were not shown after all.
        remember = bool(rule.quick_replies) and self.memory is not None
        if remember:
            offered = [{"title": option.title, "payload": option.payload} for option in options]
            await asyncio.to_thread(self.memory.set_pending_buttons, who.phone, offered)
        result = await self.sender.send(message, key=key)
        if remember and (result.template or result.status in ("held", "blocked", "failed")):
            # A template went in its place (its buttons carry their own ids), or nothing went.
            await asyncio.to_thread(self.memory.clear_pending_buttons, who.phone)
        if result.status == "held":
            if result.template and result.status == "held" and result.error_code:
                template = f"template {result.template} failed (error {result.error_code})"
            else:
                template = f"template {result.template} sent" if result.template else "no new template sent"
            await self._finish(
                item, "held", attempts, phone=who.phone, message_sid=result.sids[0] if result.sids else None,
                reason=f"outside_session_window: {template}; the message is held as #{result.held_id} "
                "and delivered when the customer writes", **delivered,
            )  # fmt: skip
            return
        await self._record(item, result, attempts, who.phone, key, delivered)

    def _options(
        self, rule: Rule, item: StoredNotification, phone: str
    ) -> tuple[tuple[Option, ...], datetime | None]:
        """The rule's quick replies as the message's options (WhatsApp buttons, numbered on SMS);
        one that opens a flow carries a signed link to it for this number and this notification,
        alive as long as the news (the rule's expires_after_hours, else LINK_DEFAULT_LIFE). With
        them, when the links stop working (None: no link offered)."""
        event = item.event
        expires_at = event.occurred_at + (rule.expires_after or LINK_DEFAULT_LIFE)
        options, linked = [], False
        for reply in rule.quick_replies:
            payload = reply.payload
            target = event.variables.get(TARGET_VARIABLE[reply.opens]) if reply.opens else None
            if reply.opens and target and self.links is not None:
                payload = self.links.payload(Link(phone, reply.opens, target, expires_at, item.id))
                linked = True
            options.append(Option(reply.title, payload))
        return tuple(options), expires_at if linked else None

    async def _record(
        self,
        item: StoredNotification,
        result: SendResult,
        attempts: int,
        phone: str,
        key: str,
        delivered: dict[str, Any],
    ) -> None:
        if result.status == "duplicate":
            # Tried before a crash: the sender's own record of it says how that went.
            record = await asyncio.to_thread(self.messaging.outbound_by_key, f"{key}.0")
            status = record.status if record else "unknown"
            sids = [record.sid] if record and record.sid else []
            result = SendResult(status, result.record_ids, sids, record.error_code if record else None)
        if result.status == "blocked":
            await self._finish(item, "skipped", attempts, reason="opted_out", phone=phone, **delivered)
        elif result.status == "failed":
            await self._finish(
                item, "failed", attempts, phone=phone, send_status="failed",
                reason=f"the sender failed (error {result.error_code or 'unknown'})", **delivered,
            )  # fmt: skip
        else:
            sid = result.sids[0] if result.sids else None
            await self._finish(
                item, "sent", attempts, phone=phone, message_sid=sid, send_status=result.status, **delivered
            )
            logger.info("notification #%s sent to %s (%s)", item.id, phone, result.status)

    async def _finish(self, item: StoredNotification, status: str, attempts: int, **values: Any) -> None:
        await asyncio.to_thread(self.store.finish, item.id, status, self.clock(), attempts=attempts, **values)
        if status != "sent":
            logger.info("notification #%s %s: %s", item.id, status, values.get("reason"))

    async def _retry_or_fail(self, item: StoredNotification, attempts: int, error: Exception) -> None:
        """The CRM or the database failed: try again later, up to max_attempts."""
        logger.warning("notification #%s attempt %d failed: %r", item.id, attempts, error)
        try:
            if attempts >= self.max_attempts:
                await self._finish(item, "failed", attempts, reason=f"gave up: {error!r}")
                return
            until = self.clock() + timedelta(seconds=backoff(attempts, 5.0, 600.0))
            await asyncio.to_thread(self.store.retry_later, item.id, attempts, until, repr(error))
        except Exception:
            # The database itself is down: the lease expires and the row is tried again.
            logger.exception("notification #%s: could not record the failed attempt", item.id)
