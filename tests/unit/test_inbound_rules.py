"""The inbound rules as one pure decision: a table of messages and conversation states."""

from __future__ import annotations

import subprocess
import sys

import pytest

from bot.handoff.config import load_config
from bot.masking import CARD_MASK, CARRIED_CARD_DIGITS, CVV_MASK
from bot.messaging import keywords
from bot.messaging.inbound import parse_inbound
from bot.messaging.inbound_rules import (
    ConversationState,
    HandoffState,
    Route,
    decide,
    facts_needed,
    neutralise_command,
    screen_for_bot,
)
from bot.messaging.memory import InProcessMemory
from tests.fake_twilio import inbound_form

PHONE = "+525512345678"
CARD = "4111 1111 1111 1111"
OPTIONS = (
    {"title": "PED-1004 (Auriculares)", "payload": '/pick_order{"order_id": "PED-1004"}'},
    {"title": "PED-1005 (Zapatillas)", "payload": '/pick_order{"order_id": "PED-1005"}'},
)
IDLE = ConversationState()
FORM = ConversationState(form_active=True)
ON_SCREEN = ConversationState(pending_buttons=OPTIONS)
WAITING = ConversationState(handoff=HandoffState("waiting"))
WITH_AGENT = ConversationState(handoff=HandoffState("open"))
OPTED_OUT = ConversationState(opted_out=True)
AFTER_CARD = ConversationState(after_card=True)
CONFIG = load_config()


def decide_on(text: str, state: ConversationState):
    return decide(parse_inbound(inbound_form(PHONE, text), "MX"), state, CONFIG)


@pytest.mark.parametrize(
    ("text", "state", "route", "bot_reads"),
    [
        # "cancelar": opts out when idle, answers an open question, withdraws or reaches the agent.
        ("cancelar", IDLE, Route.OPT_OUT, None),
        ("Cancelar.", FORM, Route.TO_BOT, "Cancelar."),
        ("cancelar", ON_SCREEN, Route.TO_BOT, "cancelar"),
        ("cancel", FORM, Route.TO_BOT, "cancel"),
        ("cancelar", WAITING, Route.WITHDRAW_HANDOFF, None),
        ("ya no", WAITING, Route.WITHDRAW_HANDOFF, None),
        ("cancelar", WITH_AGENT, Route.TO_AGENT, None),
        ("ya no", WITH_AGENT, Route.TO_AGENT, None),
        # BAJA / STOP opt out whatever is going on.
        ("BAJA", IDLE, Route.OPT_OUT, None),
        ("baja", FORM, Route.OPT_OUT, None),
        ("STOP", ON_SCREEN, Route.OPT_OUT, None),
        ("baja", WAITING, Route.OPT_OUT, None),
        ("alto", WITH_AGENT, Route.OPT_OUT, None),
        ("quiero darme de baja de las promos", IDLE, Route.TO_BOT, "quiero darme de baja de las promos"),
        # ALTA opts back in only who opted out.
        ("ALTA", OPTED_OUT, Route.OPT_IN, None),
        ("alta", IDLE, Route.TO_BOT, "alta"),
        ("hola", OPTED_OUT, Route.TO_BOT, "hola"),
        # Numbered options: a number, an ordinal or a title picks the payload.
        ("2", ON_SCREEN, Route.TO_BOT, OPTIONS[1]["payload"]),
        ("la primera", ON_SCREEN, Route.TO_BOT, OPTIONS[0]["payload"]),
        ("el de las zapatillas", ON_SCREEN, Route.TO_BOT, OPTIONS[1]["payload"]),
        ("7", ON_SCREEN, Route.TO_BOT, "7"),
        ("2", IDLE, Route.TO_BOT, "2"),
        # Card data never reaches Rasa; a lone code right after a card is its CVV.
        (f"mi tarjeta es {CARD}", IDLE, Route.TO_BOT, "/card_data"),
        (CARD, ON_SCREEN, Route.TO_BOT, "/card_data"),
        ("123", AFTER_CARD, Route.TO_BOT, "/card_data"),
        ("123", IDLE, Route.TO_BOT, "123"),
        # Angry or urgent wording asks for a person at once.
        ("son unos estafadores, devuelvanme la plata", IDLE, Route.TO_BOT, "/human_handoff"),
        ("es URGENTE", FORM, Route.TO_BOT, "/human_handoff"),
        ("hola", IDLE, Route.TO_BOT, "hola"),
    ],
)
def test_each_message_gets_one_decision(text, state, route, bot_reads):
    decision = decide_on(text, state)
    assert decision.route is route
    if route is Route.TO_BOT:
        assert decision.text == bot_reads


def test_options_on_screen_are_answered_by_the_next_message_to_the_bot_only():
    assert decide_on("2", ON_SCREEN).answered_buttons
    assert decide_on("hola", ON_SCREEN).answered_buttons  # one answer each, picked or not
    assert not decide_on("hola", IDLE).answered_buttons
    assert not decide_on("BAJA", ON_SCREEN).answered_buttons
    with_agent_and_options = ConversationState(handoff=HandoffState("open"), pending_buttons=OPTIONS)
    assert not decide_on("2", with_agent_and_options).answered_buttons


def test_escalation_keeps_what_was_written_masked_and_the_channel_facts():
    decision = decide_on(f"es una estafa, les pasé la {CARD}", IDLE)
    assert decision.text == "/card_data"  # card data wins: the advice, not the handoff
    decision = decide_on("son unos estafadores", IDLE)
    assert decision.metadata["handoff_reason"] == "angry_language"
    assert decision.metadata["original_text"] == "son unos estafadores"
    assert decision.metadata["phone"] == PHONE and decision.metadata["channel"] == "whatsapp"
    assert "handoff_reason" not in decide_on("hola", IDLE).metadata


def test_an_option_that_reads_as_angry_is_still_the_option():
    options = ({"title": "Denuncia", "payload": "/complain"}, {"title": "Otro", "payload": "/other"})
    assert decide_on("1", ConversationState(pending_buttons=options)).text == "/complain"


@pytest.mark.parametrize("state", [WAITING, WITH_AGENT])
def test_card_data_typed_to_an_agent_is_masked_and_advised_against(state):
    decision = decide_on(f"te paso mi tarjeta {CARD}", state)
    assert decision.route is Route.TO_AGENT
    assert decision.text == f"te paso mi tarjeta {CARD_MASK}"
    assert decision.advise_against_card_data and decision.held_card_data
    after = ConversationState(handoff=state.handoff, after_card=True)
    code = decide_on("123", after)
    assert code.text == CVV_MASK and code.held_card_data
    plain = decide_on("mi cel 5512345678", state)
    assert plain.text == "mi cel 5512345678" and plain.held_card_data is False
    assert not plain.advise_against_card_data


def test_an_answer_to_a_code_prompt_reaches_the_agent_without_its_digits():
    state = ConversationState(handoff=HandoffState("open", requested_slot="otp_code"))
    assert "482913" not in decide_on("el codigo es 482913", state).text


def test_the_card_memory_is_left_alone_by_keywords_and_updated_by_everything_else():
    assert decide_on("BAJA", AFTER_CARD).held_card_data is None
    assert decide_on("cancelar", WAITING).held_card_data is None
    assert decide_on(CARD, IDLE).held_card_data is True
    assert decide_on("hola", AFTER_CARD).held_card_data is False


def test_only_cancelar_needs_the_form_and_only_opt_in_words_the_opt_out_state():
    assert facts_needed("Cancelar").form_active and not facts_needed("Cancelar").opted_out
    assert facts_needed("ALTA").opted_out and not facts_needed("ALTA").form_active
    assert facts_needed("hola") == facts_needed("BAJA") == facts_needed("hola").__class__(False, False)


def test_the_rest_channel_screening_shares_the_card_memory():
    memory = InProcessMemory()
    assert screen_for_bot(memory, PHONE, CARD) == "/card_data"
    assert screen_for_bot(memory, PHONE, "123") == "/card_data"
    assert screen_for_bot(memory, PHONE, "hola") == "hola"
    assert screen_for_bot(memory, PHONE, "123") == "123"


@pytest.mark.parametrize(
    ("typed", "bot_reads"),
    [
        ("/human_handoff", "human_handoff"),
        ('  /inform{"order_id":"PED-1003"}', 'inform{"order_id":"PED-1003"}'),
        ("／handoff_returned", "handoff_returned"),
        ('/rate_handoff{"score":5}', 'rate_handoff{"score":5}'),
        ("\u3000/ / /restart", "restart"),  # full-width space, several slashes
        ("/", "／"),
        ("hola / adiós", "hola / adiós"),  # a slash inside the text is the customer's own
    ],
)
def test_text_a_customer_types_never_reaches_rasa_as_a_command(typed, bot_reads):
    assert neutralise_command(typed) == bot_reads
    decision = decide_on(typed, IDLE)
    assert decision.route is Route.TO_BOT
    assert not decision.text.strip().startswith("/")
    # Neither does it through the REST channel, unless its caller vouches for a command.
    assert not screen_for_bot(InProcessMemory(), PHONE, typed).strip().startswith("/")


def test_the_channels_own_payloads_still_reach_rasa_as_commands():
    assert decide_on("2", ON_SCREEN).text == OPTIONS[1]["payload"]  # a numbered option picked
    handoff = ({"title": "Hablar con persona", "payload": "/human_handoff"},)
    assert decide_on("1", ConversationState(pending_buttons=handoff)).text == "/human_handoff"
    assert decide_on("/human_handoff", ConversationState(pending_buttons=handoff)).text != "/human_handoff"
    assert decide_on(f"/inform {CARD}", IDLE).text == "/card_data"  # card data is still screened
    assert decide_on("/ es URGENTE", IDLE).text == "/human_handoff"  # and escalation still applies
    location = parse_inbound(inbound_form(PHONE, "", Latitude="19.4", Longitude="-99.1"), "MX")
    assert decide(location, IDLE, CONFIG).text.startswith("/share_location")
    assert screen_for_bot(InProcessMemory(), PHONE, "/restart", command=True) == "/restart"


@pytest.mark.parametrize(
    "word",
    ["cancelar", "salir", "sali", "quiero salir", "Mejor no", "dejalo", "olvídalo", "no gracias", "chau"],
)
def test_the_leave_words_of_both_forms_are_one_table(word):
    assert keywords.leaves_form(word)


def test_a_sentence_is_not_a_keyword():
    assert not keywords.leaves_form("quiero cancelar mi pedido")
    assert keywords.keyword_of("stop con los mensajes") is None


def test_the_rules_and_the_memory_load_without_rasa():
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, bot.messaging.inbound_rules, bot.messaging.memory, bot.messaging.keywords;"
            "top = {m.split('.')[0] for m in sys.modules};"
            "print(sorted(top & {'rasa', 'rasa_sdk', 'actions', 'connectors'}))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert loaded.stdout.strip() == "[]"


# --- a card number split across two messages ---


def test_a_message_ending_in_digits_leaves_them_for_the_next_and_goes_on_as_written():
    first = decide_on("mi tarjeta es 4111 1111", IDLE)
    assert (first.route, first.text, first.held_card_data) == (Route.TO_BOT, "mi tarjeta es 4111 1111", False)
    assert first.card_tail == "4111 1111"


def test_the_second_half_of_a_split_card_is_card_data_and_says_how_much_the_first_held():
    second = decide_on("1111 1111", ConversationState(card_tail="4111 1111"))
    assert (second.route, second.text, second.held_card_data, second.card_tail) == (
        Route.TO_BOT, "/card_data", True, "",
    )  # fmt: skip
    assert second.metadata[CARRIED_CARD_DIGITS] == 8
    assert decide_on("123", AFTER_CARD).text == "/card_data"  # its CVV next, as after a whole card


def test_the_second_half_of_a_split_card_typed_to_an_agent_is_masked():
    decision = decide_on("1111 1111", ConversationState(handoff=HandoffState("open"), card_tail="4111 1111"))
    assert decision.route is Route.TO_AGENT and decision.text == CARD_MASK
    assert decision.advise_against_card_data and decision.held_card_data


def test_screen_for_bot_catches_a_split_card_through_the_memory():
    memory = InProcessMemory()
    assert screen_for_bot(memory, PHONE, "4111 1111") == "4111 1111"
    assert screen_for_bot(memory, PHONE, "1111 1111") == "/card_data"
    assert screen_for_bot(memory, PHONE, "123") == "/card_data"
    assert screen_for_bot(memory, PHONE, "1111 1111") == "1111 1111"  # the tail was used up


def test_a_code_typed_for_an_agents_code_prompt_is_not_kept_as_a_card_start():
    prompt = ConversationState(handoff=HandoffState("open", requested_slot="otp_code"))
    assert decide_on("482913", prompt).card_tail == ""
    assert decide_on("482913", WITH_AGENT).card_tail == "482913"
