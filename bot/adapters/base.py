"""The small interfaces bot/ needs from the business's CRM and ERP, and from its own case book."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import date, datetime

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


class BackendUnavailable(Exception):
    """The CRM or ERP did not answer; the caller should apologise, not crash."""

    # Whether the same request may succeed later; a refusal of the request itself may not.
    retryable = True


class Crm(ABC):
    """Who the customers are."""

    @abstractmethod
    def customer_by_phone(self, phone: str) -> Customer | None:
        """The customer whose phone on file is `phone` (E.164), if any."""

    @abstractmethod
    def customer_by_id(self, customer_id: str) -> Customer | None:
        """The customer with this id, if any."""

    # --- contact data (issue 6) ---
    @abstractmethod
    def contact_details(self, customer_id: str) -> ContactDetails | None:
        """E-mail, delivery address and document of the customer, if the customer exists."""

    @abstractmethod
    def update_contact(self, change: ContactChange, district: str | None = None) -> None:
        """Write the new e-mail or address and its audit record, in one transaction."""

    @abstractmethod
    def contact_changes(self, customer_id: str) -> list[ContactChange]:
        """The audit of the customer's contact changes, newest first."""


class Erp(ABC):
    """What the customers bought and where it is."""

    @abstractmethod
    def order(self, order_id: str) -> Order | None:
        """The order with this id, whoever it belongs to, if any."""

    @abstractmethod
    def orders_of(self, customer_id: str) -> list[Order]:
        """Every order of the customer, newest first."""

    def orders_in_progress(self) -> list[Order]:
        """Every order not delivered or cancelled yet, of every customer: what the notification
        pull job watches (bot/notifications/pull.py) when the ERP cannot push events."""
        raise NotImplementedError(f"{type(self).__name__} cannot list the orders in progress")

    # --- reschedule: zones, windows with capacity, closures and the change history ---

    @abstractmethod
    def delivery_zone_of(self, order_id: str) -> DeliveryZone | None:
        """The zone that delivers the order, or None if it is delivered outside any zone."""

    @abstractmethod
    def window_slots(self, zone_id: str, first_day: date, last_day: date) -> list[WindowSlot]:
        """The zone's windows starting on local days first_day..last_day, earliest first."""

    @abstractmethod
    def closed_days(self, zone_id: str, first_day: date, last_day: date) -> dict[date, str]:
        """The business's own non-working days in the zone (not public holidays), with the reason."""

    @abstractmethod
    def reschedule(self, change: ScheduleChange) -> RescheduleOutcome:
        """Move the order to change.new_slot_id in one transaction: take a place in the new window
        only if one is left, release the old one, update the order's window, record the change."""

    @abstractmethod
    def schedule_history(self, order_id: str) -> list[ScheduleChange]:
        """Every change of the order's delivery window, newest first."""

    # --- self-service cancellation ---
    @abstractmethod
    def cancel_order(self, order_id: str, customer_id: str, cancelled_at: datetime) -> CancelOutcome:
        """Cancel the customer's order if it has not shipped yet (`created`), in one step; an
        order already cancelled answers DONE, so the outbox may retry the same cancellation."""

    # --- payments (issue 6) ---
    @abstractmethod
    def invoices_of(self, customer_id: str) -> list[Invoice]:
        """Every invoice of the customer, oldest due date first."""

    def open_invoices(self) -> list[Invoice]:
        """Every open invoice, of every customer, oldest due date first (the notification pull job)."""
        raise NotImplementedError(f"{type(self).__name__} cannot list the open invoices")

    @abstractmethod
    def payments_of(self, customer_id: str) -> list[Payment]:
        """Every payment recorded for the customer, newest first."""

    @abstractmethod
    def payment_link(self, invoice: Invoice, now: datetime) -> PaymentLink:
        """A link to pay this invoice's amount, expiring; the ERP records that it was issued."""

    @abstractmethod
    def invoice_pdf(self, invoice_id: str) -> bytes | None:
        """The invoice as a PDF document (its bytes, starting with %PDF), or None if there is no
        such invoice. Whose it is, is checked by the caller (bot/invoice_documents.py)."""

    @abstractmethod
    def record_promise(
        self,
        customer_id: str,
        invoice_id: str | None,
        promised_for: date,
        channel: str,
        made_at: datetime,
    ) -> None:
        """Record that the customer promised, at `made_at`, to pay on `promised_for`."""


class CaseBook(ABC):
    """The assistant's own record of cases (requests a person of the team follows up)."""

    @abstractmethod
    def add(self, case: Case) -> bool:
        """Store a new case; False if its id is already taken (the caller draws another)."""

    @abstractmethod
    def case(self, case_id: str) -> Case | None:
        """The case with this management ID, if any."""

    @abstractmethod
    def recent_open_cases(self, conversation_id: str, kind: CaseKind, since: datetime) -> list[Case]:
        """Open cases of this kind in this conversation opened at or after `since`, newest first."""

    # --- agents working cases (the console's Cases view). Each write appends its line to the
    # case's history in the same transaction, and says False when the case is not there (or, for
    # a status change, no longer in the status the agent saw). Not abstract: a case book that
    # only records cases (a CRM of its own behind it) says so when the console asks for more.

    def _cannot(self, what: str) -> NotImplementedError:
        return NotImplementedError(f"{type(self).__name__} cannot {what} (docs/agents.md)")

    def list_cases(self, statuses: tuple[str, ...] = (), limit: int = 500) -> list[Case]:
        """Cases in any of `statuses` (every status when empty), newest first, at most `limit`."""
        raise self._cannot("list cases")

    def cases_of_phone(self, phone: str, limit: int = 50) -> list[Case]:
        """The cases opened from this phone (E.164), newest first: what its owner may follow."""
        raise self._cannot("list a customer's cases")

    def history(self, case_id: str) -> list[CaseEvent]:
        """The case's history, oldest first."""
        raise self._cannot("read a case's history")

    def apply_change(self, change: CaseChange) -> bool:
        """Apply `change` and record its event in one step; False when the case is not there (or,
        for a status change, no longer in the status the agent saw). The five changes below are
        this one call each."""
        raise self._cannot("work cases")

    def assign(self, case_id: str, agent: str, event: CaseEvent) -> bool:
        """Give the case to `agent` and record `event`."""
        return self.apply_change(CaseChange(event, assigned_to=agent))

    def move(self, case_id: str, from_status: str, to_status: str, event: CaseEvent) -> bool:
        """Change the status if it is still `from_status`, and record `event`."""
        return self.apply_change(CaseChange(event, from_status=from_status, to_status=to_status))

    def add_event(self, event: CaseEvent) -> bool:
        """Record a note or a message sent to the customer in the case's history."""
        return self.apply_change(CaseChange(event))

    def request_rating(self, case_id: str, event: CaseEvent) -> bool:
        """Mark that the customer was asked to rate the case (at `event.at`), and record it."""
        return self.apply_change(CaseChange(event))

    def awaiting_rating(self, conversation_id: str) -> Case | None:
        """The conversation's case most recently asked for a rating and not rated yet, if any."""
        raise self._cannot("find a case awaiting its rating")

    def record_rating(self, case_id: str, score: int, event: CaseEvent) -> bool:
        """Store the customer's 1-5 answer once (False if not asked, or already answered)."""
        return self.apply_change(CaseChange(event, rating=score))


# --- idempotency of writes ---------------------------------------------------------------------
# A write interface method takes its domain arguments only; the key that makes a retried write
# apply once travels beside it, so every adapter (SQL or REST) and every future write gets it
# without a parameter of its own. The outbox sets it around each attempt of a queued write.

_idempotency_key: ContextVar[str | None] = ContextVar("idempotency_key", default=None)


@contextmanager
def idempotency_key(key: str) -> Iterator[None]:
    """Writes made inside this block carry `key`: the same key on every attempt of one change."""
    token = _idempotency_key.set(key)
    try:
        yield
    finally:
        _idempotency_key.reset(token)


def current_idempotency_key() -> str | None:
    """The key set by the innermost `idempotency_key` block, if any."""
    return _idempotency_key.get()


# --- one-time codes (issue 6) ---


class OtpSecrets(ABC):
    """The assistant's own store of per-customer one-time-code secrets (kept encrypted)."""

    @abstractmethod
    def next_counter(self, customer_id: str, new_secret: bytes) -> tuple[bytes, int]:
        """The customer's encrypted secret (storing `new_secret` if there is none) and the next
        HOTP counter, incremented atomically so every code sent is a fresh one."""

    @abstractmethod
    def secret_of(self, customer_id: str) -> bytes | None:
        """The customer's encrypted secret, if a code was ever sent to them."""
