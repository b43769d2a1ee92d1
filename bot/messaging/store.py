"""What the channel remembers per phone number and per outbound message, in SQL (DATABASE_URL)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from bot.adapters.sql import SqlStore, from_db_time, to_db_time, upsert
from bot.clock import Clock
from bot.masking import mask_sensitive
from bot.messaging.inbound import Channel

metadata = sa.MetaData()

# One row per customer phone: the WhatsApp 24-hour window and opt-out. (The numbered options last
# offered live in bot.messaging.memory; revision 0009 dropped their old column.)
contacts = sa.Table(
    "channel_contacts",
    metadata,
    sa.Column("phone", sa.String(20), primary_key=True),
    sa.Column("last_channel", sa.String(16)),
    sa.Column("last_inbound_at", sa.DateTime),
    sa.Column("whatsapp_last_inbound_at", sa.DateTime),
    # Replies go to the address the customer wrote from: WhatsApp still reports Mexican
    # mobiles as +521…, and that is the address it delivers to.
    sa.Column("whatsapp_address", sa.String(40)),
    sa.Column("opted_out_at", sa.DateTime),
    sa.Column("opted_out_channel", sa.String(16)),
    sa.Column("opted_in_at", sa.DateTime),
)

# Every message the assistant sends, with the status Twilio reports for it.
outbound_messages = sa.Table(
    "outbound_messages",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("sid", sa.String(64), unique=True),
    sa.Column("to_phone", sa.String(20), nullable=False, index=True),
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("transport", sa.String(16), nullable=False),  # twilio | outbox
    sa.Column("body", sa.Text, nullable=False, default=""),
    sa.Column("media_urls", sa.Text),  # JSON list
    sa.Column("content_sid", sa.String(64)),
    sa.Column("status", sa.String(24), nullable=False),
    sa.Column("error_code", sa.String(16)),
    sa.Column("error_message", sa.String(500)),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False),
    # "<inbound MessageSid>:<reply number>.<part>" for a reply to a customer's message: a replay
    # of that message finds it and does not send it again (NULL for other messages).
    sa.Column("idempotency_key", sa.String(100)),
    sa.Index("ix_outbound_messages_idempotency_key", "idempotency_key", unique=True),
)

# The WhatsApp buttons and lists created at Twilio's Content API (bot/messaging/contents.py), one
# per distinct set of options: created once, shared by every replica, kept across restarts.
whatsapp_contents = sa.Table(
    "whatsapp_contents",
    metadata,
    sa.Column("shape_key", sa.String(64), primary_key=True),  # sha256 of the content's types
    sa.Column("content_sid", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),  # twilio/quick-reply | twilio/list-picker
    sa.Column("created_at", sa.DateTime, nullable=False),
)

# What a sender could not send as it was because the WhatsApp 24-hour window was closed: a template
# went out instead (or the generic one), and the message waits here, durably, until the customer
# writes again; then it is delivered, in order (by id) and once (its send carries the key
# held:<id>). `source` says who sent it (bot, outbox, console, notification); `source_key` is the
# sender's idempotency key, unique, so a replayed reply is not held twice.
held_messages = sa.Table(
    "held_messages",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("phone", sa.String(20), nullable=False),
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("source", sa.String(24), nullable=False),
    sa.Column("source_key", sa.String(100)),
    sa.Column("body", sa.Text, nullable=False, default=""),
    sa.Column("media_urls", sa.Text),  # JSON list
    sa.Column("options", sa.Text),  # JSON list of {title, payload}: the response's buttons
    # held | delivered | expired (its news went stale before they wrote) | blocked (opted out
    # meanwhile) | failed | unknown (Twilio may have it)
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("template", sa.String(64)),  # the template sent in its place, if one was
    sa.Column("template_status", sa.String(200)),  # that send's status, or why none was sent
    sa.Column("held_at", sa.DateTime, nullable=False),
    sa.Column("expires_at", sa.DateTime),  # after this it is not delivered (a notification's expiry)
    sa.Column("delivered_at", sa.DateTime),
    sa.Column("delivered_after", sa.String(64)),  # the inbound MessageSid that opened the window
    sa.Index("ix_held_messages_phone_status", "phone", "status"),
    sa.Index("ix_held_messages_source_key", "source_key", unique=True),
)

# Files agents send customers from the console (bot/messaging/attachments.py), kept here so the
# Rasa server can serve them to Twilio from any replica: only through a signed, expiring URL
# naming the row's random id and the number it was sent to (bot/media_links.py).
media_files = sa.Table(
    "media_files",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),  # random, unguessable
    sa.Column("phone", sa.String(20), nullable=False),  # the customer it was sent to (E.164)
    sa.Column("content_type", sa.String(64), nullable=False),  # read from the bytes, not the name
    sa.Column("filename", sa.String(120), nullable=False),  # a clean name, for the customer's phone
    sa.Column("size", sa.Integer, nullable=False),
    sa.Column("data", sa.LargeBinary, nullable=False),
    sa.Column("uploaded_by", sa.String(64), nullable=False),  # the agent's login
    sa.Column("uploaded_at", sa.DateTime, nullable=False),
    sa.Index("ix_media_files_uploaded_at", "uploaded_at"),  # the retention's purge (0022_media_gc)
)

# Twilio's message statuses, in the order a message moves through them.
STATUS_ORDER = ["sending", "accepted", "queued", "sending_twilio", "sent", "delivered", "read"]


@dataclass(frozen=True)
class Contact:
    phone: str
    last_channel: str | None
    whatsapp_last_inbound_at: datetime | None
    whatsapp_address: str | None
    opted_out_at: datetime | None

    @property
    def opted_out(self) -> bool:
        return self.opted_out_at is not None


@dataclass(frozen=True)
class HeldMessage:
    id: int
    phone: str
    channel: str
    source: str
    body: str
    media_urls: list[str]
    options: list[dict[str, str]]
    status: str
    template: str | None
    template_status: str | None
    held_at: datetime
    delivered_at: datetime | None
    delivered_after: str | None
    expires_at: datetime | None = None


@dataclass(frozen=True)
class OutboundRecord:
    id: int
    sid: str | None
    to_phone: str
    channel: str
    transport: str
    body: str
    media_urls: list[str]
    content_sid: str | None
    status: str
    error_code: str | None
    attempts: int
    idempotency_key: str | None = None


class MessagingStore:
    """Contacts and outbound messages on the assistant's database."""

    def __init__(self, store: SqlStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    def drop_schema(self) -> None:
        with self._store.connect() as conn:
            metadata.drop_all(conn)

    def _upsert_contact(self, conn: sa.engine.Connection, phone: str, values: dict) -> None:
        """Insert or update one contact atomically, also when replicas race on a new number."""
        upsert(conn, contacts, {"phone": phone}, values)

    def contact(self, phone: str) -> Contact | None:
        with self._store.connect() as conn:
            row = conn.execute(sa.select(contacts).where(contacts.c.phone == phone)).first()
        if row is None:
            return None
        return Contact(
            phone=row.phone,
            last_channel=row.last_channel,
            whatsapp_last_inbound_at=from_db_time(row.whatsapp_last_inbound_at),
            whatsapp_address=row.whatsapp_address,
            opted_out_at=from_db_time(row.opted_out_at),
        )

    def record_inbound(
        self, phone: str, channel: Channel, address: str | None = None, at: datetime | None = None
    ) -> None:
        moment = to_db_time(at or self._clock.now())
        values = {"last_channel": channel.value, "last_inbound_at": moment}
        if channel is Channel.WHATSAPP:
            values["whatsapp_last_inbound_at"] = moment
            if address:
                values["whatsapp_address"] = address
        with self._store.connect() as conn:
            self._upsert_contact(conn, phone, values)

    def opt_out(self, phone: str, channel: Channel, at: datetime | None = None) -> None:
        values = {"opted_out_at": to_db_time(at or self._clock.now()), "opted_out_channel": channel.value}
        with self._store.connect() as conn:
            self._upsert_contact(conn, phone, values)

    def opt_in(self, phone: str, at: datetime | None = None) -> None:
        values = {
            "opted_out_at": None,
            "opted_out_channel": None,
            "opted_in_at": to_db_time(at or self._clock.now()),
        }
        with self._store.connect() as conn:
            self._upsert_contact(conn, phone, values)

    def add_outbound(
        self,
        to_phone: str,
        channel: Channel,
        transport: str,
        body: str,
        media_urls: list[str],
        content_sid: str | None,
        status: str,
        idempotency_key: str | None = None,
    ) -> int | None:
        """Record a message about to be sent. Its body is stored with card data masked: an
        agent may type a card number in a console reply, and this table is kept and read.
        None when `idempotency_key` is already recorded: that message was sent (or tried) before."""
        now = to_db_time(self._clock.now())
        try:
            with self._store.connect() as conn:
                result = conn.execute(
                    outbound_messages.insert().values(
                        idempotency_key=idempotency_key,
                        to_phone=to_phone,
                        channel=channel.value,
                        transport=transport,
                        body=mask_sensitive(body),
                        media_urls=json.dumps(media_urls) if media_urls else None,
                        content_sid=content_sid,
                        status=status,
                        attempts=0,
                        created_at=now,
                        updated_at=now,
                    )
                )
            return int(result.inserted_primary_key[0])
        except sa.exc.IntegrityError:
            if idempotency_key is None:
                raise
            return None

    def update_outbound(self, record_id: int, **values: object) -> None:
        with self._store.connect() as conn:
            conn.execute(
                outbound_messages.update()
                .where(outbound_messages.c.id == record_id)
                .values(updated_at=to_db_time(self._clock.now()), **values)
            )

    def record_status(self, sid: str, status: str, error_code: str | None = None) -> bool:
        """Apply a delivery status callback; a late 'sent' never overwrites 'delivered'."""
        with self._store.connect() as conn:
            row = conn.execute(
                sa.select(outbound_messages.c.id, outbound_messages.c.status).where(
                    outbound_messages.c.sid == sid
                )
            ).first()
            if row is None:
                return False
            current, new = row.status, status.lower()
            both_in_flow = current in STATUS_ORDER and new in STATUS_ORDER
            if both_in_flow and STATUS_ORDER.index(new) < STATUS_ORDER.index(current):
                return True
            values: dict[str, object] = {"status": new, "updated_at": to_db_time(self._clock.now())}
            if error_code:
                values["error_code"] = error_code
            conn.execute(outbound_messages.update().where(outbound_messages.c.id == row.id).values(**values))
        return True

    def outbound_by_key(self, idempotency_key: str) -> OutboundRecord | None:
        query = sa.select(outbound_messages).where(outbound_messages.c.idempotency_key == idempotency_key)
        with self._store.connect() as conn:
            row = conn.execute(query).first()
        return None if row is None else _record(row)

    def known_sids(self, sids: list[str]) -> set[str]:
        """Which of these Twilio sids are recorded on a message already."""
        if not sids:
            return set()
        query = sa.select(outbound_messages.c.sid).where(outbound_messages.c.sid.in_(sids))
        with self._store.connect() as conn:
            return {row.sid for row in conn.execute(query)}

    def last_sid_before(self, to_phone: str, record_id: int) -> str | None:
        """The Twilio sid of the latest message to `to_phone` recorded before `record_id`."""
        query = (
            sa.select(outbound_messages.c.sid)
            .where(outbound_messages.c.to_phone == to_phone, outbound_messages.c.id < record_id)
            .where(outbound_messages.c.sid.is_not(None))
            .order_by(outbound_messages.c.id.desc())
            .limit(1)
        )
        with self._store.connect() as conn:
            return conn.execute(query).scalar()

    def content_sid(self, shape_key: str) -> str | None:
        """The ContentSid created for this shape of options, if any."""
        query = sa.select(whatsapp_contents.c.content_sid).where(whatsapp_contents.c.shape_key == shape_key)
        with self._store.connect() as conn:
            return conn.execute(query).scalar()

    def save_content(self, shape_key: str, kind: str, content_sid: str) -> str:
        """Keep `content_sid` for the shape unless another process kept one first; the SID every
        process uses from now on (the first one stored) is returned."""
        try:
            with self._store.connect() as conn:
                conn.execute(
                    whatsapp_contents.insert().values(
                        shape_key=shape_key,
                        content_sid=content_sid,
                        kind=kind,
                        created_at=to_db_time(self._clock.now()),
                    )
                )
        except sa.exc.IntegrityError:
            pass  # another replica stored the same shape a moment before
        stored = self.content_sid(shape_key)
        assert stored is not None
        return stored

    def forget_content(self, shape_key: str, content_sid: str) -> None:
        """Forget a ContentSid Twilio no longer has (unless another one replaced it already)."""
        with self._store.connect() as conn:
            conn.execute(
                whatsapp_contents.delete().where(
                    whatsapp_contents.c.shape_key == shape_key, whatsapp_contents.c.content_sid == content_sid
                )
            )

    def hold(
        self,
        phone: str,
        channel: Channel,
        source: str,
        body: str,
        media_urls: list[str],
        options: list[dict[str, str]],
        source_key: str | None = None,
        expires_at: datetime | None = None,
    ) -> int | None:
        """Keep a message the window held back (masked, as every stored message); its id, or None
        when `source_key` was held before (a replay of the same reply)."""
        try:
            with self._store.connect() as conn:
                result = conn.execute(
                    held_messages.insert().values(
                        phone=phone,
                        channel=channel.value,
                        source=source,
                        source_key=source_key,
                        body=mask_sensitive(body),
                        media_urls=json.dumps(media_urls) if media_urls else None,
                        options=json.dumps(options, ensure_ascii=False) if options else None,
                        status="held",
                        held_at=to_db_time(self._clock.now()),
                        expires_at=to_db_time(expires_at),
                    )
                )
            return int(result.inserted_primary_key[0])
        except sa.exc.IntegrityError:
            if source_key is None:
                raise
            return None

    def held_by_key(self, source_key: str) -> HeldMessage | None:
        query = sa.select(held_messages).where(held_messages.c.source_key == source_key)
        with self._store.connect() as conn:
            row = conn.execute(query).first()
        return None if row is None else _held(row)

    def note_template(self, held_id: int, template: str | None, template_status: str) -> None:
        with self._store.connect() as conn:
            conn.execute(
                held_messages.update()
                .where(held_messages.c.id == held_id)
                .values(template=template, template_status=template_status)
            )

    def held(self, phone: str | None = None, status: str | None = "held") -> list[HeldMessage]:
        """Held messages, oldest first: `phone`'s, in `status` (None: any)."""
        query = sa.select(held_messages)
        if phone is not None:
            query = query.where(held_messages.c.phone == phone)
        if status is not None:
            query = query.where(held_messages.c.status == status)
        with self._store.connect() as conn:
            rows = conn.execute(query.order_by(held_messages.c.id)).all()
        return [_held(row) for row in rows]

    def finish_held(self, held_id: int, status: str, after_sid: str | None) -> bool:
        """Record a held message's fate once: False when another delivery recorded it first."""
        with self._store.connect() as conn:
            result = conn.execute(
                held_messages.update()
                .where(held_messages.c.id == held_id, held_messages.c.status == "held")
                .values(status=status, delivered_at=to_db_time(self._clock.now()), delivered_after=after_sid)
            )
        return result.rowcount == 1

    def outbound(self, to_phone: str | None = None, after_id: int = 0) -> list[OutboundRecord]:
        query = sa.select(outbound_messages).where(outbound_messages.c.id > after_id)
        if to_phone:
            query = query.where(outbound_messages.c.to_phone == to_phone)
        with self._store.connect() as conn:
            rows = conn.execute(query.order_by(outbound_messages.c.id)).all()
        return [_record(row) for row in rows]


def _held(row: sa.engine.Row) -> HeldMessage:
    return HeldMessage(
        id=row.id,
        phone=row.phone,
        channel=row.channel,
        source=row.source,
        body=row.body,
        media_urls=json.loads(row.media_urls) if row.media_urls else [],
        options=json.loads(row.options) if row.options else [],
        status=row.status,
        template=row.template,
        template_status=row.template_status,
        held_at=from_db_time(row.held_at),
        delivered_at=from_db_time(row.delivered_at),
        delivered_after=row.delivered_after,
        expires_at=from_db_time(row.expires_at),
    )


def _record(row: sa.engine.Row) -> OutboundRecord:
    return OutboundRecord(
        id=row.id,
        sid=row.sid,
        to_phone=row.to_phone,
        channel=row.channel,
        transport=row.transport,
        body=row.body,
        media_urls=json.loads(row.media_urls) if row.media_urls else [],
        content_sid=row.content_sid,
        status=row.status,
        error_code=row.error_code,
        attempts=row.attempts,
        idempotency_key=row.idempotency_key,
    )
