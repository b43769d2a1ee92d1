"""CRM, ERP and case book over SQLAlchemy: SQLite for the embedded demo, PostgreSQL in production."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from time import monotonic
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine, make_url

from bot.adapters.base import BackendUnavailable, CaseBook, Crm, Erp, OtpSecrets
from bot.adapters.invoice_pdf import render_invoice_pdf
from bot.adapters.payment_links import PaymentLinkSigner
from bot.records import (
    CancelOutcome,
    Case,
    CaseChange,
    CaseEvent,
    CaseKind,
    ContactChange,
    ContactDetails,
    ContactField,
    Customer,
    DeliveryWindow,
    DeliveryZone,
    Invoice,
    InvoiceStatus,
    Order,
    OrderLine,
    OrderState,
    Payment,
    PaymentLink,
    RescheduleOutcome,
    ScheduleChange,
    WindowSlot,
)

metadata = sa.MetaData()

customers = sa.Table(
    "customers",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("phone", sa.String(20), nullable=False, unique=True),
    sa.Column("country", sa.String(2), nullable=False),
    sa.Column("timezone", sa.String(64)),
    sa.Column("email", sa.String(254)),
)

# Times are stored as naive UTC: SQLite keeps no offsets, and one rule for both engines
# is simpler than two.
orders = sa.Table(
    "orders",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("customer_id", sa.ForeignKey("customers.id"), nullable=False, index=True),
    sa.Column("state", sa.String(32), nullable=False),
    sa.Column("items", sa.String(500), nullable=False),
    sa.Column("placed_at", sa.DateTime, nullable=False),
    sa.Column("carrier", sa.String(100)),
    sa.Column("tracking_url", sa.String(500)),
    sa.Column("window_start", sa.DateTime),
    sa.Column("window_end", sa.DateTime),
    sa.Column("delivered_at", sa.DateTime),
    sa.Column("cancelled_at", sa.DateTime),
)

# The products of an order with the ERP's category of each (migration 0021): what the return
# rules read. An order without lines is one product, its `items`, of unknown category.
order_lines = sa.Table(
    "order_lines",
    metadata,
    sa.Column("order_id", sa.ForeignKey("orders.id"), primary_key=True),
    sa.Column("position", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("category", sa.String(64)),
)

# The assistant's own table (not the CRM's): requests a person of the team follows up.
cases = sa.Table(
    "cases",
    metadata,
    sa.Column("id", sa.String(16), primary_key=True),  # management ID, GES-XXXXXXXX
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("conversation_id", sa.String(255), nullable=False),
    sa.Column("customer_phone", sa.String(20)),
    sa.Column("details", sa.JSON, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("opened_at", sa.DateTime, nullable=False),
    # Worked by agents in the console (migration 0015).
    sa.Column("assigned_to", sa.String(64)),
    sa.Column("updated_at", sa.DateTime),
    sa.Column("rating", sa.Integer),
    sa.Column("rating_requested_at", sa.DateTime),
    sa.Column("rated_at", sa.DateTime),
    sa.Index("ix_cases_conversation_kind", "conversation_id", "kind"),
    sa.Index("ix_cases_status_opened", "status", "opened_at"),
)

# Every change to a case, appended in the transaction that makes it: who, what, when.
case_events = sa.Table(
    "case_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("case_id", sa.ForeignKey("cases.id"), nullable=False, index=True),
    sa.Column("at", sa.DateTime, nullable=False),
    sa.Column("actor", sa.String(64), nullable=False),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("detail", sa.Text, nullable=False),
    sa.Column("customer_visible", sa.Boolean, nullable=False),
)

# Bookkeeping of the demo loader (which fixture, anchored on which day).
demo_meta = sa.Table(
    "demo_meta",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(500), nullable=False),
)


def lease_due_rows(
    conn: Connection,
    table: sa.Table,
    *,
    due_column: sa.Column,
    now: datetime,
    lease: timedelta,
    limit: int,
    order_by: tuple[sa.Column, ...],
) -> list[sa.engine.Row]:
    """Lease up to `limit` rows of `table` that are `pending` and due (`due_column` <= now) and
    not leased to another worker (`locked_until` empty or past), in `order_by` order: each row is
    taken by a conditional UPDATE, so with several workers at once every row goes to one of them;
    a worker that dies leaves its lease to expire and another takes over. The leased rows."""
    db_now = to_db_time(now)
    free = sa.or_(table.c.locked_until.is_(None), table.c.locked_until < db_now)
    due = (
        sa.select(table.c.id)
        .where(table.c.status == "pending", due_column <= db_now, free)
        .order_by(*order_by)
        .limit(limit)
    )
    claimed = []
    for row_id in conn.execute(due).scalars().all():
        taken = conn.execute(
            table.update()
            .where(table.c.id == row_id, table.c.status == "pending", free)
            .values(locked_until=to_db_time(now + lease))
        )
        if taken.rowcount == 1:
            claimed.append(row_id)
    return list(conn.execute(sa.select(table).where(table.c.id.in_(claimed))).all())


def to_db_time(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        raise ValueError("refusing a naive datetime: give it a time zone")
    return moment.astimezone(timezone.utc).replace(tzinfo=None)


def upsert(conn: Connection, table: sa.Table, keys: dict[str, Any], values: dict[str, Any]) -> None:
    """Insert the row of `keys` with `values`, or update its `values`: atomic, also when replicas
    race on a new key (PostgreSQL's and SQLite's ON CONFLICT DO UPDATE)."""
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    statement = insert(table).values(**keys, **values)
    conn.execute(statement.on_conflict_do_update(index_elements=list(keys), set_=values))


def from_db_time(stored: datetime | None) -> datetime | None:
    return None if stored is None else stored.replace(tzinfo=timezone.utc)


def is_sqlite_file(url: str | sa.engine.URL) -> bool:
    parsed = make_url(url)
    return parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:")


def create_engine(url: str | sa.engine.URL, **options: Any) -> Engine:
    """An engine with a connection pool, also for the embedded SQLite file.

    SQLAlchemy 1.4 opens a new connection for every transaction on a SQLite file (NullPool):
    under the benchmark's load a quarter of the Rasa process's busy time went to opening
    connections and setting their pragmas. A pool of open connections, as SQLAlchemy 2.0 does
    by default, avoids that; with WAL, readers and the writer do not wait for each other.
    """
    if is_sqlite_file(url):
        Path(make_url(url).database).parent.mkdir(parents=True, exist_ok=True)
        options = {
            "poolclass": sa.pool.QueuePool,
            "pool_size": 5,
            "max_overflow": 10,
            "connect_args": {"check_same_thread": False},  # pooled connections move between threads
            **options,
        }
    engine = sa.create_engine(url, future=True, **options)
    tune_sqlite(engine)
    if not is_sqlite_file(url) and "pool_pre_ping" not in options:
        ping_idle_connections(engine)
    return engine


# A pooled connection back in use within this many seconds is not pinged first.
PING_AFTER_IDLE_S = 1.0


def ping_idle_connections(engine: Engine, idle_s: float = PING_AFTER_IDLE_S) -> None:
    """Check a pooled connection before use only when it sat idle for `idle_s` or more.

    SQLAlchemy's `pool_pre_ping` pings on every checkout: a round trip to the server before every
    transaction, about ten per inbound message on the Twilio channel's path (the journal, the
    contact, the sender), each a wait on a busy machine. A connection used a moment ago is as
    alive as a ping would show; one that sat in the pool (a database restarted overnight, a
    proxy's idle timeout) is pinged as before, and replaced when the ping fails (raising
    DisconnectionError in a checkout listener makes the pool connect afresh). A database that goes
    away between two uses less than `idle_s` apart fails that one transaction, as it could between
    a ping and the query: `SqlStore.connect` turns it into BackendUnavailable (the webhook answers
    503 and Twilio delivers again; the journal's worker retries), and SQLAlchemy drops the pool's
    other connections on that disconnect.
    """

    @sa.event.listens_for(engine, "connect")
    def _connected(_dbapi_connection, record) -> None:
        record.info["idle_since"] = monotonic()

    @sa.event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_connection, record) -> None:
        if record is not None:
            record.info["idle_since"] = monotonic()

    @sa.event.listens_for(engine, "checkout")
    def _checked_out(dbapi_connection, record, _proxy) -> None:
        if monotonic() - record.info.get("idle_since", 0.0) < idle_s:
            return
        if not engine.dialect.do_ping(dbapi_connection):
            raise sa.exc.DisconnectionError("the pooled connection was closed while idle")


def tune_sqlite(engine: Engine) -> None:
    """WAL and relaxed syncing for the embedded SQLite file: readers stop waiting on the writer,
    and a commit no longer waits for the disk (a crash can lose the last commits, not corrupt)."""
    if engine.dialect.name != "sqlite" or engine.url.database in (None, "", ":memory:"):
        return

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.close()

    engine.dispose()  # connections opened before this point reconnect with the settings


class SqlStore:
    """One database connection pool shared by the SQL CRM and ERP."""

    def __init__(self, url: str) -> None:
        self.engine: Engine = create_engine(url)

    def drop_schema(self) -> None:
        with self.connect() as conn:
            metadata.drop_all(conn)

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        """A transaction; a database that cannot be reached becomes `BackendUnavailable`."""
        try:
            with self.engine.begin() as conn:
                yield conn
        except (sa.exc.OperationalError, sa.exc.InterfaceError) as error:
            raise BackendUnavailable(f"database unavailable: {error.orig!r}") from error

    def answers(self) -> bool:
        """Whether the database answers a trivial query now: what readiness checks ask."""
        try:
            with self.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except BackendUnavailable:
            return False
        return True

    def dispose(self) -> None:
        self.engine.dispose()


# --- payments, contact data and one-time codes (issue 6) ------------------------------------
# The ERP's invoices, payments, issued payment links and promises to pay; the CRM's contact
# details and their audit; and the assistant's own per-customer one-time-code secrets.


class Money(sa.types.TypeDecorator):
    """Exact amounts: NUMERIC(14, 2) on PostgreSQL; text on SQLite, which has no decimal type
    and would round-trip amounts through binary floating point."""

    impl = sa.Numeric(14, 2)
    cache_ok = True

    def load_dialect_impl(self, dialect: sa.engine.Dialect) -> sa.types.TypeEngine:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(sa.String(32))
        return dialect.type_descriptor(sa.Numeric(14, 2))

    def process_bind_param(self, value: object, dialect: sa.engine.Dialect) -> object:
        if value is None:
            return None
        amount = Decimal(str(value)).quantize(Decimal("0.01"))
        return str(amount) if dialect.name == "sqlite" else amount

    def process_result_value(self, value: object, dialect: sa.engine.Dialect) -> Decimal | None:
        return None if value is None else Decimal(str(value)).quantize(Decimal("0.01"))


customer_details = sa.Table(
    "customer_details",
    metadata,
    sa.Column("customer_id", sa.ForeignKey("customers.id"), primary_key=True),
    sa.Column("document_id", sa.String(32)),
    sa.Column("address", sa.String(300)),
    sa.Column("district", sa.String(100)),
)

invoices = sa.Table(
    "invoices",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("customer_id", sa.ForeignKey("customers.id"), nullable=False, index=True),
    sa.Column("order_id", sa.String(64)),
    sa.Column("amount", Money, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("issued_on", sa.Date, nullable=False),
    sa.Column("due_on", sa.Date, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
)

payments = sa.Table(
    "payments",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("customer_id", sa.ForeignKey("customers.id"), nullable=False, index=True),
    sa.Column("invoice_id", sa.String(64)),
    sa.Column("amount", Money, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("paid_at", sa.DateTime, nullable=False),
    sa.Column("method", sa.String(64), nullable=False),
)

payment_links = sa.Table(
    "payment_links",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("invoice_id", sa.String(64), nullable=False, index=True),
    sa.Column("amount", Money, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("url", sa.String(1000), nullable=False),
    sa.Column("issued_at", sa.DateTime, nullable=False),
    sa.Column("expires_at", sa.DateTime, nullable=False),
)

payment_promises = sa.Table(
    "payment_promises",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("customer_id", sa.ForeignKey("customers.id"), nullable=False, index=True),
    sa.Column("invoice_id", sa.String(64)),
    sa.Column("promised_for", sa.Date, nullable=False),
    sa.Column("channel", sa.String(32), nullable=False),
    sa.Column("recorded_at", sa.DateTime, nullable=False),
)

contact_changes = sa.Table(
    "contact_changes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("customer_id", sa.ForeignKey("customers.id"), nullable=False, index=True),
    sa.Column("field", sa.String(16), nullable=False),
    sa.Column("old_value", sa.String(400)),
    sa.Column("new_value", sa.String(400), nullable=False),
    sa.Column("channel", sa.String(32), nullable=False),
    sa.Column("verified_how", sa.String(64), nullable=False),
    sa.Column("changed_at", sa.DateTime, nullable=False),
)

# The assistant's own table: each secret is Fernet-encrypted with OTP_SECRET_KEY.
otp_secrets = sa.Table(
    "otp_secrets",
    metadata,
    sa.Column("customer_id", sa.String(64), primary_key=True),
    sa.Column("secret", sa.LargeBinary, nullable=False),
    sa.Column("counter", sa.Integer, nullable=False),
)


def _invoice(row: sa.engine.Row) -> Invoice:
    return Invoice(
        id=row.id,
        customer_id=row.customer_id,
        amount=Decimal(row.amount).quantize(Decimal("0.01")),
        currency=row.currency,
        issued_on=row.issued_on,
        due_on=row.due_on,
        status=InvoiceStatus(row.status),
        order_id=row.order_id,
    )


def _payment(row: sa.engine.Row) -> Payment:
    return Payment(
        id=row.id,
        customer_id=row.customer_id,
        invoice_id=row.invoice_id,
        amount=Decimal(row.amount).quantize(Decimal("0.01")),
        currency=row.currency,
        paid_at=from_db_time(row.paid_at),
        method=row.method,
    )


class SqlBilling:
    """The payments half of SqlErp (kept apart so the ERP's order code stays as it was)."""

    _store: SqlStore
    _link_signer: PaymentLinkSigner | None

    def invoices_of(self, customer_id: str) -> list[Invoice]:
        with self._store.connect() as conn:
            return invoices_of_in(conn, customer_id)

    def open_invoices(self) -> list[Invoice]:
        with self._store.connect() as conn:
            return open_invoices_in(conn)

    def payments_of(self, customer_id: str) -> list[Payment]:
        with self._store.connect() as conn:
            return payments_of_in(conn, customer_id)

    def payment_link(self, invoice: Invoice, now: datetime) -> PaymentLink:
        with self._store.connect() as conn:
            return issue_payment_link_in(conn, self._link_signer, invoice, now)

    def invoice_pdf(self, invoice_id: str) -> bytes | None:
        with self._store.connect() as conn:
            return invoice_pdf_in(conn, invoice_id)

    def record_promise(
        self,
        customer_id: str,
        invoice_id: str | None,
        promised_for: date,
        channel: str,
        made_at: datetime,
    ) -> None:
        with self._store.connect() as conn:
            record_promise_in(conn, customer_id, invoice_id, promised_for, channel, made_at)


class SqlContactBook:
    """The contact-data half of SqlCrm."""

    _store: SqlStore

    def contact_details(self, customer_id: str) -> ContactDetails | None:
        with self._store.connect() as conn:
            return contact_details_in(conn, customer_id)

    def update_contact(self, change: ContactChange, district: str | None = None) -> None:
        with self._store.connect() as conn:
            update_contact_in(conn, change, district)

    def contact_changes(self, customer_id: str) -> list[ContactChange]:
        with self._store.connect() as conn:
            return contact_changes_in(conn, customer_id)


# The same reads and writes inside a caller's transaction: the SQL CRM/ERP open one per call;
# the reference server (reference/operations.py) runs them in its own, with the
# write's Idempotency-Key, so both answer alike.


def open_invoices_in(conn: Connection) -> list[Invoice]:
    query = (
        sa.select(invoices)
        .where(invoices.c.status == InvoiceStatus.OPEN.value)
        .order_by(invoices.c.due_on, invoices.c.id)
    )
    return [_invoice(row) for row in conn.execute(query)]


def orders_in_progress_in(conn: Connection) -> list[Order]:
    open_states = [state.value for state in OrderState if state.is_open]
    query = sa.select(orders).where(orders.c.state.in_(open_states)).order_by(orders.c.placed_at, orders.c.id)
    return orders_from_rows(conn, conn.execute(query).all())


def orders_from_rows(conn: Connection, rows: list[sa.engine.Row]) -> list[Order]:
    """`orders` rows as records with their lines (one more query for all of them)."""
    lines: dict[str, list[OrderLine]] = {}
    if rows:
        query = (
            sa.select(order_lines)
            .where(order_lines.c.order_id.in_([row.id for row in rows]))
            .order_by(order_lines.c.order_id, order_lines.c.position)
        )
        for line in conn.execute(query):
            lines.setdefault(line.order_id, []).append(OrderLine(line.name, line.category))
    return [order_from_row(row, tuple(lines.get(row.id, ()))) for row in rows]


def order_in(conn: Connection, order_id: str) -> Order | None:
    row = conn.execute(sa.select(orders).where(orders.c.id == order_id)).first()
    return orders_from_rows(conn, [row])[0] if row else None


def orders_of_in(conn: Connection, customer_id: str) -> list[Order]:
    query = (
        sa.select(orders)
        .where(orders.c.customer_id == customer_id)
        .order_by(orders.c.placed_at.desc(), orders.c.id.desc())
    )
    return orders_from_rows(conn, conn.execute(query).all())


def invoices_of_in(conn: Connection, customer_id: str) -> list[Invoice]:
    query = (
        sa.select(invoices)
        .where(invoices.c.customer_id == customer_id)
        .order_by(invoices.c.due_on, invoices.c.id)
    )
    return [_invoice(row) for row in conn.execute(query)]


def payments_of_in(conn: Connection, customer_id: str) -> list[Payment]:
    query = (
        sa.select(payments)
        .where(payments.c.customer_id == customer_id)
        .order_by(payments.c.paid_at.desc(), payments.c.id)
    )
    return [_payment(row) for row in conn.execute(query)]


def invoice_in(conn: Connection, invoice_id: str) -> Invoice | None:
    row = conn.execute(sa.select(invoices).where(invoices.c.id == invoice_id)).first()
    return _invoice(row) if row else None


def invoice_pdf_in(conn: Connection, invoice_id: str, *, compress: bool = True) -> bytes | None:
    """The invoice rendered from its own row and its customer's name (None: no such invoice)."""
    invoice = invoice_in(conn, invoice_id)
    if invoice is None:
        return None
    row = conn.execute(sa.select(customers).where(customers.c.id == invoice.customer_id)).first()
    return render_invoice_pdf(invoice, customer_from_row(row) if row else None, compress=compress)


def issue_payment_link_in(
    conn: Connection, signer: PaymentLinkSigner | None, invoice: Invoice, now: datetime
) -> PaymentLink:
    if signer is None:
        raise BackendUnavailable("payment links need PAYMENT_LINK_SECRET")
    link = signer.sign(invoice, now)
    conn.execute(
        payment_links.insert(),
        {
            "invoice_id": link.invoice_id,
            "amount": link.amount,
            "currency": link.currency,
            "url": link.url,
            "issued_at": to_db_time(now),
            "expires_at": to_db_time(link.expires_at),
        },
    )
    return link


def record_promise_in(
    conn: Connection,
    customer_id: str,
    invoice_id: str | None,
    promised_for: date,
    channel: str,
    recorded_at: datetime,
) -> int:
    """Record the promise; returns its id."""
    row = {
        "customer_id": customer_id,
        "invoice_id": invoice_id,
        "promised_for": promised_for,
        "channel": channel,
        "recorded_at": to_db_time(recorded_at),
    }
    return conn.execute(payment_promises.insert(), row).inserted_primary_key[0]


def contact_details_in(conn: Connection, customer_id: str) -> ContactDetails | None:
    query = (
        sa.select(customers.c.id, customers.c.email, customer_details)
        .select_from(customers.outerjoin(customer_details, customer_details.c.customer_id == customers.c.id))
        .where(customers.c.id == customer_id)
    )
    row = conn.execute(query).first()
    if row is None:
        return None
    return ContactDetails(
        customer_id=row.id,
        email=row.email,
        address=row.address,
        district=row.district,
        document_id=row.document_id,
    )


def update_contact_in(conn: Connection, change: ContactChange, district: str | None) -> None:
    if change.field is ContactField.EMAIL:
        conn.execute(customers.update().where(customers.c.id == change.customer_id).values(email=change.new))
    else:
        values = {"address": change.new, "district": district}
        updated = conn.execute(
            customer_details.update()
            .where(customer_details.c.customer_id == change.customer_id)
            .values(**values)
        )
        if updated.rowcount == 0:
            conn.execute(customer_details.insert(), {"customer_id": change.customer_id, **values})
    conn.execute(
        contact_changes.insert(),
        {
            "customer_id": change.customer_id,
            "field": change.field.value,
            "old_value": change.old,
            "new_value": change.new,
            "channel": change.channel,
            "verified_how": change.verified_how,
            "changed_at": to_db_time(change.changed_at),
        },
    )


def contact_changes_in(conn: Connection, customer_id: str) -> list[ContactChange]:
    query = (
        sa.select(contact_changes)
        .where(contact_changes.c.customer_id == customer_id)
        .order_by(contact_changes.c.changed_at.desc(), contact_changes.c.id.desc())
    )
    return [
        ContactChange(
            customer_id=row.customer_id,
            field=ContactField(row.field),
            old=row.old_value,
            new=row.new_value,
            channel=row.channel,
            verified_how=row.verified_how,
            changed_at=from_db_time(row.changed_at),
        )
        for row in conn.execute(query)
    ]


class SqlOtpSecrets(OtpSecrets):
    """Per-customer code secrets in `otp_secrets` (a table of the migrations, like every other)."""

    def __init__(self, store: SqlStore) -> None:
        self._store = store

    def secret_of(self, customer_id: str) -> bytes | None:
        with self._store.connect() as conn:
            row = conn.execute(
                sa.select(otp_secrets.c.secret).where(otp_secrets.c.customer_id == customer_id)
            ).first()
        return bytes(row.secret) if row else None

    def next_counter(self, customer_id: str, new_secret: bytes) -> tuple[bytes, int]:
        for _ in range(2):
            try:
                with self._store.connect() as conn:
                    # An UPDATE that increments takes the row lock, so two sends never share a counter.
                    updated = conn.execute(
                        otp_secrets.update()
                        .where(otp_secrets.c.customer_id == customer_id)
                        .values(counter=otp_secrets.c.counter + 1)
                    )
                    if updated.rowcount == 0:
                        conn.execute(
                            otp_secrets.insert(),
                            {"customer_id": customer_id, "secret": new_secret, "counter": 1},
                        )
                        return new_secret, 1
                    row = conn.execute(
                        sa.select(otp_secrets.c.secret, otp_secrets.c.counter).where(
                            otp_secrets.c.customer_id == customer_id
                        )
                    ).one()
                    return bytes(row.secret), row.counter
            except sa.exc.IntegrityError:
                continue  # another replica inserted the row first: increment it instead
        raise BackendUnavailable("could not reserve a one-time-code counter")


# --- end of issue 6 block ---


def customer_from_row(row: sa.engine.Row) -> Customer:
    """A `customers` row as the record (also read by the reference server, reference/)."""
    return Customer(
        id=row.id,
        name=row.name,
        phone=row.phone,
        country=row.country,
        timezone=row.timezone,
        email=row.email,
    )


def order_from_row(row: sa.engine.Row, lines: tuple[OrderLine, ...] = ()) -> Order:
    window = None
    if row.window_start is not None and row.window_end is not None:
        window = DeliveryWindow(from_db_time(row.window_start), from_db_time(row.window_end))
    return Order(
        id=row.id,
        customer_id=row.customer_id,
        state=OrderState(row.state),
        items=row.items,
        placed_at=from_db_time(row.placed_at),
        carrier=row.carrier,
        tracking_url=row.tracking_url,
        window=window,
        delivered_at=from_db_time(row.delivered_at),
        cancelled_at=from_db_time(row.cancelled_at),
        lines=lines,
    )


class SqlCrm(SqlContactBook, Crm):
    def __init__(self, store: SqlStore) -> None:
        self._store = store

    def customer_by_phone(self, phone: str) -> Customer | None:
        with self._store.connect() as conn:
            row = conn.execute(sa.select(customers).where(customers.c.phone == phone)).first()
        return customer_from_row(row) if row else None

    def customer_by_id(self, customer_id: str) -> Customer | None:
        with self._store.connect() as conn:
            row = conn.execute(sa.select(customers).where(customers.c.id == customer_id)).first()
        return customer_from_row(row) if row else None


class SqlErp(SqlBilling, Erp):
    def __init__(self, store: SqlStore, link_signer: PaymentLinkSigner | None = None) -> None:
        self._store = store
        self._link_signer = link_signer  # payments (issue 6): signs the links this ERP issues

    def order(self, order_id: str) -> Order | None:
        with self._store.connect() as conn:
            return order_in(conn, order_id)

    def orders_of(self, customer_id: str) -> list[Order]:
        with self._store.connect() as conn:
            return orders_of_in(conn, customer_id)

    def orders_in_progress(self) -> list[Order]:
        with self._store.connect() as conn:
            return orders_in_progress_in(conn)

    # --- reschedule: zones, windows with capacity, closures and the change history ---

    def delivery_zone_of(self, order_id: str) -> DeliveryZone | None:
        with self._store.connect() as conn:
            return zone_of_order_in(conn, order_id)

    def window_slots(self, zone_id: str, first_day: date, last_day: date) -> list[WindowSlot]:
        with self._store.connect() as conn:
            return window_slots_in(conn, zone_id, first_day, last_day)

    def closed_days(self, zone_id: str, first_day: date, last_day: date) -> dict[date, str]:
        with self._store.connect() as conn:
            return closed_days_in(conn, zone_id, first_day, last_day)

    def reschedule(self, change: ScheduleChange) -> RescheduleOutcome:
        try:
            with self._store.connect() as conn:
                outcome = reschedule_in(conn, change)
                if outcome is not RescheduleOutcome.DONE:
                    raise _Undo(outcome)  # leaving the block by an exception rolls it all back
        except _Undo as undo:
            return undo.outcome
        except sa.exc.IntegrityError:
            return RescheduleOutcome.ID_TAKEN
        return RescheduleOutcome.DONE

    def schedule_history(self, order_id: str) -> list[ScheduleChange]:
        with self._store.connect() as conn:
            return schedule_history_in(conn, order_id)

    def cancel_order(self, order_id: str, customer_id: str, cancelled_at: datetime) -> CancelOutcome:
        with self._store.connect() as conn:
            return cancel_order_in(conn, order_id, customer_id, cancelled_at)


def case_from_row(row: sa.engine.Row) -> Case:
    return Case(
        id=row.id,
        kind=CaseKind(row.kind),
        conversation_id=row.conversation_id,
        customer_phone=row.customer_phone,
        details=dict(row.details or {}),
        opened_at=from_db_time(row.opened_at),
        status=row.status,
        assigned_to=row.assigned_to,
        rating=row.rating,
        rating_requested_at=from_db_time(row.rating_requested_at) if row.rating_requested_at else None,
    )


def case_event_row(event: CaseEvent) -> dict[str, Any]:
    return {
        "case_id": event.case_id,
        "at": to_db_time(event.at),
        "actor": event.actor,
        "action": event.action,
        "detail": event.detail,
        "customer_visible": event.customer_visible,
    }


class SqlCaseBook(CaseBook):
    """Cases in the `cases` table (a table of the migrations: `make migrate`, or `make run`)."""

    def __init__(self, store: SqlStore) -> None:
        self._store = store

    def add(self, case: Case) -> bool:
        row = {
            "id": case.id,
            "kind": case.kind.value,
            "conversation_id": case.conversation_id,
            "customer_phone": case.customer_phone,
            "details": case.details,
            "status": case.status,
            "opened_at": to_db_time(case.opened_at),
        }
        try:
            with self._store.connect() as conn:
                conn.execute(cases.insert(), row)
        except sa.exc.IntegrityError:
            return False
        return True

    def case(self, case_id: str) -> Case | None:
        with self._store.connect() as conn:
            row = conn.execute(sa.select(cases).where(cases.c.id == case_id)).first()
        return case_from_row(row) if row else None

    def recent_open_cases(self, conversation_id: str, kind: CaseKind, since: datetime) -> list[Case]:
        query = (
            sa.select(cases)
            .where(
                cases.c.conversation_id == conversation_id,
                cases.c.kind == kind.value,
                cases.c.status == "open",
                cases.c.opened_at >= to_db_time(since),
            )
            .order_by(cases.c.opened_at.desc())
        )
        with self._store.connect() as conn:
            return [case_from_row(row) for row in conn.execute(query)]

    # --- agents working cases ---

    def list_cases(self, statuses: tuple[str, ...] = (), limit: int = 500) -> list[Case]:
        with self._store.connect() as conn:
            return list_cases_in(conn, statuses, limit)

    def cases_of_phone(self, phone: str, limit: int = 50) -> list[Case]:
        query = (
            sa.select(cases)
            .where(cases.c.customer_phone == phone)
            .order_by(cases.c.opened_at.desc(), cases.c.id)
            .limit(limit)
        )
        with self._store.connect() as conn:
            return [case_from_row(row) for row in conn.execute(query)]

    def history(self, case_id: str) -> list[CaseEvent]:
        with self._store.connect() as conn:
            return case_history_in(conn, case_id)

    def apply_change(self, change: CaseChange) -> bool:
        with self._store.connect() as conn:
            return apply_case_change_in(conn, change)

    def awaiting_rating(self, conversation_id: str) -> Case | None:
        with self._store.connect() as conn:
            return awaiting_rating_in(conn, conversation_id)


def list_cases_in(conn: Connection, statuses: tuple[str, ...] = (), limit: int = 500) -> list[Case]:
    """Cases in any of `statuses` (every one when empty), newest first, at most `limit`."""
    query = sa.select(cases).order_by(cases.c.opened_at.desc(), cases.c.id).limit(limit)
    if statuses:
        query = query.where(cases.c.status.in_(statuses))
    return [case_from_row(row) for row in conn.execute(query)]


def awaiting_rating_in(conn: Connection, conversation_id: str) -> Case | None:
    """The conversation's case most recently asked for a rating and not rated yet, if any."""
    query = (
        sa.select(cases)
        .where(
            cases.c.conversation_id == conversation_id,
            cases.c.rating_requested_at.is_not(None),
            cases.c.rating.is_(None),
        )
        .order_by(cases.c.rating_requested_at.desc())
        .limit(1)
    )
    row = conn.execute(query).first()
    return case_from_row(row) if row else None


def case_history_in(conn: Connection, case_id: str) -> list[CaseEvent]:
    """The case's history, oldest first."""
    query = sa.select(case_events).where(case_events.c.case_id == case_id).order_by(case_events.c.id)
    return [
        CaseEvent(
            case_id=row.case_id,
            at=from_db_time(row.at),
            actor=row.actor,
            action=row.action,
            detail=row.detail,
            customer_visible=bool(row.customer_visible),
        )
        for row in conn.execute(query)
    ]


CASE_CHANGE_ACTIONS = ("assigned", "status", "note", "message", "rating_requested", "rated")


def apply_case_change_in(conn: Connection, change: CaseChange) -> bool:
    """Update the case as `change.event.action` says and append the event, in the caller's
    transaction; False if the case is not there or the change no longer applies (its status
    moved on, a rating already given or never asked). ValueError for a malformed change."""
    event = change.event
    conditions: list[Any] = []
    values: dict[str, Any] = {"updated_at": to_db_time(event.at)}
    if event.action == "assigned":
        if not change.assigned_to:
            raise ValueError("an assignment needs assigned_to")
        values["assigned_to"] = change.assigned_to
    elif event.action == "status":
        if not change.from_status or not change.to_status:
            raise ValueError("a status change needs from_status and to_status")
        conditions.append(cases.c.status == change.from_status)
        values["status"] = change.to_status
    elif event.action == "rating_requested":
        conditions.append(cases.c.rating.is_(None))
        values["rating_requested_at"] = to_db_time(event.at)
    elif event.action == "rated":
        if change.rating is None or not 1 <= change.rating <= 5:
            raise ValueError(f"a rating of {change.rating} is not between 1 and 5")
        conditions += [cases.c.rating_requested_at.is_not(None), cases.c.rating.is_(None)]
        values.update(rating=change.rating, rated_at=to_db_time(event.at))
    elif event.action not in ("note", "message"):
        raise ValueError(f"{event.action!r} is not a case change (one of {', '.join(CASE_CHANGE_ACTIONS)})")
    done = conn.execute(cases.update().where(cases.c.id == event.case_id, *conditions).values(**values))
    if done.rowcount != 1:
        return False
    conn.execute(case_events.insert(), case_event_row(event))
    return True


# --- reschedule: the ERP's delivery calendar (zones, windows with capacity, closures) and the
# record of every change. Times are naive UTC like the tables above; days are the zone's local days.

delivery_zones = sa.Table(
    "delivery_zones",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("country", sa.String(2), nullable=False),
    sa.Column("timezone", sa.String(64), nullable=False),
    # NULL: the business-wide default (RESCHEDULE_CUTOFF_HOUR, RESCHEDULE_MAX_DAYS_AHEAD).
    sa.Column("cutoff_hour", sa.Integer),
    sa.Column("max_days_ahead", sa.Integer),
)

# One row per window per day; `booked` only moves through conditional UPDATEs, so it never
# passes `capacity` nor goes below zero (the CHECKs say so to the database too).
delivery_slots = sa.Table(
    "delivery_slots",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("zone_id", sa.ForeignKey("delivery_zones.id"), nullable=False),
    sa.Column("starts_at", sa.DateTime, nullable=False),
    sa.Column("ends_at", sa.DateTime, nullable=False),
    sa.Column("capacity", sa.Integer, nullable=False),
    sa.Column("booked", sa.Integer, nullable=False, default=0),
    sa.UniqueConstraint("zone_id", "starts_at", name="uq_delivery_slots_zone_start"),
    sa.CheckConstraint("booked >= 0 AND booked <= capacity", name="ck_delivery_slots_booked"),
)

delivery_closures = sa.Table(
    "delivery_closures",
    metadata,
    sa.Column("zone_id", sa.ForeignKey("delivery_zones.id"), primary_key=True),
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("reason", sa.String(200), nullable=False),
)

# Which zone delivers an order and which window place it holds (NULL: none booked yet).
order_deliveries = sa.Table(
    "order_deliveries",
    metadata,
    sa.Column("order_id", sa.ForeignKey("orders.id"), primary_key=True),
    sa.Column("zone_id", sa.ForeignKey("delivery_zones.id"), nullable=False),
    sa.Column("slot_id", sa.ForeignKey("delivery_slots.id")),
)

schedule_changes = sa.Table(
    "schedule_changes",
    metadata,
    sa.Column("id", sa.String(16), primary_key=True),  # management ID, GES-XXXXXXXX
    sa.Column("order_id", sa.ForeignKey("orders.id"), nullable=False, index=True),
    sa.Column("customer_id", sa.String(64), nullable=False),
    sa.Column("phone", sa.String(20)),
    sa.Column("channel", sa.String(32), nullable=False),
    sa.Column("changed_at", sa.DateTime, nullable=False),
    sa.Column("old_start", sa.DateTime),
    sa.Column("old_end", sa.DateTime),
    sa.Column("new_start", sa.DateTime, nullable=False),
    sa.Column("new_end", sa.DateTime, nullable=False),
    sa.Column("new_slot_id", sa.Integer, nullable=False),
)


class _Undo(Exception):
    """Rolls the reschedule transaction back and carries why."""

    def __init__(self, outcome: RescheduleOutcome) -> None:
        super().__init__(outcome.value)
        self.outcome = outcome


# Only these states may change day; the service explains the others before asking.
_RESCHEDULABLE_STATES = (OrderState.CREATED.value, OrderState.IN_TRANSIT.value)


def reschedule_in(conn: Connection, change: ScheduleChange) -> RescheduleOutcome:
    """The reschedule write inside the caller's transaction; any outcome but DONE is rolled back."""
    # Lock the order's delivery row first, so two changes of the same order run one after the other.
    held = conn.execute(
        sa.select(order_deliveries.c.slot_id, order_deliveries.c.zone_id)
        .where(order_deliveries.c.order_id == change.order_id)
        .with_for_update()
    ).first()
    if held is None:
        return RescheduleOutcome.NOT_ALLOWED
    if held.slot_id == change.new_slot_id:
        return RescheduleOutcome.DONE
    # The single conditional UPDATE that enforces capacity: under concurrency the second writer
    # waits for the row lock and then sees booked == capacity, so it updates nothing.
    in_zone = (delivery_slots.c.id == change.new_slot_id, delivery_slots.c.zone_id == held.zone_id)
    taken = conn.execute(
        delivery_slots.update()
        .where(*in_zone, delivery_slots.c.booked < delivery_slots.c.capacity)
        .values(booked=delivery_slots.c.booked + 1)
    )
    if taken.rowcount != 1:
        exists = conn.execute(sa.select(delivery_slots.c.id).where(*in_zone)).first()
        # A window of another zone is not this order's to take, full or not.
        return RescheduleOutcome.WINDOW_FULL if exists else RescheduleOutcome.NOT_ALLOWED
    moved = conn.execute(
        orders.update()
        .where(orders.c.id == change.order_id, orders.c.state.in_(_RESCHEDULABLE_STATES))
        .values(
            window_start=to_db_time(change.new_window.start),
            window_end=to_db_time(change.new_window.end),
        )
    )
    if moved.rowcount != 1:
        return RescheduleOutcome.NOT_ALLOWED
    if held.slot_id is not None:
        conn.execute(
            delivery_slots.update()
            .where(delivery_slots.c.id == held.slot_id, delivery_slots.c.booked > 0)
            .values(booked=delivery_slots.c.booked - 1)
        )
    conn.execute(
        order_deliveries.update()
        .where(order_deliveries.c.order_id == change.order_id)
        .values(slot_id=change.new_slot_id)
    )
    old = change.old_window
    conn.execute(
        schedule_changes.insert(),
        {
            "id": change.id,
            "order_id": change.order_id,
            "customer_id": change.customer_id,
            "phone": change.phone,
            "channel": change.channel,
            "changed_at": to_db_time(change.changed_at),
            "old_start": to_db_time(old.start) if old else None,
            "old_end": to_db_time(old.end) if old else None,
            "new_start": to_db_time(change.new_window.start),
            "new_end": to_db_time(change.new_window.end),
            "new_slot_id": change.new_slot_id,
        },
    )
    return RescheduleOutcome.DONE


def cancel_order_in(
    conn: Connection, order_id: str, customer_id: str, cancelled_at: datetime
) -> CancelOutcome:
    """The cancellation inside the caller's transaction: one conditional UPDATE (only a `created`
    order of this customer), then the order's place in its delivery window is given back."""
    mine = (orders.c.id == order_id, orders.c.customer_id == customer_id)
    cancelled = conn.execute(
        orders.update()
        .where(*mine, orders.c.state == OrderState.CREATED.value)
        .values(state=OrderState.CANCELLED.value, cancelled_at=to_db_time(cancelled_at))
    )
    if cancelled.rowcount != 1:
        row = conn.execute(sa.select(orders.c.state).where(*mine)).first()
        if row is None:
            return CancelOutcome.NOT_FOUND
        # Cancelled already (by this same request retried, or another): the wish is met.
        return (
            CancelOutcome.DONE if row.state == OrderState.CANCELLED.value else CancelOutcome.NOT_CANCELLABLE
        )
    held = conn.execute(
        sa.select(order_deliveries.c.slot_id).where(order_deliveries.c.order_id == order_id).with_for_update()
    ).first()
    if held is not None and held.slot_id is not None:
        conn.execute(
            delivery_slots.update()
            .where(delivery_slots.c.id == held.slot_id, delivery_slots.c.booked > 0)
            .values(booked=delivery_slots.c.booked - 1)
        )
        conn.execute(
            order_deliveries.update().where(order_deliveries.c.order_id == order_id).values(slot_id=None)
        )
    return CancelOutcome.DONE


# The calendar reads inside a caller's transaction: SqlErp opens one per call; the reference
# server (reference/operations.py) runs them on its own, so both answer alike.


def zone_of_order_in(conn: Connection, order_id: str) -> DeliveryZone | None:
    query = sa.select(delivery_zones).join(
        order_deliveries, order_deliveries.c.zone_id == delivery_zones.c.id
    )
    row = conn.execute(query.where(order_deliveries.c.order_id == order_id)).first()
    return _zone(row) if row else None


def zone_in(conn: Connection, zone_id: str) -> DeliveryZone | None:
    row = conn.execute(sa.select(delivery_zones).where(delivery_zones.c.id == zone_id)).first()
    return _zone(row) if row else None


def window_slots_in(conn: Connection, zone_id: str, first_day: date, last_day: date) -> list[WindowSlot]:
    zone = zone_in(conn, zone_id)
    if zone is None:
        return []
    local = ZoneInfo(zone.timezone)
    since = to_db_time(datetime.combine(first_day, time(0), local))
    until = to_db_time(datetime.combine(last_day + timedelta(days=1), time(0), local))
    query = (
        sa.select(delivery_slots)
        .where(
            delivery_slots.c.zone_id == zone_id,
            delivery_slots.c.starts_at >= since,
            delivery_slots.c.starts_at < until,
        )
        .order_by(delivery_slots.c.starts_at, delivery_slots.c.id)
    )
    return [_slot(row) for row in conn.execute(query)]


def closed_days_in(conn: Connection, zone_id: str, first_day: date, last_day: date) -> dict[date, str]:
    query = sa.select(delivery_closures.c.day, delivery_closures.c.reason).where(
        delivery_closures.c.zone_id == zone_id,
        delivery_closures.c.day >= first_day,
        delivery_closures.c.day <= last_day,
    )
    return {row.day: row.reason for row in conn.execute(query)}


def schedule_history_in(conn: Connection, order_id: str) -> list[ScheduleChange]:
    query = (
        sa.select(schedule_changes)
        .where(schedule_changes.c.order_id == order_id)
        .order_by(schedule_changes.c.changed_at.desc(), schedule_changes.c.id)
    )
    return [_change(row) for row in conn.execute(query)]


def slot_in(conn: Connection, slot_id: int) -> WindowSlot | None:
    row = conn.execute(sa.select(delivery_slots).where(delivery_slots.c.id == slot_id)).first()
    return _slot(row) if row else None


def _zone(row: sa.engine.Row) -> DeliveryZone:
    return DeliveryZone(
        id=row.id,
        name=row.name,
        country=row.country,
        timezone=row.timezone,
        cutoff_hour=row.cutoff_hour,
        max_days_ahead=row.max_days_ahead,
    )


def _slot(row: sa.engine.Row) -> WindowSlot:
    return WindowSlot(
        id=row.id,
        zone_id=row.zone_id,
        window=DeliveryWindow(from_db_time(row.starts_at), from_db_time(row.ends_at)),
        capacity=row.capacity,
        booked=row.booked,
    )


def _change(row: sa.engine.Row) -> ScheduleChange:
    old = None
    if row.old_start is not None and row.old_end is not None:
        old = DeliveryWindow(from_db_time(row.old_start), from_db_time(row.old_end))
    return ScheduleChange(
        id=row.id,
        order_id=row.order_id,
        customer_id=row.customer_id,
        phone=row.phone,
        channel=row.channel,
        changed_at=from_db_time(row.changed_at),
        old_window=old,
        new_window=DeliveryWindow(from_db_time(row.new_start), from_db_time(row.new_end)),
        new_slot_id=row.new_slot_id,
    )
