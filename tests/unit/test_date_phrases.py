"""Spanish day and time phrases, read relative to a fixed local "now": Thursday 26 November 2026, 10:00."""

from datetime import date, datetime, time

import pytest

from bot.date_phrases import DateRequest, find_date, interpret_date

LOCAL_NOW = datetime(2026, 11, 26, 10, 0)  # a Thursday morning on the customer's own clock
D = date  # keeps the table readable

# (what the customer writes, day, part of the day, clock time)
EXPRESSIONS = [
    ("mañana", D(2026, 11, 27), None, None),
    ("manana", D(2026, 11, 27), None, None),
    ("mañana por la tarde", D(2026, 11, 27), "tarde", None),
    ("mañana temprano", D(2026, 11, 27), "manana", None),
    ("mañana en la noche", D(2026, 11, 27), "noche", None),
    ("pasado mañana", D(2026, 11, 28), None, None),
    ("pasado mañana por la tarde", D(2026, 11, 28), "tarde", None),
    ("pasado manana en la mañana", D(2026, 11, 28), "manana", None),
    ("hoy en la tarde", D(2026, 11, 26), "tarde", None),
    ("el martes", D(2026, 12, 1), None, None),
    ("martes", D(2026, 12, 1), None, None),
    ("el martes por la mañana", D(2026, 12, 1), "manana", None),
    ("el jueves", D(2026, 12, 3), None, None),  # today is Thursday: the next one
    ("el lunes que viene", D(2026, 11, 30), None, None),
    ("el proximo lunes", D(2026, 11, 30), None, None),
    ("para el miercoles porfa", D(2026, 12, 2), None, None),
    ("el sabado a las 3", D(2026, 11, 28), "tarde", time(15, 0)),
    ("el domingo", D(2026, 11, 29), None, None),
    ("el 15", D(2026, 12, 15), None, None),  # the 15th has passed this month
    ("el 30", D(2026, 11, 30), None, None),
    ("el 1", D(2026, 12, 1), None, None),  # month boundary
    ("el dia 5", D(2026, 12, 5), None, None),
    ("el viernes 4", D(2026, 12, 4), None, None),
    ("el lunes 7 en la mañana", D(2026, 12, 7), "manana", None),
    ("15/12", D(2026, 12, 15), None, None),
    ("31/12", D(2026, 12, 31), None, None),
    ("1/1", D(2027, 1, 1), None, None),  # year boundary
    ("2/1/2027", D(2027, 1, 2), None, None),
    ("3 de enero", D(2027, 1, 3), None, None),
    ("3 de enero a las 10", D(2027, 1, 3), "manana", time(10, 0)),
    ("el 3 de enero a las 10", D(2027, 1, 3), "manana", time(10, 0)),
    ("4 de diciembre", D(2026, 12, 4), None, None),
    ("el 20 de diciembre por la tarde", D(2026, 12, 20), "tarde", None),
    ("7 de dic", D(2026, 12, 7), None, None),
    ("a las 10 del 2 de diciembre", D(2026, 12, 2), "manana", time(10, 0)),
    ("el 5 de enero 3 pm", D(2027, 1, 5), "tarde", time(15, 0)),
    ("dentro de 3 dias", D(2026, 11, 29), None, None),
    ("en una semana", D(2026, 12, 3), None, None),
    ("a las 4 de la tarde", D(2026, 11, 26), "tarde", time(16, 0)),
    ("el viernes a las 11:30", D(2026, 11, 27), "manana", time(11, 30)),
    ("sábado 28 de noviembre", D(2026, 11, 28), None, None),
    ("28/11", D(2026, 11, 28), None, None),
    ("el martes 1 de diciembre", D(2026, 12, 1), None, None),
    ("el lunes 30 a las 9", D(2026, 11, 30), "manana", time(9, 0)),
    ("1 de diciembre a las 2 pm", D(2026, 12, 1), "tarde", time(14, 0)),
]


@pytest.mark.parametrize(("text", "day", "daypart", "at"), EXPRESSIONS, ids=[row[0] for row in EXPRESSIONS])
def test_spanish_expression_resolves_to_the_expected_day_and_window(text, day, daypart, at):
    request = interpret_date(text, LOCAL_NOW)
    assert request == DateRequest(day, daypart, at)


def test_the_table_holds_at_least_forty_expressions():
    assert len(EXPRESSIONS) >= 40


@pytest.mark.parametrize(
    "text", ["la semana que viene", "la proxima semana", "la semana que viene por la tarde"]
)
def test_next_week_means_any_day_from_next_monday(text):
    request = interpret_date(text, LOCAL_NOW)
    assert request.day == D(2026, 11, 30) and request.whole_week


@pytest.mark.parametrize("text", ["hola", "la segunda", "gracias", "no se", ""])
def test_text_without_a_date_is_not_read_as_one(text):
    assert interpret_date(text, LOCAL_NOW) is None


def test_relative_days_follow_the_customers_local_date_not_the_servers():
    # 23:30 on Thursday in Lima is already Friday in UTC: "mañana" is still Friday for the customer.
    late_thursday_in_lima = datetime(2026, 11, 26, 23, 30)
    assert interpret_date("mañana", late_thursday_in_lima).day == D(2026, 11, 27)


def test_dayparts_accept_the_windows_that_start_in_them():
    afternoon = interpret_date("mañana por la tarde", LOCAL_NOW)
    assert afternoon.accepts_start(time(14, 0)) and not afternoon.accepts_start(time(9, 0))
    assert interpret_date("mañana", LOCAL_NOW).accepts_start(time(9, 0))


# --- find_date: the day named somewhere in a whole message (issue 16, family 8) ---

SENTENCES = [
    ("pasame la entrega de las zapatillas al jueves a la tarde", D(2026, 12, 3), "tarde"),
    ("necesito que me cambien la entrega para el 15 por la mañana porfa", D(2026, 12, 15), "manana"),
    ("mi pedido llega mañana pero no voy a estar, pasalo al sabado", D(2026, 11, 28), None),
    ("el martes no puedo, mejor el miercoles a la tarde", D(2026, 12, 2), "tarde"),
    ("hola! se puede mover la entrega a pasado mañana?", D(2026, 11, 28), None),
    ("cambien la entrega a la semana que viene xfa", D(2026, 11, 30), None),
    ("lo pueden traer el 15/12 a las 16:30?", D(2026, 12, 15), "tarde"),
]


@pytest.mark.parametrize(("text", "day", "daypart"), SENTENCES)
def test_the_day_asked_inside_a_sentence(text: str, day: date, daypart: str | None) -> None:
    found = find_date(text, LOCAL_NOW)
    assert found is not None and (found.day, found.daypart) == (day, daypart)


@pytest.mark.parametrize(
    "text",
    [
        "necesito cambiar el dia de entrega de las zapatillas",  # no day named
        "no voy a estar el jueves, me lo cambian?",  # the day they cannot
        "el lunes no puedo",
        "a la tarde no estoy, se puede cambiar?",  # a part of the day is no day
        "quiero reprogramar la entrega",
    ],
)
def test_no_day_asked_in_the_sentence(text: str) -> None:
    assert find_date(text, LOCAL_NOW) is None


def test_a_short_answer_reads_as_a_date_alone() -> None:
    assert find_date("el jueves", LOCAL_NOW) == interpret_date("el jueves", LOCAL_NOW)
