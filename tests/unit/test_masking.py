"""Card data is found in every way customers type it, and nothing else is mistaken for it."""

from __future__ import annotations

import pytest

from bot.masking import (
    CARD_MASK,
    CVV_MASK,
    contains_card_number,
    looks_like_cvv,
    luhn_valid,
    mask_card_data,
    mask_sensitive,
)

CARDS = [
    "4111111111111111",  # Visa
    "4111 1111 1111 1111",
    "4111-1111-1111-1111",
    "5500 0000 0000 0004",  # Mastercard
    "3782 822463 10005",  # Amex, 15 digits in 4-6-5
    "378282246310005",
    "6011 1111 1111 1117",  # Discover
    "3530111333300000",  # JCB
    "4222222222222",  # Visa, 13 digits
    "6759649826438453",  # Maestro
]


@pytest.mark.parametrize("card", CARDS)
@pytest.mark.parametrize(
    "template", ["{}", "mi tarjeta es {} porfa cobrame", "te paso la tarjeta: {}!!", "{} 👍"]
)
def test_card_numbers_are_masked_in_any_format(card: str, template: str) -> None:
    text = template.format(card)
    masked = mask_card_data(text)
    assert masked.card
    assert CARD_MASK in masked.text
    assert card not in masked.text
    assert card.replace(" ", "").replace("-", "") not in masked.text.replace(" ", "")


@pytest.mark.parametrize(
    "text",
    [
        "donde esta mi pedido PED-1001",
        "el pedido 100234 no llego",
        "mi numero es +52 55 1234 5678",
        "llamame al +5491112345678",
        "llamame al 5491112345678",  # Argentine mobile without "+": 13 digits, a phone, not a card
        "5215512345678 es mi cel",  # Mexican mobile in the old 521 format
        "mi dni es 30123456 y el ruc 20123456789",
        "pague 1.234.567 pesos el 15/12/2026",
        "el codigo de seguimiento es 1Z999AA10123456784",
        "4111 1111 1111 1112",  # fails the checksum: a typo'd number is not a card
        "",
    ],
)
def test_order_numbers_phones_and_documents_are_not_cards(text: str) -> None:
    assert not contains_card_number(text)
    assert mask_card_data(text).text == text


def test_security_code_after_the_card_in_the_same_message_is_masked() -> None:
    masked = mask_card_data("4111 1111 1111 1111 vence 12/27 cvv 123")
    assert masked.card and masked.cvv
    assert "123" not in masked.text
    assert "12/27" in masked.text
    plain = mask_card_data("4111111111111111 12/27 987")
    assert "987" not in plain.text and CVV_MASK in plain.text


def test_an_order_number_further_on_is_not_taken_for_a_security_code() -> None:
    masked = mask_card_data("pague con 4111111111111111 el pedido de la semana pasada, el PED-1001")
    assert "PED-1001" in masked.text
    assert not masked.cvv


@pytest.mark.parametrize(
    "text", ["cvv 123", "CVC: 4567", "el codigo de seguridad es 321", "los numeros de atras son 999"]
)
def test_a_named_security_code_is_masked(text: str) -> None:
    masked = mask_card_data(text)
    assert masked.cvv
    assert CVV_MASK in masked.text
    assert looks_like_cvv(text)


def test_a_bare_code_is_masked_only_right_after_a_card() -> None:
    assert mask_card_data("123").text == "123"
    assert mask_card_data("123", after_card=True).text == CVV_MASK
    assert mask_card_data("PED-1001", after_card=True).text == "PED-1001"


def test_luhn_checksum() -> None:
    assert luhn_valid("79927398713")
    assert not luhn_valid("79927398710")


def test_mask_sensitive_keeps_ordinary_text() -> None:
    assert mask_sensitive("¿dónde está mi pedido? 🙏") == "¿dónde está mi pedido? 🙏"
