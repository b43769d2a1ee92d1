"""Contact-data changes: validation per country and the audited write through the SQL CRM."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from bot.contact_data import (
    clean_address,
    clean_district,
    clean_email,
    district_label,
    field_named,
    request_contact_change,
)
from bot.outbox import WriteStatus
from bot.records import ContactField


def changed_contact(crm, outbox, customer_id, field, new, channel, verified_how, district=None, now=None):
    """The change through the outbox, applied at once because the CRM answers."""
    change, outcome = request_contact_change(
        crm, outbox, customer_id, field, new, channel, verified_how, district, customer_id, None,
        field.value, now=now,
    )  # fmt: skip
    assert outcome.status is WriteStatus.APPLIED
    return change


@pytest.mark.parametrize(
    "text", ["ana.perez@gmail.com", " Ana.Perez@Gmail.com ", "mi correo es lu_22@yahoo.com.ar"]
)
def test_valid_emails_are_read(text):
    assert clean_email(text) in ("ana.perez@gmail.com", "lu_22@yahoo.com.ar")


@pytest.mark.parametrize("text", ["ana.perez@gmail", "anaperez.gmail.com", "@gmail.com", ""])
def test_invalid_emails_are_refused(text):
    assert clean_email(text) is None


def test_an_address_needs_a_street_and_a_number():
    assert clean_address("Av. Arequipa 1234, dpto 5") == "Av. Arequipa 1234, dpto 5"
    assert clean_address("Calle 45 # 12-30") == "Calle 45 # 12-30"
    assert clean_address("en mi casa") is None
    assert clean_address("1234") is None


def test_each_country_names_its_district():
    assert (district_label("PE"), district_label("CL"), district_label("MX")) == (
        "distrito",
        "comuna",
        "colonia",
    )
    assert district_label("AR") == "barrio o localidad" and district_label("CO") == "barrio"
    assert clean_district("Miraflores") == "Miraflores" and clean_district("12") is None


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("mi mail", ContactField.EMAIL),
        ("1", ContactField.EMAIL),
        ("la direccion", ContactField.ADDRESS),
        ("2", ContactField.ADDRESS),
    ],
)
def test_which_data_is_read_from_the_answer(text, field):
    assert field_named(text) is field


def test_an_email_change_is_written_with_its_audit_record(demo):
    when = datetime(2026, 11, 26, 16, 0, tzinfo=timezone.utc)
    change = changed_contact(
        demo.crm,
        demo.outbox,
        "C-001",
        ContactField.EMAIL,
        "mariana.nueva@gmail.com",
        "whatsapp",
        "sms_code",
        now=when,
    )
    assert demo.crm.contact_details("C-001").email == "mariana.nueva@gmail.com"
    assert demo.crm.customer_by_id("C-001").email == "mariana.nueva@gmail.com"
    assert change.old == "mariana.lopez@example.com"
    assert demo.crm.contact_changes("C-001") == [change]


def test_an_address_change_keeps_the_district_and_its_audit(demo):
    change = changed_contact(
        demo.crm,
        demo.outbox,
        "C-003",
        ContactField.ADDRESS,
        "Av. Arequipa 1234",
        "sms",
        "order_document+sms_code",
        district="Miraflores",
        now=datetime(2026, 11, 26, 16, 0, tzinfo=timezone.utc),
    )
    details = demo.crm.contact_details("C-003")
    assert (details.address, details.district) == ("Av. Arequipa 1234, Miraflores", "Miraflores")
    assert (change.old, change.new, change.channel, change.verified_how) == (
        "Jr. Huancavelica 321",
        "Av. Arequipa 1234, Miraflores",
        "sms",
        "order_document+sms_code",
    )


def test_a_customer_without_details_gets_them_on_the_first_address(demo):
    changed_contact(
        demo.crm,
        demo.outbox,
        "C-004",
        ContactField.ADDRESS,
        "Los Leones 456",
        "whatsapp",
        "sms_code",
        district="Providencia",
        now=datetime(2026, 11, 26, 16, 0, tzinfo=timezone.utc),
    )
    assert demo.crm.contact_details("C-004").address == "Los Leones 456, Providencia"


def test_documents_come_from_the_fixture(demo):
    assert demo.crm.contact_details("C-002").document_id == "30123456"
    assert demo.crm.contact_details("C-999") is None
