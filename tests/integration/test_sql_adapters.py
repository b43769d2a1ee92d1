"""The SQL CRM/ERP, run on SQLite and on the real PostgreSQL (each test runs on both)."""

from datetime import datetime, timezone

import pytest
import sqlalchemy as sa

from bot.adapters import sql
from bot.adapters.base import BackendUnavailable
from bot.adapters.sql import SqlCrm, SqlErp, SqlStore, create_engine, customers, orders, to_db_time
from bot.records import OrderState
from tests.conftest import JULIAN_AR, MARIANA_MX


def test_customer_is_found_by_e164_phone_and_by_id(demo):
    mariana = demo.crm.customer_by_phone(MARIANA_MX)
    assert (mariana.id, mariana.name, mariana.country) == ("C-001", "Mariana López", "MX")
    assert mariana.timezone == "America/Mexico_City"
    assert demo.crm.customer_by_id("C-001") == mariana


def test_unknown_customer_is_none(demo):
    assert demo.crm.customer_by_phone("+525500000000") is None
    assert demo.crm.customer_by_id("C-999") is None


def test_orders_of_a_customer_are_newest_first(demo):
    julian = demo.crm.customer_by_phone(JULIAN_AR)
    placed = [order.placed_at for order in demo.erp.orders_of(julian.id)]
    assert len(placed) == 4
    assert placed == sorted(placed, reverse=True)


def test_order_round_trips_with_aware_times(demo):
    order = demo.erp.order("PED-1004")
    assert order.state is OrderState.OUT_FOR_DELIVERY
    assert order.carrier == "Andreani"
    assert order.window.start.tzinfo is not None
    assert order.window.start < order.window.end
    assert demo.erp.order("PED-0000") is None


def test_times_are_stored_as_utc(store):
    moment = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)
    with store.connect() as conn:
        conn.execute(customers.insert(), {"id": "A", "name": "Ana", "phone": "+52551", "country": "MX"})
        conn.execute(
            orders.insert(),
            {
                "id": "P",
                "customer_id": "A",
                "state": "created",
                "items": "x",
                "placed_at": to_db_time(moment),
            },
        )
    assert SqlErp(store).order("P").placed_at == moment


def test_naive_times_are_refused():
    with pytest.raises(ValueError, match="naive"):
        to_db_time(datetime(2026, 11, 26, 12, 0))


def test_a_database_that_cannot_be_reached_is_backend_unavailable():
    store = SqlStore("postgresql+psycopg2://postgres@127.0.0.1:1/test?connect_timeout=1")
    with pytest.raises(BackendUnavailable):
        SqlCrm(store).customer_by_phone(MARIANA_MX)


def test_phones_are_unique(store):
    with store.connect() as conn:
        conn.execute(customers.insert(), {"id": "A", "name": "Ana", "phone": "+5255", "country": "MX"})
    with pytest.raises(sa.exc.IntegrityError), store.connect() as conn:
        conn.execute(customers.insert(), {"id": "B", "name": "Bea", "phone": "+5255", "country": "MX"})


def test_embedded_sqlite_runs_in_wal_mode(tmp_path):
    store = SqlStore(f"sqlite:///{tmp_path / 'bot.db'}")
    with store.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL


def _backend_pid(engine: sa.engine.Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.text("select pg_backend_pid()")).scalar()


def test_a_pooled_connection_closed_while_idle_is_replaced_before_it_is_used(pg_url, monkeypatch):
    engine = create_engine(pg_url, pool_size=1, max_overflow=0)
    first = _backend_pid(engine)
    admin = create_engine(pg_url)
    with admin.begin() as conn:  # the server drops the pooled connection (a restart, an idle timeout)
        conn.execute(sa.text("select pg_terminate_backend(:pid)"), {"pid": first})
    later = sql.monotonic() + sql.PING_AFTER_IDLE_S + 1
    monkeypatch.setattr(sql, "monotonic", lambda: later)  # it has sat idle past the threshold
    assert _backend_pid(engine) != first  # pinged, found closed, replaced: no error
    engine.dispose()
    admin.dispose()


def test_a_connection_used_a_moment_ago_is_not_pinged_again(pg_url, monkeypatch):
    engine = create_engine(pg_url, pool_size=1, max_overflow=0)
    pings = []
    real_ping = engine.dialect.do_ping
    monkeypatch.setattr(engine.dialect, "do_ping", lambda conn: pings.append(1) or real_ping(conn))
    now = sql.monotonic()
    monkeypatch.setattr(sql, "monotonic", lambda: now)  # every use within the same instant
    for _ in range(3):
        _backend_pid(engine)
    assert pings == []
    monkeypatch.setattr(sql, "monotonic", lambda: now + sql.PING_AFTER_IDLE_S)
    _backend_pid(engine)
    assert pings == [1]
    engine.dispose()
