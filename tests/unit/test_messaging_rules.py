"""Pure channel rules: SMS encoding and splitting, inbound normalisation, keywords, options."""

import pytest

from bot.choices import numbered_options
from bot.messaging.inbound import Channel, MalformedWebhook, parse_inbound, rasa_text
from bot.messaging.keywords import Keyword, keyword_of
from bot.messaging.sms import is_gsm7, sms_part_limit, sms_segments, split_text
from tests.fake_twilio import inbound_form


def test_spanish_opening_marks_are_gsm7_but_acute_accents_are_not():
    assert is_gsm7("¿Qué tal? ¡Hola! Ñandu ü é")  # é, ñ, ü, ¿, ¡ are in GSM-7
    for accented in ("á", "í", "ó", "ú", "Á", "😊"):
        assert not is_gsm7(f"hola {accented}")


@pytest.mark.parametrize(
    ("text", "segments"),
    [
        ("a" * 160, 1),
        ("a" * 161, 2),
        ("a" * 306, 2),
        ("a" * 307, 3),
        ("ó" * 70, 1),
        ("ó" * 71, 2),
        ("€" * 80, 1),
    ],
)
def test_segments_follow_the_encoding(text, segments):
    assert sms_segments(text) == segments


def test_emoji_counts_twice_in_ucs2():
    assert sms_segments("😊" * 35) == 1 and sms_segments("😊" * 36) == 2


def test_sms_parts_shrink_when_an_accent_forces_ucs2():
    assert sms_part_limit("hola que tal") == 1530
    assert sms_part_limit("¿dónde está?") == 670


def test_long_text_is_split_at_sentences_under_the_limit():
    text = " ".join(f"Frase número {n} del mensaje." for n in range(200))
    parts = split_text(text, 1600)
    assert len(parts) > 1
    assert all(len(part) <= 1600 for part in parts)
    assert all(part.endswith(".") for part in parts)
    assert " ".join(parts) == text


def test_a_sentence_longer_than_a_part_is_split_between_words():
    text = "palabra " * 500
    parts = split_text(text, 100)
    assert all(len(part) <= 100 for part in parts)
    assert all(not part.startswith(" ") and not part.endswith(" ") for part in parts)
    assert " ".join(parts).split() == text.split()


def test_line_breaks_survive_splitting():
    text = "Elige una opción:\n1. Ver pedido\n2. Cambiar fecha\n" + "Texto largo. " * 200
    assert split_text(text, 1600)[0].startswith("Elige una opción:\n1. Ver pedido\n2. Cambiar fecha")


def test_sms_split_measures_ucs2_units():
    text = "¿Dónde está mi pedido? " * 60
    parts = split_text(text, sms_part_limit(text), sms=True)
    assert all(sms_segments(part) <= 10 for part in parts)


def test_whatsapp_inbound_is_normalised():
    form = inbound_form("+5215512345678", "¡Hola! ¿Dónde está mi pedido? 📦", sid="SM1")
    message = parse_inbound(form, "MX")
    assert message.channel is Channel.WHATSAPP
    assert message.phone == "+525512345678"
    assert message.text == "¡Hola! ¿Dónde está mi pedido? 📦"  # "¡" is not rewritten to "@"
    assert message.profile_name == "Cliente"
    assert message.metadata()["wa_id"] == "5215512345678"


def test_sms_inbound_with_media():
    form = inbound_form(
        "+5491123456789",
        "",
        channel="sms",
        NumMedia="2",
        MediaUrl0="https://media.example/a.jpg",
        MediaContentType0="image/jpeg",
        MediaUrl1="https://media.example/b.pdf",
        MediaContentType1="application/pdf",
    )
    message = parse_inbound(form, "MX")
    assert message.channel is Channel.SMS
    assert [(m.url, m.content_type) for m in message.media] == [
        ("https://media.example/a.jpg", "image/jpeg"),
        ("https://media.example/b.pdf", "application/pdf"),
    ]
    assert rasa_text(message) == "/share_media"


def test_location_becomes_an_intent_with_entities():
    form = inbound_form(
        "+51987654321", "", Latitude="-12.0464", Longitude="-77.0428", Address="Av. Arequipa 123"
    )
    text = rasa_text(parse_inbound(form, "MX"))
    assert (
        text == '/share_location{"latitude": -12.0464, "longitude": -77.0428, "address": "Av. Arequipa 123"}'
    )


@pytest.mark.parametrize(("latitude", "longitude"), [("95", "10"), ("10", "-200"), ("nan", "1"), ("x", "1")])
def test_impossible_coordinates_are_not_a_location(latitude, longitude):
    form = inbound_form("+51987654321", "aca estoy", Latitude=latitude, Longitude=longitude)
    message = parse_inbound(form, "MX")
    assert message.location is None and rasa_text(message) == "aca estoy"


def test_a_form_without_sid_or_sender_is_malformed():
    with pytest.raises(MalformedWebhook):
        parse_inbound({"Body": "hola"}, "MX")


@pytest.mark.parametrize(
    ("text", "keyword"),
    [
        ("STOP", Keyword.OPT_OUT),
        ("baja", Keyword.OPT_OUT),
        ("Baja.", Keyword.OPT_OUT),
        ("ALTO", Keyword.OPT_OUT),
        ("cancelar", Keyword.OPT_OUT),
        ("unsubscribe", Keyword.OPT_OUT),
        ("ALTA", Keyword.OPT_IN),
        ("start", Keyword.OPT_IN),
        ("Iniciar!", Keyword.OPT_IN),
        ("quiero darme de baja de las promos", None),
        ("stop con los mensajes", None),
        ("hola", None),
    ],
)
def test_keywords_are_whole_messages(text, keyword):
    assert keyword_of(text) is keyword


def test_options_become_a_numbered_list():
    assert numbered_options("¿Cuál?", ["A", "B"]) == "¿Cuál?\n\n1. A\n2. B"
