"""Contact-data changes: what a valid new e-mail or address is, and the audited write."""

from __future__ import annotations

import re
from datetime import datetime, timezone

from bot.adapters.base import Crm
from bot.choices import fold
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
    now: datetime | None = None,
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
        changed_at=now or datetime.now(timezone.utc),
    )
    crm.update_contact(change, district=district)
    return change
