"""CRM, ERP and case book over SQLAlchemy: SQLite for the embedded demo, PostgreSQL in production."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime, timezone
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, make_url

from bot.adapters.base import BackendUnavailable, CaseBook, Crm, Erp
from bot.records import Case, CaseKind, Customer, DeliveryWindow, Order, OrderState

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
    sa.Index("ix_cases_conversation_kind", "conversation_id", "kind"),
)

# Bookkeeping of the demo loader (which fixture, anchored on which day).
demo_meta = sa.Table(
    "demo_meta",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(500), nullable=False),
)


def to_db_time(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        raise ValueError("refusing a naive datetime: give it a time zone")
    return moment.astimezone(timezone.utc).replace(tzinfo=None)


def from_db_time(stored: datetime | None) -> datetime | None:
    return None if stored is None else stored.replace(tzinfo=timezone.utc)


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
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        self.engine: Engine = sa.create_engine(url, future=True, pool_pre_ping=True)
        tune_sqlite(self.engine)

    def create_schema(self) -> None:
        with self.connect() as conn:
            metadata.create_all(conn)

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

    def dispose(self) -> None:
        self.engine.dispose()


def _customer(row: sa.engine.Row) -> Customer:
    return Customer(
        id=row.id,
        name=row.name,
        phone=row.phone,
        country=row.country,
        timezone=row.timezone,
        email=row.email,
    )


def _order(row: sa.engine.Row) -> Order:
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
    )


class SqlCrm(Crm):
    def __init__(self, store: SqlStore) -> None:
        self._store = store

    def customer_by_phone(self, phone: str) -> Customer | None:
        with self._store.connect() as conn:
            row = conn.execute(sa.select(customers).where(customers.c.phone == phone)).first()
        return _customer(row) if row else None

    def customer_by_id(self, customer_id: str) -> Customer | None:
        with self._store.connect() as conn:
            row = conn.execute(sa.select(customers).where(customers.c.id == customer_id)).first()
        return _customer(row) if row else None


class SqlErp(Erp):
    def __init__(self, store: SqlStore) -> None:
        self._store = store

    def order(self, order_id: str) -> Order | None:
        with self._store.connect() as conn:
            row = conn.execute(sa.select(orders).where(orders.c.id == order_id)).first()
        return _order(row) if row else None

    def orders_of(self, customer_id: str) -> list[Order]:
        query = (
            sa.select(orders)
            .where(orders.c.customer_id == customer_id)
            .order_by(orders.c.placed_at.desc(), orders.c.id.desc())
        )
        with self._store.connect() as conn:
            return [_order(row) for row in conn.execute(query)]


def _case(row: sa.engine.Row) -> Case:
    return Case(
        id=row.id,
        kind=CaseKind(row.kind),
        conversation_id=row.conversation_id,
        customer_phone=row.customer_phone,
        details=dict(row.details or {}),
        opened_at=from_db_time(row.opened_at),
        status=row.status,
    )


class SqlCaseBook(CaseBook):
    """Cases in the `cases` table, created on first use (production has no demo loader)."""

    def __init__(self, store: SqlStore) -> None:
        self._store = store
        self._table_ready = False

    def _connect(self) -> AbstractContextManager[Connection]:
        if not self._table_ready:
            with self._store.connect() as conn:
                cases.create(conn, checkfirst=True)
            self._table_ready = True
        return self._store.connect()

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
            with self._connect() as conn:
                conn.execute(cases.insert(), row)
        except sa.exc.IntegrityError:
            return False
        return True

    def case(self, case_id: str) -> Case | None:
        with self._connect() as conn:
            row = conn.execute(sa.select(cases).where(cases.c.id == case_id)).first()
        return _case(row) if row else None

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
        with self._connect() as conn:
            return [_case(row) for row in conn.execute(query)]
