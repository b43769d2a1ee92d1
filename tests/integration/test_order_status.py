"""The order-status service over the real SQL adapters (SQLite and PostgreSQL)."""

from datetime import timedelta

from bot.order_status import Outcome, choice_title, describe, look_up_status
from bot.records import OrderState
from tests.conftest import ANDRES_CO, CAMILA_CL, JULIAN_AR, MARIANA_MX, NOW, ROSA_PE, STRANGER, written_day


def test_one_open_order_is_described_right_away(demo):
    lookup = look_up_status(demo.crm, demo.erp, MARIANA_MX)
    assert lookup.outcome is Outcome.FOUND
    assert lookup.order.id == "PED-1001"  # the delivered PED-1002 is not "open"


def test_several_open_orders_are_offered_soonest_first(demo):
    lookup = look_up_status(demo.crm, demo.erp, JULIAN_AR)
    assert lookup.outcome is Outcome.CHOOSE
    assert [order.id for order in lookup.choices] == ["PED-1004", "PED-1005", "PED-1003"]
    assert choice_title(lookup.choices[0]) == "PED-1004 · Auriculares inalámbricos (en reparto)"


def test_customer_without_open_orders_is_asked_for_the_number(demo):
    assert look_up_status(demo.crm, demo.erp, ROSA_PE).outcome is Outcome.NO_OPEN_ORDERS
    assert look_up_status(demo.crm, demo.erp, CAMILA_CL).outcome is Outcome.NO_OPEN_ORDERS


def test_an_order_number_in_any_spelling_finds_the_customers_order(demo):
    for reference in ("PED-1007", "ped1007", "1007", "pedido 1007", "#1007"):
        lookup = look_up_status(demo.crm, demo.erp, ROSA_PE, reference)
        assert (lookup.outcome, lookup.order.id) == (Outcome.FOUND, "PED-1007"), reference


def test_someone_elses_order_gets_the_same_answer_as_a_missing_one(demo):
    others = look_up_status(demo.crm, demo.erp, MARIANA_MX, "PED-1003")  # Julián's
    missing = look_up_status(demo.crm, demo.erp, MARIANA_MX, "PED-9999")
    assert others.outcome is missing.outcome is Outcome.NOT_FOUND
    assert others.order is None and missing.order is None


def test_unknown_number_never_sees_an_order(demo):
    assert look_up_status(demo.crm, demo.erp, STRANGER).outcome is Outcome.UNKNOWN_CUSTOMER
    assert look_up_status(demo.crm, demo.erp, STRANGER, "PED-1001").outcome is Outcome.NOT_FOUND
    assert look_up_status(demo.crm, demo.erp, None, "PED-1001").outcome is Outcome.NOT_FOUND


def view_of(demo, phone, order_id, now=NOW):
    customer = demo.crm.customer_by_phone(phone)
    return describe(demo.erp.order(order_id), customer, now, "America/Mexico_City")


def test_in_transit_tells_eta_in_spanish_carrier_and_tracking(demo):
    view = view_of(demo, MARIANA_MX, "PED-1001")
    assert view.situation == "in_transit"
    assert view.values["eta"] == f"mañana {written_day(1)} entre 14:00 y 18:00"
    assert view.values["carrier"] == "Estafeta"
    assert view.values["tracking_url"] == "https://rastreo.example.com/PED-1001"
    assert view.values["items"] == "Licuadora de 3 velocidades"


def test_eta_is_in_the_customers_own_zone(demo):
    # 10:00 in Mexico City is 13:00 in Buenos Aires; the window is 16:00-20:00 there, today.
    view = view_of(demo, JULIAN_AR, "PED-1004")
    assert view.situation == "out_for_delivery"
    assert view.values["eta"] == f"hoy {written_day(0)} entre 16:00 y 20:00"


def test_created_delivered_cancelled_and_unknown_eta(demo):
    assert view_of(demo, JULIAN_AR, "PED-1003").situation == "created"
    delivered = view_of(demo, ROSA_PE, "PED-1007")
    assert delivered.situation == "delivered"
    assert delivered.values["when"] == f"el {written_day(-2)} a las 15:20"
    cancelled = view_of(demo, JULIAN_AR, "PED-1006")
    assert (cancelled.situation, cancelled.values["when"]) == (
        "cancelled",
        f"el {written_day(-8)} a las 10:20",
    )
    assert view_of(demo, ANDRES_CO, "PED-1009").situation == "in_transit_no_eta"


def test_a_window_already_past_is_told_as_late(demo):
    later = NOW + timedelta(days=2)
    view = view_of(demo, MARIANA_MX, "PED-1001", now=later)
    assert view.situation == "in_transit_late"
    assert view.values["eta"].startswith(f"ayer {written_day(1)}")


def test_every_open_state_has_a_situation(demo):
    situations = {
        view_of(demo, JULIAN_AR, order_id).situation for order_id in ("PED-1003", "PED-1004", "PED-1005")
    }
    assert situations == {"created", "out_for_delivery", OrderState.IN_TRANSIT.value}


def test_an_order_named_by_its_product_or_as_the_last_one_is_found(demo):
    for said, order_id in (
        ("donde estan mis zapatillas?", "PED-1005"),
        ("y los auriculares cuando llegan", "PED-1004"),
        ("que paso con el mate", "PED-1003"),
        ("mi ultimo pedido donde esta", "PED-1003"),  # the most recently placed
    ):
        lookup = look_up_status(demo.crm, demo.erp, JULIAN_AR, said=said)
        assert (lookup.outcome, lookup.order.id) == (Outcome.FOUND, order_id), said


def test_words_that_name_no_single_order_still_offer_the_choice(demo):
    for said in ("donde esta mi pedido", "el de la talla 42", "el ultimo dia que pueden?"):
        assert look_up_status(demo.crm, demo.erp, JULIAN_AR, said=said).outcome is Outcome.CHOOSE, said
    # Another customer's products name nothing of this one's.
    assert look_up_status(demo.crm, demo.erp, JULIAN_AR, said="la licuadora").outcome is Outcome.CHOOSE
