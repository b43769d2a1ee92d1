"""Return eligibility at fixed dates: delivered, within the category's window from the delivery
day in the customer's zone, category returnable (a damaged or wrong product always comes back)."""

from __future__ import annotations

from datetime import date, datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.case_types import case_catalogue
from bot.records import Order, OrderLine, OrderState
from bot.returns import (
    Ineligible,
    Reason,
    Resolution,
    ReturnRequest,
    ReturnRulesError,
    check_return,
    load_rules,
    parse_rules,
    return_rules,
)

BOGOTA = ZoneInfo("America/Bogota")
CHECKS = case_catalogue().types["return"].eligibility
BLENDER = OrderLine("Licuadora", "electrodomesticos")  # 30 days, returnable
PILLOW = OrderLine("Almohada", "descanso")  # not returnable by choice


def order(state: OrderState = OrderState.DELIVERED, delivered: datetime | None = None) -> Order:
    return Order(
        id="PED-9001",
        customer_id="C-9",
        state=state,
        items="Licuadora y almohada",
        placed_at=datetime(2026, 10, 20, 15, tzinfo=timezone.utc),
        delivered_at=delivered,
        lines=(BLENDER, PILLOW),
    )


# Delivered on 1 November, 22:30 in Bogotá (03:30 UTC on the 2nd): the delivery *day* is the 1st.
DELIVERED = datetime(2026, 11, 2, 3, 30, tzinfo=timezone.utc)


def check(line: OrderLine, today: date, reason: Reason | None = None, the_order: Order | None = None):
    return check_return(
        the_order or order(delivered=DELIVERED), line, return_rules(), CHECKS, today, BOGOTA, reason
    )


def test_the_catalogue_declares_the_checks_of_returns_and_exchanges():
    assert set(CHECKS) == {"delivered", "within_return_window", "returnable_category"}
    assert case_catalogue().types["exchange"].eligibility == CHECKS


def test_the_last_day_of_the_window_counts_from_the_delivery_day_in_the_customers_zone():
    last = check(BLENDER, date(2026, 12, 1))
    assert last.eligible and last.delivered_on == date(2026, 11, 1) and last.last_day == date(2026, 12, 1)
    late = check(BLENDER, date(2026, 12, 2))
    assert late.refused is Ineligible.WINDOW_PASSED and late.last_day == date(2026, 12, 1)


def test_delivered_today_can_be_returned():
    today = order(delivered=datetime(2026, 12, 1, 17, tzinfo=timezone.utc))
    assert check(BLENDER, date(2026, 12, 1), Reason.CHANGED_MIND, today).eligible


@pytest.mark.parametrize(
    ("state", "refused"),
    [
        (OrderState.CREATED, Ineligible.NOT_SHIPPED),
        (OrderState.IN_TRANSIT, Ineligible.ON_ITS_WAY),
        (OrderState.OUT_FOR_DELIVERY, Ineligible.ON_ITS_WAY),
        (OrderState.CANCELLED, Ineligible.CANCELLED),
    ],
)
def test_an_order_not_delivered_cannot_be_returned_and_says_why(state, refused):
    assert check(BLENDER, date(2026, 12, 1), Reason.DAMAGED, order(state)).refused is refused


def test_a_category_not_returnable_comes_back_only_damaged_or_wrong():
    assert check(PILLOW, date(2026, 11, 3)).eligible  # the reason is not known yet
    assert check(PILLOW, date(2026, 11, 3), Reason.CHANGED_MIND).refused is Ineligible.NOT_RETURNABLE
    assert check(PILLOW, date(2026, 11, 3), Reason.DAMAGED).eligible
    assert check(PILLOW, date(2026, 11, 3), Reason.WRONG_ITEM).eligible
    # its own window (7 days) still applies to a damaged one
    assert check(PILLOW, date(2026, 11, 9), Reason.DAMAGED).refused is Ineligible.WINDOW_PASSED


def test_a_product_without_category_follows_the_default_category():
    unknown = OrderLine("Algo", None)
    assert return_rules().category_of(unknown).id == return_rules().default
    assert check(unknown, date(2026, 11, 11)).eligible
    assert check(unknown, date(2026, 11, 12)).refused is Ineligible.WINDOW_PASSED


def test_a_type_without_checks_refuses_nothing():
    assert check_return(
        order(OrderState.IN_TRANSIT), BLENDER, return_rules(), (), date(2026, 12, 1), BOGOTA
    ).eligible


def test_the_request_carries_what_the_team_needs_and_its_kind():
    request = ReturnRequest(
        "PED-9001",
        "Licuadora",
        "electrodomesticos",
        Reason.DAMAGED,
        Resolution.EXCHANGE,
        exchange_for="la misma en rojo",
        photos=("https://a/1.jpg", "https://a/2.jpg"),
        reason_label="Llegó dañado",
    )
    details = request.details()
    assert details["media_url"] == "https://a/1.jpg" and details["media_url_2"] == "https://a/2.jpg"
    assert details["resolution"] == "exchange" and details["exchange_for"] == "la misma en rojo"
    assert Resolution.EXCHANGE.case_kind.value == "exchange_request"
    assert Resolution.VOUCHER.case_kind.value == "return_request"


@pytest.mark.parametrize(
    ("broken", "named"),
    [
        ({"categories": {}}, "categories"),
        (
            {
                "default": "x",
                "categories": {
                    "a": {"label": "A", "returnable": True, "return_window_days": 3, "handover": "pickup"}
                },
            },
            "default",
        ),
        (
            {
                "default": "a",
                "categories": {
                    "a": {"label": "A", "returnable": "si", "return_window_days": 3, "handover": "pickup"}
                },
            },
            "categories.a.returnable",
        ),
        (
            {
                "default": "a",
                "categories": {
                    "a": {"label": "A", "returnable": True, "return_window_days": -1, "handover": "pickup"}
                },
            },
            "categories.a.return_window_days",
        ),
        (
            {
                "default": "a",
                "categories": {
                    "a": {"label": "A", "returnable": True, "return_window_days": 3, "handover": "mail"}
                },
            },
            "categories.a.handover",
        ),
        (
            {
                "default": "a",
                "categories": {
                    "a": {"label": "A", "returnable": True, "return_window_days": 3, "handover": "pickup"}
                },
                "handover": {"pickup": "x"},
            },
            "handover.drop_off",
        ),
    ],
)
def test_broken_rules_name_the_file_and_the_key(broken, named):
    with pytest.raises(ReturnRulesError, match=f"return_rules.yml: {named}"):
        parse_rules(broken, Path("return_rules.yml"))


def test_the_projects_rules_load():
    assert load_rules().handover["pickup"]
