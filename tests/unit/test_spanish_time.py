from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from bot.records import DeliveryWindow
from bot.spanish_time import day_phrase, locale_for, moment_phrase, window_phrase

MX = ZoneInfo("America/Mexico_City")
LIMA = ZoneInfo("America/Lima")


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        (date(2026, 11, 25), "ayer miércoles 25 de noviembre"),
        (date(2026, 11, 26), "hoy jueves 26 de noviembre"),
        (date(2026, 11, 27), "mañana viernes 27 de noviembre"),
        (date(2026, 11, 28), "pasado mañana sábado 28 de noviembre"),
        (date(2026, 12, 1), "el martes 1 de diciembre"),
        (date(2027, 1, 4), "el lunes 4 de enero de 2027"),
    ],
)
def test_days_are_named_relative_to_today_in_spanish(day, expected):
    assert day_phrase(day, date(2026, 11, 26), "es_MX") == expected


def test_window_is_told_in_the_customers_zone_not_the_servers():
    # 20:00-24:00 UTC on the 27th is 14:00-18:00 in Mexico City.
    window = DeliveryWindow(
        datetime(2026, 11, 27, 20, 0, tzinfo=ZoneInfo("UTC")),
        datetime(2026, 11, 28, 0, 0, tzinfo=ZoneInfo("UTC")),
    )
    now = datetime(2026, 11, 26, 10, 0, tzinfo=MX)
    assert window_phrase(window, MX, now, "es_MX") == "mañana viernes 27 de noviembre entre 14:00 y 18:00"


def test_today_is_the_customers_today():
    # 23:30 on the 26th in Lima is already the 27th in UTC: "mañana" is still the 27th.
    now = datetime(2026, 11, 26, 23, 30, tzinfo=LIMA)
    window = DeliveryWindow(datetime(2026, 11, 27, 9, tzinfo=LIMA), datetime(2026, 11, 27, 13, tzinfo=LIMA))
    assert window_phrase(window, LIMA, now, "es_PE").startswith("mañana viernes 27 de noviembre")


def test_moment_has_day_and_time():
    moment = datetime(2026, 11, 24, 15, 20, tzinfo=LIMA)
    now = datetime(2026, 11, 26, 9, 0, tzinfo=LIMA)
    assert moment_phrase(moment, LIMA, now, "es_PE") == "el martes 24 de noviembre a las 15:20"


def test_window_across_days_names_both_ends():
    window = DeliveryWindow(datetime(2026, 11, 27, 20, tzinfo=MX), datetime(2026, 11, 28, 10, tzinfo=MX))
    now = datetime(2026, 11, 26, 10, 0, tzinfo=MX)
    assert window_phrase(window, MX, now) == (
        "entre mañana viernes 27 de noviembre a las 20:00 y pasado mañana sábado 28 de noviembre a las 10:00"
    )


def test_locale_follows_the_country_and_falls_back_to_spanish():
    assert locale_for("AR") == "es_AR"
    assert locale_for("pe") == "es_PE"
    assert locale_for("US") == "es_US"
    assert locale_for("XX") == "es"
    assert locale_for(None) == "es"
