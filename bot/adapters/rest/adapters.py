"""The CRM, ERP and case book interfaces of bot/adapters/base.py over docs/crm-erp-api.yaml.

Each operation is one small method: a path, a RestClient call, a wire parser. A new operation
of the contract (deliveries, invoices, payments...) is added the same way.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date, datetime
from typing import Any
from urllib.parse import quote

from bot.adapters.base import CaseBook, Crm, Erp
from bot.adapters.rest.client import RestClient
from bot.adapters.rest.errors import BackendProtocolError
from bot.adapters.rest.wire import (
    WireError,
    cancellation_to_wire,
    case_change_to_wire,
    case_event_from_wire,
    case_from_wire,
    case_to_wire,
    change_from_wire,
    closures_from_wire,
    contact_change_from_wire,
    contact_details_from_wire,
    customer_from_wire,
    delivery_zone_from_wire,
    invoice_from_wire,
    items_from_wire,
    new_contact_change_to_wire,
    order_from_wire,
    payment_from_wire,
    payment_link_from_wire,
    promise_to_wire,
    reschedule_to_wire,
    slot_from_wire,
    time_to_wire,
)
from bot.records import (
    CancelOutcome,
    Case,
    CaseChange,
    CaseEvent,
    CaseKind,
    ContactChange,
    ContactDetails,
    Customer,
    DeliveryZone,
    Invoice,
    Order,
    Payment,
    PaymentLink,
    RescheduleOutcome,
    ScheduleChange,
    WindowSlot,
)


def _segment(value: str) -> str:
    """An id as one path segment: '/' and the like cannot step into another resource."""
    return quote(value, safe="")


def _natural_key(prefix: str, body: Any) -> str:
    """An Idempotency-Key for a write sent outside the outbox: the same body, the same key."""
    return f"{prefix}-{hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:24]}"


def _parsed(parse, document: Any, what: str) -> Any:
    try:
        return parse(document)
    except WireError as error:
        raise BackendProtocolError(f"{what}: {error}") from None


class RestCrm(Crm):
    def __init__(self, client: RestClient) -> None:
        self.client = client

    def customer_by_phone(self, phone: str) -> Customer | None:
        found = self.client.get("/customers", {"phone": phone})
        customers = _parsed(lambda d: items_from_wire(d, customer_from_wire), found, "GET /customers")
        return customers[0] if customers else None

    def customer_by_id(self, customer_id: str) -> Customer | None:
        found = self.client.get(f"/customers/{_segment(customer_id)}")
        return None if found is None else _parsed(customer_from_wire, found, "GET /customers/{id}")

    # --- contact data (issue 6) ---

    def contact_details(self, customer_id: str) -> ContactDetails | None:
        found = self.client.get(f"/customers/{_segment(customer_id)}/contact")
        return (
            None
            if found is None
            else _parsed(contact_details_from_wire, found, "GET /customers/{id}/contact")
        )

    def update_contact(self, change: ContactChange, district: str | None = None) -> None:
        body = new_contact_change_to_wire(change, district)
        self.client.write(
            "POST",
            f"/customers/{_segment(change.customer_id)}/contact-changes",
            body,
            expected=(201,),
            idempotency_key=_natural_key("contact", body),
        )

    def contact_changes(self, customer_id: str) -> list[ContactChange]:
        found = self.client.get(f"/customers/{_segment(customer_id)}/contact-changes")
        if found is None:
            return []
        return _parsed(
            lambda d: items_from_wire(d, contact_change_from_wire),
            found,
            "GET /customers/{id}/contact-changes",
        )


class RestErp(Erp):
    def __init__(self, client: RestClient) -> None:
        self.client = client

    def order(self, order_id: str) -> Order | None:
        found = self.client.get(f"/orders/{_segment(order_id)}")
        return None if found is None else _parsed(order_from_wire, found, "GET /orders/{id}")

    def orders_of(self, customer_id: str) -> list[Order]:
        found = self.client.get(f"/customers/{_segment(customer_id)}/orders")
        if found is None:
            return []
        return _parsed(lambda d: items_from_wire(d, order_from_wire), found, "GET /customers/{id}/orders")

    def orders_in_progress(self) -> list[Order]:
        found = self.client.get("/orders", {"state": "in_progress"})
        if found is None:
            return []
        return _parsed(lambda d: items_from_wire(d, order_from_wire), found, "GET /orders")

    # --- reschedule: zones, windows with capacity, closures and the change history ---

    def delivery_zone_of(self, order_id: str) -> DeliveryZone | None:
        found = self.client.get(f"/orders/{_segment(order_id)}/delivery")
        return None if found is None else _parsed(delivery_zone_from_wire, found, "GET /orders/{id}/delivery")

    def window_slots(self, zone_id: str, first_day: date, last_day: date) -> list[WindowSlot]:
        params = {"from": first_day.isoformat(), "to": last_day.isoformat()}
        found = self.client.get(f"/delivery-zones/{_segment(zone_id)}/windows", params)
        if found is None:
            return []
        return _parsed(
            lambda d: items_from_wire(d, slot_from_wire), found, "GET /delivery-zones/{id}/windows"
        )

    def closed_days(self, zone_id: str, first_day: date, last_day: date) -> dict[date, str]:
        params = {"from": first_day.isoformat(), "to": last_day.isoformat()}
        found = self.client.get(f"/delivery-zones/{_segment(zone_id)}/closures", params)
        return (
            {} if found is None else _parsed(closures_from_wire, found, "GET /delivery-zones/{id}/closures")
        )

    def reschedule(self, change: ScheduleChange) -> RescheduleOutcome:
        body = reschedule_to_wire(change)
        # Where no outbox key is set, the change itself is the key: the same change sent again
        # is applied once, and another change under a taken id still gets its 409.
        reply = self.client.write(
            "PUT",
            f"/orders/{_segment(change.order_id)}/delivery/window",
            body,
            expected=(200,),
            passthrough=(404, 409),
            idempotency_key=_natural_key(f"reschedule-{change.id}", body),
        )
        if reply.status == 200:
            return RescheduleOutcome.DONE
        code = reply.body.get("code") if isinstance(reply.body, dict) else None
        return RESCHEDULE_CONFLICTS.get(code, RescheduleOutcome.NOT_ALLOWED)

    def schedule_history(self, order_id: str) -> list[ScheduleChange]:
        found = self.client.get(f"/orders/{_segment(order_id)}/delivery/changes")
        if found is None:
            return []
        return _parsed(
            lambda d: items_from_wire(d, change_from_wire), found, "GET /orders/{id}/delivery/changes"
        )

    # --- self-service cancellation ---

    def cancel_order(self, order_id: str, customer_id: str, cancelled_at: datetime) -> CancelOutcome:
        body = cancellation_to_wire(customer_id, cancelled_at)
        # Cancelling is idempotent by nature (a cancelled order stays cancelled); outside the
        # outbox the order and its customer are the key.
        reply = self.client.write(
            "POST",
            f"/orders/{_segment(order_id)}/cancellation",
            body,
            expected=(200,),
            passthrough=(404, 409),
            idempotency_key=_natural_key(f"cancel-{order_id}", body),
        )
        if reply.status == 200:
            return CancelOutcome.DONE
        return CancelOutcome.NOT_FOUND if reply.status == 404 else CancelOutcome.NOT_CANCELLABLE

    # --- payments (issue 6) ---

    def invoices_of(self, customer_id: str) -> list[Invoice]:
        found = self.client.get(f"/customers/{_segment(customer_id)}/invoices")
        if found is None:
            return []
        return _parsed(lambda d: items_from_wire(d, invoice_from_wire), found, "GET /customers/{id}/invoices")

    def open_invoices(self) -> list[Invoice]:
        found = self.client.get("/invoices", {"status": "open"})
        if found is None:
            return []
        return _parsed(lambda d: items_from_wire(d, invoice_from_wire), found, "GET /invoices")

    def payments_of(self, customer_id: str) -> list[Payment]:
        found = self.client.get(f"/customers/{_segment(customer_id)}/payments")
        if found is None:
            return []
        return _parsed(lambda d: items_from_wire(d, payment_from_wire), found, "GET /customers/{id}/payments")

    def payment_link(self, invoice: Invoice, now: datetime) -> PaymentLink:
        # Each request is a new link (a fresh key); the ERP signs it and records that it was issued.
        reply = self.client.write(
            "POST", f"/invoices/{_segment(invoice.id)}/payment-links", {}, expected=(201,)
        )
        return _parsed(payment_link_from_wire, reply.body, "POST /invoices/{id}/payment-links")

    def invoice_pdf(self, invoice_id: str) -> bytes | None:
        found = self.client.get(f"/invoices/{_segment(invoice_id)}/pdf", document="application/pdf")
        if found is not None and not bytes(found).startswith(b"%PDF-"):
            raise BackendProtocolError("GET /invoices/{id}/pdf: the answer is not a PDF document")
        return found

    def record_promise(
        self,
        customer_id: str,
        invoice_id: str | None,
        promised_for: date,
        channel: str,
        made_at: datetime,
    ) -> None:
        # The contract has the ERP stamp the promise when it records it (docs/crm-erp-api.yaml).
        del made_at
        body = promise_to_wire(invoice_id, promised_for, channel)
        self.client.write(
            "POST",
            f"/customers/{_segment(customer_id)}/promises-to-pay",
            body,
            expected=(201,),
            idempotency_key=_natural_key(f"promise-{customer_id}", body),
        )


# What a 409 of PUT /orders/{id}/delivery/window means; any other conflict (and a 404: no such
# order) is an order that cannot move.
RESCHEDULE_CONFLICTS = {
    "window_taken": RescheduleOutcome.WINDOW_FULL,
    "not_reschedulable": RescheduleOutcome.NOT_ALLOWED,
    "change_id_taken": RescheduleOutcome.ID_TAKEN,
}


class RestCaseBook(CaseBook):
    """Cases kept by the CRM: a write (POST /cases) and two reads."""

    def __init__(self, client: RestClient) -> None:
        self.client = client

    def add(self, case: Case) -> bool:
        # A case's id is drawn once, so it is a natural key: the same case sent again (by a
        # retry, or the outbox) is applied once even where no outbox key is set.
        reply = self.client.write(
            "POST", "/cases", case_to_wire(case), passthrough=(409,), idempotency_key=f"case-{case.id}"
        )
        return reply.status != 409

    def case(self, case_id: str) -> Case | None:
        found = self.client.get(f"/cases/{_segment(case_id)}")
        return None if found is None else _parsed(case_from_wire, found, "GET /cases/{id}")

    def recent_open_cases(self, conversation_id: str, kind: CaseKind, since: datetime) -> list[Case]:
        params = {
            "conversation_id": conversation_id,
            "kind": kind.value,
            "status": "open",
            "opened_since": time_to_wire(since),
        }
        found = self.client.get("/cases", params)
        return _parsed(lambda d: items_from_wire(d, case_from_wire), found or {"items": []}, "GET /cases")

    # --- agents working cases (POST /cases/{case_id}/events) ---

    def _cases(self, params: dict[str, str]) -> list[Case]:
        found = self.client.get("/cases", params)
        return _parsed(lambda d: items_from_wire(d, case_from_wire), found or {"items": []}, "GET /cases")

    def list_cases(self, statuses: tuple[str, ...] = (), limit: int = 500) -> list[Case]:
        if not statuses:
            return self._cases({"limit": str(limit)})
        found = [case for status in statuses for case in self._cases({"status": status, "limit": str(limit)})]
        return sorted(found, key=lambda case: (-case.opened_at.timestamp(), case.id))[:limit]

    def cases_of_phone(self, phone: str, limit: int = 50) -> list[Case]:
        return self._cases({"customer_phone": phone, "limit": str(limit)})

    def history(self, case_id: str) -> list[CaseEvent]:
        found = self.client.get(f"/cases/{_segment(case_id)}/events")
        where = "GET /cases/{id}/events"
        return _parsed(lambda d: items_from_wire(d, case_event_from_wire), found or {"items": []}, where)

    def apply_change(self, change: CaseChange) -> bool:
        path = f"/cases/{_segment(change.event.case_id)}/events"
        reply = self.client.write("POST", path, case_change_to_wire(change), passthrough=(404, 409))
        return reply.status not in (404, 409)

    def awaiting_rating(self, conversation_id: str) -> Case | None:
        found = self._cases({"conversation_id": conversation_id, "awaiting_rating": "true", "limit": "1"})
        return found[0] if found else None

    def record_rating(self, case_id: str, score: int, event: CaseEvent) -> bool:
        if not 1 <= score <= 5:
            raise ValueError(f"a rating of {score} is not between 1 and 5")
        return super().record_rating(case_id, score, event)
