from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.adapters.sql import SqlCrm, SqlErp
from bot.demo import FixtureError, load_demo, parse_fixture
from bot.records import OrderState
from bot.settings import DEFAULT_DEMO_DATA
from tests.conftest import ANDRES_CO, CAMILA_CL, JULIAN_AR, MARIANA_MX, ROSA_PE, TODAY


def test_demo_covers_every_state_three_countries_and_the_edge_customers(demo):
    people = {
        phone: demo.crm.customer_by_phone(phone)
        for phone in (MARIANA_MX, JULIAN_AR, ROSA_PE, CAMILA_CL, ANDRES_CO)
    }
    assert all(people.values())
    assert len({customer.country for customer in people.values()}) >= 3
    every_order = [order for customer in people.values() for order in demo.erp.orders_of(customer.id)]
    assert {order.state for order in every_order} == set(OrderState)
    open_counts = {
        phone: sum(o.state.is_open for o in demo.erp.orders_of(c.id)) for phone, c in people.items()
    }
    assert open_counts[JULIAN_AR] >= 2
    assert demo.erp.orders_of(people[CAMILA_CL].id) == []


def test_offsets_are_days_from_the_load_day_in_the_customers_zone(demo):
    order = demo.erp.order("PED-1001")
    local = order.window.start.astimezone(ZoneInfo("America/Mexico_City"))
    assert local.date() == TODAY + timedelta(days=1)
    assert (local.hour, local.minute) == (14, 0)


def test_loading_again_the_same_day_keeps_the_data(store, settings):
    first = load_demo(store, DEFAULT_DEMO_DATA, settings, today=TODAY)
    second = load_demo(store, DEFAULT_DEMO_DATA, settings, today=TODAY)
    assert first.loaded and not second.loaded
    assert second.orders == first.orders


def test_a_new_day_reloads_so_relative_dates_stay_true(store, settings):
    load_demo(store, DEFAULT_DEMO_DATA, settings, today=TODAY)
    result = load_demo(store, DEFAULT_DEMO_DATA, settings, today=TODAY + timedelta(days=3))
    assert result.loaded
    window = SqlErp(store).order("PED-1001").window
    assert window.start.astimezone(ZoneInfo("America/Mexico_City")).date() == TODAY + timedelta(days=4)


def test_a_changed_fixture_replaces_the_old_one(store, settings, tmp_path):
    load_demo(store, DEFAULT_DEMO_DATA, settings, today=TODAY)
    other = tmp_path / "mine.yml"
    other.write_text(
        "customers:\n  - {id: X-1, name: Ana Ruiz, phone: '+52 33 1111 2222', country: MX}\n"
        "orders:\n  - {id: PED-7, customer: X-1, state: created, items: Mesa,\n"
        "    placed: {day: 0, at: '09:00'}}\n"
    )
    result = load_demo(store, other, settings, today=TODAY)
    assert (result.loaded, result.customers, result.orders) == (True, 1, 1)
    assert SqlCrm(store).customer_by_phone(MARIANA_MX) is None
    assert SqlCrm(store).customer_by_phone("+523311112222").name == "Ana Ruiz"


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("customers: [{id: A, name: N, phone: 'nope'}]", r"customers\[0\]: not a phone number"),
        ("customers: [{id: A, phone: '+525512345678'}]", r"customers\[0\]: 'name' is required"),
        ("customers: [{id: A, name: N, phone: '+525512345678', timezone: Nowhere/Here}]", "not an IANA zone"),
        (
            "orders: [{id: P, customer: ghost, state: created, items: x, placed: {day: 0, at: '10:00'}}]",
            "not among",
        ),
        (
            "customers: [{id: A, name: N, phone: '+525512345678'}]\n"
            "orders: [{id: P, customer: A, state: shipped, items: x, placed: {day: 0, at: '10:00'}}]",
            "state must be one of created, in_transit",
        ),
        (
            "customers: [{id: A, name: N, phone: '+525512345678'}]\n"
            "orders: [{id: P, customer: A, state: created, items: x, placed: {day: soon, at: '10:00'}}]",
            r"orders\[0\].placed: day 'soon'",
        ),
        (
            "customers: [{id: A, name: N, phone: '+525512345678'}]\n"
            "orders: [{id: P, customer: A, state: created, items: x, placed: {day: 0, at: '10:00'},"
            " window: {day: 1, from: '18:00', to: '14:00'}}]",
            "'to' must be later than 'from'",
        ),
        ("[1, 2]", "must hold 'customers:'"),
        ("customers: [", "not valid YAML"),
    ],
)
def test_a_broken_fixture_says_where_and_what_fits(yaml_text, message):
    with pytest.raises(FixtureError, match=message):
        parse_fixture(yaml_text, date(2026, 11, 26), "America/Mexico_City", "MX")


def test_iso_dates_are_taken_as_they_are():
    _, orders = parse_fixture(
        "customers: [{id: A, name: N, phone: '+525512345678', timezone: America/Lima}]\n"
        "orders: [{id: P, customer: A, state: delivered, items: x, placed: {day: 2026-12-24, at: '10:00'},"
        " delivered: {day: 2026-12-26, at: '16:30'}}]",
        date(2026, 11, 26),
        "America/Mexico_City",
        "MX",
    )
    # 16:30 in Lima is 21:30 UTC, stored as naive UTC.
    assert orders[0]["delivered_at"] == datetime(2026, 12, 26, 21, 30)


def test_order_lines_carry_the_category_the_return_rules_read(demo):
    order = demo.erp.order("PED-1011")
    assert [(line.name, line.category) for line in order.lines] == [
        ("Cafetera espresso", "electrodomesticos"),
        ("Almohada viscoelástica", "descanso"),
    ]
    # An order the fixture gives no lines is one product, its items, of unknown category.
    plain = demo.erp.order("PED-1003")
    assert plain.lines == () and [(line.name, line.category) for line in plain.products] == [
        (plain.items, None)
    ]
    assert [order.lines for order in demo.erp.orders_of("C-007")][0] == order.lines
