"""Contact-data changes: what a valid new e-mail or address is, and the audited write."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from bot.adapters.base import BackendUnavailable, Crm
from bot.adapters.outbox_sql import Outbox
from bot.adapters.rest.wire import (  # the outbox keeps the contract's shape
    contact_change_from_wire,
    contact_change_to_wire,
)
from bot.choices import fold
from bot.outbox import WriteKind, WriteOutcome, WriteRejected, submit_write
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


# --- the write kind: a contact change in the CRM, with its audit record -------------------------------


def _apply_contact_update(crm: Crm, payload: Mapping[str, Any]) -> None:
    change = contact_change_from_wire(payload["change"])
    if change.old is None:
        # Queued while the CRM could not even be read: the audit's old value is read now, before
        # the change (an HTTP CRM records it from its own data anyway).
        details = crm.contact_details(change.customer_id)
        if details is None:
            raise WriteRejected(f"no customer {change.customer_id}")
        old = details.email if change.field is ContactField.EMAIL else details.address
        change = replace(change, old=old)
    crm.update_contact(change, district=payload.get("district"))


CONTACT_UPDATE = WriteKind(
    "contact.update",
    _apply_contact_update,
    system="crm",
    confirmation="utter_contact_confirmed_later",
    notice_fields=("field", "new"),
)


# --- the write through the outbox: never lost while the CRM is down ---------------------------------


def request_contact_change(
    crm: Crm,
    outbox: Outbox,
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
    """Write the new value through the CRM with its audit record (old → new, channel, how
    verified), through the outbox.

    The address is kept as the customer reads it, district included; the district is also stored
    on its own for routing deliveries. When the CRM does not answer, the change is kept under a
    management ID and the outbox worker writes it later and tells the customer (`field_name` is
    how the field is called to them). Raises LookupError for an unknown customer, WriteRejected
    when the CRM refuses the change, BackendUnavailable when not even the outbox can record it.
    """
    try:
        details = crm.contact_details(customer_id)
    except BackendUnavailable:
        old = None  # read again when the change is applied (_apply_contact_update)
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
        CONTACT_UPDATE,
        payload,
        system=crm,
        outbox=outbox,
        conversation_id=conversation_id,
        customer_phone=phone,
        now=change.changed_at,
    )
    return change, outcome
