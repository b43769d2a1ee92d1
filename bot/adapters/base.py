"""The small interfaces bot/ needs from the business's CRM and ERP, and from its own case book."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import date, datetime

from bot.records import (
    Case,
    CaseKind,
    Customer,
    DeliveryZone,
    Order,
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


class Erp(ABC):
    """What the customers bought and where it is."""

    @abstractmethod
    def order(self, order_id: str) -> Order | None:
        """The order with this id, whoever it belongs to, if any."""

    @abstractmethod
    def orders_of(self, customer_id: str) -> list[Order]:
        """Every order of the customer, newest first."""

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
