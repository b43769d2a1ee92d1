"""Contact-data changes: what a valid new e-mail or address is, and the audited write."""

from __future__ import annotations

import re
from datetime import datetime

from bot.adapters.base import BackendUnavailable, Crm
from bot.adapters.rest.wire import contact_change_to_wire  # the outbox keeps the contract's shape
from bot.backends import Backends
from bot.choices import fold
from bot.outbox import WriteOutcome, default_outbox, submit_write
from bot.records import ContactChange, ContactField

# Pragmatic syntax check: one @, a dot in the domain, no spaces; the mailbox proves the rest.
_EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}$")

# What each country calls the part of the city a delivery needs besides the street.
DISTRICT_LABELS = {
    "PE": "distrito",
    "CL": "comuna",
    "MX": "colonia",
    "AR": "barrio o localidad",
    "CO": "barrio",
}

_FIELD_WORDS = {
    ContactField.EMAIL: ("correo", "mail", "email", "e mail", "imeil", "1"),
    ContactField.ADDRESS: ("direccion", "domicilio", "casa", "donde vivo", "entrega", "2"),
}


def clean_email(text: str) -> str | None:
    """The e-mail in the answer, lower-cased, if it is one."""
    candidate = text.strip().strip(".,;").lower()
    for word in candidate.split():
        if "@" in word:
            candidate = word.strip(".,;<>()")
    return candidate if _EMAIL.match(candidate) else None


def clean_address(text: str) -> str | None:
    """A street address needs words and a number ("Av. Arequipa 1234"); None otherwise."""
    address = " ".join(text.split()).strip(" .,")
    if len(address) < 6 or len(address) > 300:
        return None
    if not re.search(r"\d", address) or not re.search(r"[^\W\d_]{3,}", address):
        return None
    return address


def clean_district(text: str) -> str | None:
    district = " ".join(text.split()).strip(" .,")
    return district if 3 <= len(district) <= 100 and re.search(r"[^\W\d_]{3,}", district) else None


def district_label(country: str) -> str:
    return DISTRICT_LABELS.get(country.upper(), "barrio o colonia")


def field_named(text: str) -> ContactField | None:
    """Which data the customer wants to change, from their words ("mi mail", "la direccion", "2")."""
    words = f" {fold(text)} "
    for field, names in _FIELD_WORDS.items():
        if any(f" {name} " in words for name in names):
            return field
    return None


def change_contact(
    crm: Crm,
    customer_id: str,
    field: ContactField,
    new: str,
    channel: str,
    verified_how: str,
    district: str | None = None,
    *,
    now: datetime,
) -> ContactChange:
    """Write the new value through the CRM with its audit record (old → new, channel, how verified)."""
    details = crm.contact_details(customer_id)
    if details is None:
        raise LookupError(f"no customer {customer_id}")
    old = details.email if field is ContactField.EMAIL else details.address
    # The address is kept as the customer reads it, district included; the district is also
    # stored on its own for routing deliveries.
    new_value = f"{new}, {district}" if field is ContactField.ADDRESS and district else new
    change = ContactChange(
        customer_id=customer_id,
        field=field,
        old=old,
        new=new_value,
        channel=channel,
        verified_how=verified_how,
        changed_at=now,
    )
    crm.update_contact(change, district=district)
    return change


# --- the write through the outbox: never lost while the CRM is down ---------------------------------


def request_contact_change(
    backends: Backends,
    customer_id: str,
    field: ContactField,
    new: str,
    channel: str,
    verified_how: str,
    district: str | None,
    conversation_id: str,
    phone: str | None,
    field_name: str,
    now: datetime,
) -> tuple[ContactChange, WriteOutcome]:
    """Write the change like `change_contact`, but through the outbox (bot/outbox.py).

    When the CRM does not answer, the change is kept under a management ID and the outbox worker
    writes it later and tells the customer (`field_name` is how the field is called to them).
    Raises LookupError for an unknown customer, WriteRejected when the CRM refuses the change,
    BackendUnavailable when not even the outbox can record it.
    """
    try:
        details = backends.crm.contact_details(customer_id)
    except BackendUnavailable:
        old = None  # read again when the change is applied (bot.outbox.apply_contact_update)
    else:
        if details is None:
            raise LookupError(f"no customer {customer_id}")
        old = details.email if field is ContactField.EMAIL else details.address
    new_value = f"{new}, {district}" if field is ContactField.ADDRESS and district else new
    change = ContactChange(
        customer_id=customer_id,
        field=field,
        old=old,
        new=new_value,
        channel=channel,
        verified_how=verified_how,
        changed_at=now,
    )
    payload = {
        "change": contact_change_to_wire(change),
        "district": district,
        "notice": {"field": field_name, "new": new_value},
    }
    outcome = submit_write(
        "contact.update",
        payload,
        conversation_id=conversation_id,
        customer_phone=phone,
        backends=backends,
        outbox=backends.outbox or default_outbox(),
        now=change.changed_at,
    )
    return change, outcome
