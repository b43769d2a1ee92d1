"""Balances, "ya pagué" lookups, promises to pay and the payment tables of the SQL ERP, on SQLite
and PostgreSQL. The money, link and wording rules that need no database are
tests/unit/test_payments.py."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa

from bot.adapters.base import BackendUnavailable
from bot.adapters.sql import SqlErp, payment_links, payment_promises
from bot.payments import (
    PaymentLinkSigner,
    balance_of,
    recent_payments,
    verify_payment_link,
)
from bot.records import Invoice, InvoiceStatus
from tests.conftest import JULIAN_AR, MARIANA_MX, NOW, ROSA_PE, TODAY

SECRET = "link-secret-for-tests"
SIGNER = PaymentLinkSigner(SECRET, "https://pagos.example.test/pagar", timedelta(hours=24))
INVOICE = Invoice(
    "F-9001", "C-001", Decimal("1234.50"), "MXN", date(2026, 11, 20), date(2026, 12, 1), InvoiceStatus.OPEN
)


# --- payment links -----------------------------------------------------------------------


def test_the_sql_erp_records_every_link_it_issues(store, demo):
    erp = SqlErp(store, SIGNER)
    invoice = erp.invoices_of("C-001")[0]
    link = erp.payment_link(invoice, NOW)
    with store.connect() as conn:
        row = conn.execute(sa.select(payment_links)).one()
    assert (row.invoice_id, Decimal(row.amount), row.url) == (invoice.id, invoice.amount, link.url)
    assert verify_payment_link(link.url, SECRET, NOW).amount == invoice.amount


def test_without_a_signer_the_erp_says_it_is_unavailable(store, demo):
    with pytest.raises(BackendUnavailable):
        SqlErp(store).payment_link(INVOICE, NOW)


# --- balance, the demo's invoices and payments ---------------------------------------------


def test_balance_lists_open_invoices_with_overdue_marked(demo):
    mariana = demo.crm.customer_by_phone(MARIANA_MX)
    balance = balance_of(mariana, demo.erp.invoices_of(mariana.id), TODAY)
    assert [line.invoice_id for line in balance.lines] == ["F-2002", "F-2001"]  # oldest due first
    assert [line.overdue for line in balance.lines] == [True, False]
    assert balance.lines[1].amount == "$1,234.50"
    assert balance.total == "$2,133.50"
    assert "vencida" in balance.lines[0].text() and "vencida" not in balance.lines[1].text()


def test_balance_in_argentina_is_in_pesos_written_the_argentine_way(demo):
    julian = demo.crm.customer_by_phone(JULIAN_AR)
    balance = balance_of(julian, demo.erp.invoices_of(julian.id), TODAY)
    assert [line.amount for line in balance.lines] == ["$ 45.999,90", "$ 250.000,00"]


def test_paid_invoices_are_not_owed(demo):
    rosa = demo.crm.customer_by_phone(ROSA_PE)
    assert balance_of(rosa, demo.erp.invoices_of(rosa.id), TODAY).lines == []


def test_amounts_are_decimals_on_both_databases(demo):
    invoice = demo.erp.invoices_of("C-001")[0]
    assert isinstance(invoice.amount, Decimal) and invoice.amount == Decimal("899.00")


def test_a_recorded_payment_is_found_and_old_ones_are_not(demo):
    payments = demo.erp.payments_of("C-003")
    assert [p.id for p in recent_payments(payments, NOW)] == ["PAG-5001"]
    assert payments[0].amount == Decimal("189.90") and payments[0].method == "Yape"
    assert recent_payments(payments, NOW + timedelta(days=40)) == []
    assert demo.erp.payments_of("C-002") == []


# --- promises to pay ---------------------------------------------------------------------


def test_a_promise_is_recorded(store, demo):
    demo.erp.record_promise("C-002", "F-2003", date(2026, 11, 30), "whatsapp", NOW)
    with store.connect() as conn:
        row = conn.execute(sa.select(payment_promises)).one()
    assert (row.customer_id, row.invoice_id, row.promised_for, row.channel) == (
        "C-002",
        "F-2003",
        date(2026, 11, 30),
        "whatsapp",
    )
