"""How options look per channel (WhatsApp buttons, list or numbers) and how a tap is read back."""

from datetime import datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.choices import pick_choice
from bot.deep_links import DeepLinks, Flow, Link, is_link_payload
from bot.handoff.config import load_config
from bot.messaging.buttons import (
    NativeItem,
    Option,
    Representation,
    button_id,
    choose,
    is_button_id,
    payload_for_id,
    shorten,
)
from bot.messaging.contents import content_definition, content_types, shape_key
from bot.messaging.inbound import Channel, parse_inbound
from bot.messaging.inbound_rules import ConversationState, Route, decide, neutralise_command
from bot.messaging.sender import DEFAULT_LIST_BUTTON
from tests.fake_twilio import content_problem, inbound_form

BODY = "¿Confirmo el cambio?"
YES_NO = [Option("Sí, confirmar", "/affirm"), Option("No, otro horario", "/deny")]
MENU = [
    Option("Mi pedido", "/order_status"),
    Option("Cambiar la entrega", "/reschedule_delivery"),
    Option("Pagar / mi saldo", "/check_balance"),
    Option("Ya pagué", "/report_payment"),
    Option("Hablar con persona", "/human_handoff"),
]


def whatsapp(options, body=BODY):
    return choose(Channel.WHATSAPP, body, options, DEFAULT_LIST_BUTTON)


def test_up_to_three_short_options_are_quick_replies_with_their_titles_as_written():
    native = whatsapp(YES_NO)
    assert native.kind is Representation.QUICK_REPLY
    assert [item.title for item in native.items] == ["Sí, confirmar", "No, otro horario"]
    assert [item.id for item in native.items] == [button_id("/affirm"), button_id("/deny")]


def test_four_to_ten_options_are_a_list():
    native = whatsapp(MENU)
    assert native.kind is Representation.LIST and native.list_button == DEFAULT_LIST_BUTTON
    assert [item.title for item in native.items] == [option.title for option in MENU]
    assert all(item.description == "" for item in native.items)


def test_sms_is_always_numbered():
    assert choose(Channel.SMS, BODY, YES_NO, DEFAULT_LIST_BUTTON) is None
    assert choose(Channel.SMS, BODY, MENU, DEFAULT_LIST_BUTTON) is None


def test_more_than_ten_options_are_numbered():
    eleven = [Option(f"Opción {n}", f"/o{n}") for n in range(11)]
    assert whatsapp(eleven) is None
    assert whatsapp(eleven[:10]).kind is Representation.LIST


def test_titles_too_long_for_buttons_but_fitting_a_list_make_a_list_as_written():
    options = [Option("Estado de mis pedidos ya", "/order_status"), Option("No", "/deny")]  # 24
    native = whatsapp(options)
    assert native.kind is Representation.LIST
    assert native.items[0] == NativeItem(
        "Estado de mis pedidos ya", button_id("/order_status"), "", "Estado de mis pedidos ya"
    )


def test_long_titles_are_shortened_at_a_word_with_the_whole_title_as_description():
    title = "Quiero cambiar la dirección de entrega de mi pedido"
    native = whatsapp([Option(title, "/update_contact_data"), Option("Otra cosa", "/help")])
    assert native.kind is Representation.LIST
    shown = native.items[0]
    assert shown.title == "Quiero cambiar la…" and len(shown.title) <= 24
    assert shown.description == title


@pytest.mark.parametrize(
    ("title", "limit", "shortened"),
    [
        ("Mi pedido", 20, "Mi pedido"),
        ("Ver el estado de mi pedido", 24, "Ver el estado de mi…"),
        ("Cambiar, por favor, la entrega", 20, "Cambiar, por favor…"),
        ("Supercalifragilísticoexpialidoso", 24, None),  # no word boundary to cut at
    ],
)
def test_shortening_is_honest(title, limit, shortened):
    assert shorten(title, limit) == shortened
    if shortened:
        assert len(shortened) <= limit


def test_titles_that_collide_once_shortened_fall_back_to_numbers():
    options = [
        Option("Pedido de zapatillas rojas talla 38", '/inform{"order_id":"PED-1"}'),
        Option("Pedido de zapatillas rojas talla 40", '/inform{"order_id":"PED-2"}'),
    ]
    assert whatsapp(options) is None


def test_a_title_that_cannot_be_shortened_falls_back_to_numbers():
    assert whatsapp([Option("Supercalifragilísticoexpialidoso", "/x"), Option("No", "/deny")]) is None


def test_an_empty_body_or_one_over_1024_characters_is_numbered():
    assert whatsapp(YES_NO, body="") is None
    assert whatsapp(YES_NO, body="a" * 1025) is None
    assert whatsapp(YES_NO, body="a" * 1024).kind is Representation.QUICK_REPLY


def test_two_options_with_the_same_payload_or_title_are_numbered():
    assert whatsapp([Option("Sí", "/affirm"), Option("Dale", "/affirm")]) is None
    assert whatsapp([Option("Sí", "/affirm"), Option("SI", "/deny")]) is None


def test_a_list_needs_a_button_text_of_at_most_20_characters():
    assert choose(Channel.WHATSAPP, BODY, MENU, "") is None
    assert choose(Channel.WHATSAPP, BODY, MENU, "x" * 21) is None


def test_the_content_keeps_the_body_as_a_variable_and_passes_the_fakes_strict_check():
    for options in (YES_NO, MENU):
        definition = content_definition(whatsapp(options))
        assert content_problem(definition) is None
        titles = "\n".join(f"{n}. {option.title}" for n, option in enumerate(options, start=1))
        assert definition["types"]["twilio/text"] == {"body": "{{1}}\n\n" + titles}  # numbered
    # One content for the same options whatever the question says.
    assert shape_key(whatsapp(YES_NO, "¿Lo confirmo?")) == shape_key(whatsapp(YES_NO, BODY))
    assert shape_key(whatsapp(YES_NO)) != shape_key(whatsapp(MENU))
    types = content_types(whatsapp(YES_NO))["twilio/quick-reply"]
    assert types["actions"] == [
        {"title": "Sí, confirmar", "id": button_id("/affirm")},
        {"title": "No, otro horario", "id": button_id("/deny")},
    ]


@pytest.mark.parametrize(
    ("definition", "problem"),
    [
        ({"types": {"twilio/text": {"body": "x"}}}, "language is required"),
        ({"language": "es", "types": {"twilio/card": {"body": "x"}}}, "unknown content type"),
        (
            {
                "language": "es",
                "types": {
                    "twilio/quick-reply": {
                        "body": "x",
                        "actions": [{"title": f"t{n}", "id": f"i{n}"} for n in range(4)],
                    }
                },
            },
            "1 to 3 actions",
        ),
        (
            {
                "language": "es",
                "types": {"twilio/quick-reply": {"body": "x", "actions": [{"title": "t" * 21, "id": "i"}]}},
            },
            "at most 20",
        ),
        (
            {
                "language": "es",
                "types": {
                    "twilio/list-picker": {
                        "body": "x",
                        "button": "Ver",
                        "items": [{"item": f"t{n}", "id": f"i{n}"} for n in range(11)],
                    }
                },
            },
            "1 to 10 items",
        ),
        (
            {
                "language": "es",
                "types": {
                    "twilio/list-picker": {
                        "body": "x",
                        "button": "Ver",
                        "items": [{"item": "t" * 25, "id": "i"}],
                    }
                },
            },
            "at most 24",
        ),
        (
            {
                "language": "es",
                "types": {"twilio/list-picker": {"body": "x", "items": [{"item": "t", "id": "i"}]}},
            },
            "needs a button",
        ),
        ({"language": "es", "types": {"twilio/text": {"body": "Hola {{1}}"}}}, "without a sample value"),
    ],
)
def test_the_fake_content_api_refuses_what_whatsapp_would_not_show(definition, problem):
    assert problem in (content_problem(definition) or "")


def test_a_tap_is_read_from_button_payload_or_list_id_on_whatsapp_only():
    tapped = button_id("/affirm")
    form = inbound_form("+525512345678", "Sí, confirmar", ButtonPayload=tapped, ButtonText="Sí, confirmar")
    assert parse_inbound(form, "MX").tapped_id == tapped
    form = inbound_form("+525512345678", "", ListId=tapped, ListTitle="Sí, confirmar")
    message = parse_inbound(form, "MX")
    assert (message.tapped_id, message.text) == (tapped, "Sí, confirmar")
    sms = inbound_form("+525512345678", "hola", channel="sms", ButtonPayload=tapped)
    assert parse_inbound(sms, "MX").tapped_id is None


def offered(options):
    return tuple({"title": option.title, "payload": option.payload} for option in options)


def test_a_tapped_button_the_bot_offered_becomes_its_payload():
    form = inbound_form("+525512345678", "No, otro horario", ButtonPayload=button_id("/deny"))
    decision = decide(
        parse_inbound(form, "MX"), ConversationState(pending_buttons=offered(YES_NO)), load_config(None)
    )
    assert (decision.route, decision.text, decision.answered_buttons) == (Route.TO_BOT, "/deny", True)


@pytest.mark.parametrize(
    "forged",
    ["/human_handoff", button_id("/human_handoff"), "opt-" + "0" * 20, "/affirm"],
)
def test_a_forged_or_stale_button_payload_is_read_as_text(forged):
    form = inbound_form("+525512345678", "/human_handoff", ButtonPayload=forged)
    state = ConversationState(pending_buttons=offered(YES_NO))
    decision = decide(parse_inbound(form, "MX"), state, load_config(None))
    assert decision.route is Route.TO_BOT and not decision.text.startswith("/")
    assert decision.text == "human_handoff"  # the typed slash neutralised, as for any text
    # With no options on screen, even the id of a real payload names nothing.
    form = inbound_form("+525512345678", "Sí, confirmar", ButtonPayload=button_id("/affirm"))
    decision = decide(parse_inbound(form, "MX"), ConversationState(), load_config(None))
    assert decision.text == "Sí, confirmar"


def test_a_templates_button_carrying_a_signed_link_reaches_the_channel_as_that_link():
    # Outside the window the template's "Cambiar la entrega" id is the notification's link
    # itself: nothing is on screen, the link is its own credential (the channel checks it).
    link = DeepLinks("unit-secret").payload(
        Link("+525512345678", Flow.RESCHEDULE, "PED-1001", datetime(2026, 11, 27, tzinfo=timezone.utc))
    )
    form = inbound_form(
        "+525512345678", "Cambiar la entrega", ButtonPayload=link, ButtonText="Cambiar la entrega"
    )
    decision = decide(parse_inbound(form, "MX"), ConversationState(), load_config(None))
    assert (decision.route, decision.text) == (Route.TO_BOT, link)
    # Only the exact form of a link: anything else in ButtonPayload is read as the text it carries.
    for forged in (link.replace('"}', '", "x": 1}'), '/follow_link{"link_token": "a b"}'):
        form = inbound_form("+525512345678", "Cambiar la entrega", ButtonPayload=forged)
        decision = decide(parse_inbound(form, "MX"), ConversationState(), load_config(None))
        assert decision.text == "Cambiar la entrega"
    # Typed, the same text is never a command.
    typed = decide(
        parse_inbound(inbound_form("+525512345678", link), "MX"), ConversationState(), load_config(None)
    )
    assert not typed.text.startswith("/")


def test_button_ids_never_carry_the_payload_and_are_recognisable():
    payload = '/inform{"order_id":"PED-1001"}'
    assert "PED" not in button_id(payload) and is_button_id(button_id(payload))
    assert not is_button_id("/affirm") and not is_button_id(None) and not is_button_id("opt-4111111111111111")
    assert payload_for_id(button_id(payload), [{"title": "x", "payload": payload}]) == payload
    assert payload_for_id(button_id(payload), [{"title": "x", "payload": "/other"}]) is None


@given(
    tapped=st.one_of(st.text(max_size=60), st.sampled_from([button_id(o.payload) for o in MENU])),
    body=st.text(max_size=40),
)
@settings(max_examples=300, deadline=None)
def test_whatever_a_tap_carries_only_an_offered_payload_becomes_a_command(tapped, body):
    form = inbound_form("+525512345678", body, ButtonPayload=tapped)
    state = ConversationState(pending_buttons=offered(YES_NO))
    decision = decide(parse_inbound(form, "MX"), state, load_config(None))
    if decision.route is Route.TO_BOT and decision.text.startswith("/"):
        # A command only if it is one of the options offered, or one the channel itself makes
        # from what was written (card data, an escalation): never the wire's payload as such.
        channel_made = ("/card_data", "/human_handoff")
        offered_payloads = {o.payload for o in YES_NO}
        # (or a notification's signed link, which the channel checks before Rasa reads anything)
        assert (
            decision.text in offered_payloads
            or decision.text.startswith(channel_made)
            or (is_link_payload(decision.text) and decision.text == tapped)
        )
        if decision.text in {o.payload for o in YES_NO} and tapped != button_id(decision.text):
            assert pick_choice_from(body) is not None  # the typed text named that option itself


def pick_choice_from(body: str):
    return pick_choice(neutralise_command(body), [o.title for o in YES_NO])


def test_orders_offered_by_number_and_product_are_a_list_told_apart_by_their_numbers():
    titles = [
        "PED-1004 · Auriculares inalámbricos (en camino)",
        "PED-1005 · Zapatillas de running (en reparto)",
        "PED-1003 · Mate de calabaza (en preparación)",
    ]
    options = [Option(title, f'/inform{{"order_id":"{title[:8]}"}}') for title in titles]
    native = whatsapp(options)
    assert native.kind is Representation.LIST
    assert [item.title for item in native.items] == [
        "PED-1004 · Auriculares…",
        "PED-1005 · Zapatillas…",
        "PED-1003 · Mate de…",
    ]
    assert [item.description for item in native.items] == titles
    assert content_problem(content_definition(native)) is None
