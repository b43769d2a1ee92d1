"""Payments and contact data over HTTP: the REST CRM/ERP against the reference server (SQLite and
PostgreSQL) give what the SQL ones give; the contact change and the promise to pay are applied once
when retried, and go through the outbox while the system is down."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import replace
from datetime import date, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from bot.adapters.base import idempotency_key
from bot.adapters.outbox_sql import Outbox
from bot.adapters.rest import BackendRejected, BackendServerError, RestCrm, RestErp
from bot.adapters.sql import SqlCrm, SqlStore, contact_changes, customers, payment_links, payment_promises
from bot.contact_data import request_contact_change
from bot.messaging.inbound import Channel
from bot.messaging.store import MessagingStore
from bot.outbox import WriteStatus
from bot.payments import PaymentLinkSigner, request_promise, verify_payment_link
from bot.records import ContactChange, ContactField
from reference.server import Credentials, ReferenceServer
from tests.conftest import CLOCK, MARIANA_MX, ROSA_PE
from tests.harness import free_port, is_response
from tests.outbox_helpers import later, messages_to, worker_for
from tests.rest_fixtures import TOKEN, FakeClock, client_for, rest_backends

SECRET = "rest-link-secret"
SIGNER = PaymentLinkSigner(SECRET, "https://pagos.example.test/pagar", timedelta(hours=24))
NOW = datetime(2026, 11, 26, 16, 0, tzinfo=timezone.utc)


@pytest.fixture
def server(store, demo) -> Iterator[ReferenceServer]:
    running = ReferenceServer(store, Credentials(frozenset({TOKEN})), link_signer=SIGNER).start()
    yield running
    running.stop()


def rows(store: SqlStore, table) -> list:
    with store.connect() as conn:
        return conn.execute(sa.select(table)).all()


def a_change(
    field: ContactField = ContactField.EMAIL, new: str = "rosa.q@example.pe", **overrides
) -> ContactChange:
    values = {
        "customer_id": "C-003",
        "field": field,
        "old": "rosa.quispe@example.com",
        "new": new,
        "channel": "whatsapp",
        "verified_how": "sms_code",
        "changed_at": NOW,
    }
    return ContactChange(**{**values, **overrides})


# --- every read is the SQL CRM/ERP's ----------------------------------------------------------------


def test_invoices_payments_and_contact_details_are_those_of_the_sql_crm_and_erp(server, demo, store):
    crm, erp = RestCrm(client_for(server.url)), RestErp(client_for(server.url))
    for row in rows(store, customers):
        assert erp.invoices_of(row.id) == demo.erp.invoices_of(row.id)
        assert erp.payments_of(row.id) == demo.erp.payments_of(row.id)
        assert crm.contact_details(row.id) == demo.crm.contact_details(row.id)
    assert [invoice.id for invoice in erp.invoices_of("C-001")] == ["F-2002", "F-2001"]
    assert erp.invoices_of("C-404") == [] and erp.payments_of("C-404") == []
    assert crm.contact_details("C-404") is None and crm.contact_changes("C-404") == []


# --- the contact change -------------------------------------------------------------------------------


def test_a_contact_change_over_http_is_written_with_its_audit_and_the_crm_records_the_old_value(server, demo):
    crm = RestCrm(client_for(server.url))
    crm.update_contact(a_change(old="whatever the bot believed"))
    address = a_change(ContactField.ADDRESS, "Av. Arequipa 1234, Miraflores", old=None)
    crm.update_contact(address, district="Miraflores")
    details = demo.crm.contact_details("C-003")
    assert (details.email, details.address, details.district) == (
        "rosa.q@example.pe",
        "Av. Arequipa 1234, Miraflores",
        "Miraflores",
    )
    audit = crm.contact_changes("C-003")
    assert audit == demo.crm.contact_changes("C-003")
    assert {change.field: change.old for change in audit} == {
        ContactField.EMAIL: "rosa.quispe@example.com",
        ContactField.ADDRESS: "Jr. Huancavelica 321",
    }


def test_a_contact_change_whose_answer_was_lost_is_applied_once(server, store):
    crm = RestCrm(client_for(server.url))
    server.faults.lose_next_answers(1)
    with idempotency_key("contact-outbox-key"):
        with pytest.raises(BackendServerError):
            crm.update_contact(a_change())
        crm.update_contact(a_change())  # the stored answer, replayed
    assert len(rows(store, contact_changes)) == 1


def test_a_contact_change_for_an_unknown_customer_is_refused(server):
    with pytest.raises(BackendRejected) as refused:
        RestCrm(client_for(server.url)).update_contact(a_change(customer_id="C-404"))
    assert refused.value.status == 404


# --- payment links and promises ----------------------------------------------------------------------


def test_a_payment_link_over_http_is_signed_by_the_erp_and_recorded(server, demo, store):
    erp = RestErp(client_for(server.url))
    [invoice, _] = erp.invoices_of("C-001")
    link = erp.payment_link(invoice, NOW)
    assert (link.invoice_id, link.amount, link.currency) == (invoice.id, invoice.amount, invoice.currency)
    verified = verify_payment_link(link.url, SECRET, CLOCK.now())
    assert (verified.invoice_id, verified.amount) == (invoice.id, invoice.amount)
    assert [row.url for row in rows(store, payment_links)] == [link.url]
    with pytest.raises(BackendRejected) as missing:
        erp.payment_link(replace(invoice, id="F-404"), NOW)
    assert missing.value.status == 404


def test_without_the_erps_secret_no_payment_link_is_issued(store, demo):
    unsigned = ReferenceServer(store, Credentials(frozenset({TOKEN}))).start()
    try:
        erp = RestErp(client_for(unsigned.url))
        [invoice, _] = erp.invoices_of("C-001")
        with pytest.raises(BackendServerError) as unavailable:
            erp.payment_link(invoice, NOW)
        assert unavailable.value.status == 503
    finally:
        unsigned.stop()
    assert rows(store, payment_links) == []


def test_a_promise_to_pay_over_http_is_recorded_once(server, store):
    erp = RestErp(client_for(server.url))
    server.faults.lose_next_answers(1)
    with pytest.raises(BackendServerError):
        erp.record_promise("C-001", "F-2002", date(2026, 11, 30), "whatsapp", NOW)
    erp.record_promise("C-001", "F-2002", date(2026, 11, 30), "whatsapp", NOW)  # the same: replayed
    [promise] = rows(store, payment_promises)
    assert (promise.customer_id, promise.invoice_id, promise.promised_for) == (
        "C-001",
        "F-2002",
        date(2026, 11, 30),
    )
    with pytest.raises(BackendRejected):
        erp.record_promise("C-404", None, date(2026, 11, 30), "whatsapp", NOW)


# --- through the outbox while the CRM/ERP is down -------------------------------------------------------


def crm_server(crm_store: SqlStore, port: int) -> ReferenceServer:
    return ReferenceServer(crm_store, Credentials(frozenset({TOKEN})), port=port, link_signer=SIGNER).start()


def test_a_contact_change_and_a_promise_queued_while_the_system_is_down_are_applied_once_and_confirmed(
    store,
    crm_store,
):
    for phone in (ROSA_PE, MARIANA_MX):
        MessagingStore(store, CLOCK).record_inbound(phone, Channel.WHATSAPP)
    port, clock = free_port(), FakeClock()
    backends = rest_backends(f"http://127.0.0.1:{port}/v1", outbox=Outbox(store), clock=clock)
    change, contact = request_contact_change(
        backends.crm, backends.outbox, "C-003", ContactField.EMAIL, "rosa.q@example.pe", "whatsapp",
        "sms_code", None, ROSA_PE, ROSA_PE, "correo", NOW,
    )  # fmt: skip
    promise = request_promise(
        backends.erp, backends.outbox, "C-001", "F-2002", date(2026, 11, 30), "whatsapp", MARIANA_MX,
        MARIANA_MX, "lunes 30 de noviembre", NOW,
    )  # fmt: skip
    assert contact.status is promise.status is WriteStatus.QUEUED
    assert change.old is None  # the CRM could not be read: its own value is recorded later

    server = crm_server(crm_store, port)  # the system comes back
    try:
        clock.advance(60)
        worker = worker_for(store, backends, clock=later())
        assert asyncio.run(worker.run_once()) == 2
        assert asyncio.run(worker.run_once()) == 0
    finally:
        server.stop()
    [audit] = SqlCrm(crm_store).contact_changes("C-003")  # once, counted on the CRM's side
    assert (audit.old, audit.new) == ("rosa.quispe@example.com", "rosa.q@example.pe")
    assert len(rows(crm_store, payment_promises)) == 1
    [confirmed] = messages_to(store, ROSA_PE)
    assert is_response(confirmed, "utter_contact_confirmed_later")
    assert contact.management_id in confirmed and "rosa.q@example.pe" in confirmed
    [promised] = messages_to(store, MARIANA_MX)
    assert is_response(promised, "utter_promise_confirmed_later") and "lunes 30 de noviembre" in promised
