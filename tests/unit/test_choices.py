import pytest

from bot.choices import fold, pick_choice

TITLES = [
    "PED-1004 · Auriculares inalámbricos (en reparto)",
    "PED-1005 · Zapatillas de running talla 42 (en camino)",
    "PED-1003 · Mate de calabaza con bombilla (en preparación)",
]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1", 0),
        ("2", 1),
        (" 3 ", 2),
        ("uno", 0),
        ("la primera", 0),
        ("el segundo porfa", 1),
        ("opción 3", 2),
        ("la 2 x fa", 1),
        ("el último", 2),
        ("ULTIMO", 2),
        ("zapatillas", 1),
        ("el de los auriculares", 0),
        ("la del mate porfa", 2),
        ("Mate de calabaza", 2),
        ("PED-1004 · Auriculares inalámbricos (en reparto)", 0),
    ],
)
def test_a_choice_is_read_by_number_ordinal_or_title(text, expected):
    assert pick_choice(text, TITLES) == expected


@pytest.mark.parametrize("text", ["4", "0", "el 1001", "si", "", "en", "dónde está mi pedido"])
def test_text_that_names_no_option_picks_none(text):
    assert pick_choice(text, TITLES) is None


def test_ambiguous_part_of_a_title_picks_none():
    assert pick_choice("en camino", ["A (en camino)", "B (en camino)"]) is None


def test_fold_drops_accents_case_and_punctuation():
    assert fold("¿Dónde ESTÁ mi pedido?!") == "donde esta mi pedido"
