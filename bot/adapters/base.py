"""The small interfaces bot/ needs from the business's CRM and ERP."""

from __future__ import annotations

from abc import ABC, abstractmethod

from bot.records import Customer, Order


class BackendUnavailable(Exception):
    """The CRM or ERP did not answer; the caller should apologise, not crash."""


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
