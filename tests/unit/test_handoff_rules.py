"""When the assistant hands over, and the wait it tells: bot/handoff/config.py and rules.py."""

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from bot.handoff.config import HandoffConfig, HandoffConfigError, load_config, parse_config
from bot.handoff.rules import (
    Reason,
    Signals,
    estimate_wait,
    handover_reason,
    is_open,
    language_reason,
    next_opening,
    parse_amount,
    reason_of,
)
from bot.handoff.service import opening_phrase, wait_phrase

MX = ZoneInfo("America/Mexico_City")
CONFIG = parse_config(
    {
        "timezone": "America/Mexico_City",
        "business_hours": {
            "monday": ["09:00", "18:00"],
            "friday": ["09:00", "18:00"],
            "saturday": ["10:00", "14:00"],
        },
        "holidays": {"country": "MX", "dates": ["2026-12-24"]},
        "wait": {"agents_on_duty": 2, "minutes_per_conversation": 6},
        "hand_over": {
            "amount_over": 10000,
            "vip_customers": ["C-002"],
            "dispute_intents": ["payment_dispute"],
            "cannot_complete_intents": ["request_invoice"],
            "angry_words": ["estafa", "pesimo servicio"],
            "urgent_words": ["urgente"],
        },
    }
)


def test_the_shipped_configuration_loads():
    config = load_config()
    assert config.hours and config.agents_on_duty >= 1 and config.angry_words


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"business_hours": {"lunes": ["09:00", "18:00"]}}, "business_hours.lunes"),
        ({"business_hours": {"monday": ["18:00", "09:00"]}}, "closes before it opens"),
        ({"business_hours": {"monday": ["9am", "18:00"]}}, "09:00"),
        ({"holidays": {"dates": ["24/12/2026"]}}, "holidays.dates"),
        ({"wait": {"agents_on_duty": 0}}, "agents_on_duty"),
    ],
)
def test_a_bad_configuration_names_the_field(raw, field):
    with pytest.raises(HandoffConfigError, match=field):
        parse_config(raw)


@pytest.mark.parametrize(
    ("signals", "reason"),
    [
        (Signals(intent="human_handoff"), Reason.CUSTOMER_REQUEST),
        (Signals(intent="payment_dispute"), Reason.DISPUTE),
        (Signals(intent="cancel_order", backend_unavailable=True), Reason.BACKEND_UNAVAILABLE),
        (Signals(intent="return_request", amount=15000), Reason.AMOUNT_OVER_THRESHOLD),
        (Signals(intent="request_invoice"), Reason.CANNOT_COMPLETE),
        (Signals(intent="cancel_order", customer_id="C-002"), Reason.VIP_CUSTOMER),
        (Signals(intent="nlu_fallback", not_understood_in_a_row=2), Reason.NOT_UNDERSTOOD),
        (Signals(intent="order_status", text="son unos ESTAFADORES, una estafa"), Reason.ANGRY_LANGUAGE),
        (Signals(intent="order_status", text="es urgente!!"), Reason.URGENT_LANGUAGE),
    ],
)
def test_each_rule_of_the_configuration_hands_over(signals, reason):
    assert handover_reason(signals, CONFIG) is reason


@pytest.mark.parametrize(
    "signals",
    [
        Signals(intent="cancel_order", amount=9999, customer_id="C-001"),
        Signals(intent="nlu_fallback", not_understood_in_a_row=1),
        Signals(intent="order_status", text="me urge saber, gracias"),  # "urge" is not the phrase "urgente"
        Signals(intent="order_status", text="la estafeta no llego"),  # a carrier, not "estafa"
    ],
)
def test_ordinary_turns_stay_with_the_bot(signals):
    assert handover_reason(signals, CONFIG) is None


def test_language_is_read_without_accents_or_case():
    assert language_reason("PÉSIMO SERVICIO!!!", CONFIG) is Reason.ANGRY_LANGUAGE


def test_unknown_reason_values_read_as_the_customers_request():
    assert reason_of("dispute") is Reason.DISPUTE
    assert reason_of(None) is Reason.CUSTOMER_REQUEST and reason_of("whatever") is Reason.CUSTOMER_REQUEST


@pytest.mark.parametrize(
    ("text", "amount"),
    [("$1.500", 1500), ("20,000 pesos", 20000), ("200 soles", 200), ("1.234,50", 1234.5), ("nada", None)],
)
def test_amounts_are_read_as_latin_americans_write_them(text, amount):
    assert parse_amount(text) == amount


def test_the_wait_grows_with_the_queue_during_business_hours():
    friday_morning = datetime(2026, 11, 27, 10, 0, tzinfo=MX)
    first, fourth = estimate_wait(0, friday_morning, CONFIG), estimate_wait(3, friday_morning, CONFIG)
    assert first.open_now and first.minutes == 3 and first.position == 1
    assert fourth.minutes == 12 and fourth.position == 4 and fourth.opens_at is None
    assert wait_phrase(first.minutes) == "unos 3 minutos" and wait_phrase(1) == "menos de un minuto"
    assert wait_phrase(125) == "alrededor de 2 horas"


def test_outside_hours_the_customer_is_told_when_people_are_back():
    saturday_evening = datetime(2026, 11, 28, 20, 0, tzinfo=MX)
    wait = estimate_wait(0, saturday_evening, CONFIG)
    assert not wait.open_now
    assert wait.opens_at == datetime(2026, 11, 30, 9, 0, tzinfo=MX)  # Monday
    assert opening_phrase(wait, CONFIG, saturday_evening) == "pasado mañana lunes 30 de noviembre a las 09:00"


def test_holidays_are_closed_days():
    christmas_eve = datetime(2026, 12, 24, 11, 0, tzinfo=MX)  # a Thursday, closed by the business anyway
    assert not is_open(christmas_eve, CONFIG)
    # 2026-11-16 is a Monday and Mexico's Revolution Day holiday: the next opening is Friday.
    assert next_opening(datetime(2026, 11, 15, 12, 0, tzinfo=MX), CONFIG) == datetime(
        2026, 11, 20, 9, 0, tzinfo=MX
    )


def test_before_opening_the_same_day_counts():
    assert next_opening(datetime(2026, 11, 27, 7, 0, tzinfo=MX), CONFIG) == datetime(
        2026, 11, 27, 9, 0, tzinfo=MX
    )
    assert is_open(datetime(2026, 11, 28, 13, 59, tzinfo=MX), CONFIG)
    assert not is_open(datetime(2026, 11, 28, 14, 0, tzinfo=MX), CONFIG)


def test_the_wait_is_shared_among_the_agents_actually_connected():
    friday_morning = datetime(2026, 11, 27, 10, 0, tzinfo=MX)
    on_duty = estimate_wait(5, friday_morning, CONFIG)  # nobody connected: the agents on duty
    three = estimate_wait(5, friday_morning, CONFIG, connected=3)
    one = estimate_wait(5, friday_morning, CONFIG, connected=1)
    minutes = CONFIG.minutes_per_conversation
    assert on_duty.minutes == -(-6 * minutes // CONFIG.agents_on_duty)
    assert three.minutes == -(-6 * minutes // 3) and one.minutes == 6 * minutes
    assert three.position == one.position == 6


def test_a_person_asked_for_inside_another_request_is_the_customers_request():
    config = HandoffConfig(vip_customers=("C-002",), person_words=("con una persona", "hablar con alguien"))
    signals = Signals(intent="wrong_or_damaged_item", text="me llego roto el pedido, pasame con una persona")
    assert handover_reason(signals, config) is Reason.CUSTOMER_REQUEST
    # ahead of the VIP rule: the packet says why the customer is with a person
    vip = Signals(intent="wrong_or_damaged_item", text="quiero hablar con alguien", customer_id="C-002")
    assert handover_reason(vip, config) is Reason.CUSTOMER_REQUEST
    assert handover_reason(Signals(intent="wrong_or_damaged_item", text="me llego roto"), config) is None
