"""What happens to a customer's message before Rasa: one pure decision the channel carries out.

The rules, in the order they apply:
1. During a handoff the message goes to the person, screened for card data (and for digits when
   it answers a code prompt). "cancelar" / "ya no" while still waiting withdraws the request.
   Opt-out words other than "cancelar" still opt out, handoff or not.
2. An opt-out word ("BAJA", "STOP") opts the number out; "cancelar" does so only when no question
   is open (options on screen or a form running): otherwise it answers the question. An opt-in
   word ("ALTA") opts an opted-out number back in; from anyone else it is just a message.
3. Everything else goes to the bot: a tapped WhatsApp button or list item becomes its payload
   when its id is one of the options on screen, or when the id is a notification's signed link
   (a template's button: the link is its own credential, checked by the channel before Rasa);
   any other id is ignored and the text is read as typed. Card data becomes the card_data
   intent, a number or word answering the options on screen becomes that option's payload ("sí
   gracias" / "no me sirvió" too, when the options are "¿Te sirvió?"'s: bot/feedback.py), and
   angry or urgent wording becomes a request for a person that keeps what was written. A typed
   text starting with "/" (or "／") loses the slash: only the channel's own payloads reach Rasa
   as "/intent" commands.

The channel reads the conversation's state (see `facts_needed` for the two reads that cost a
query and are only made for some words), calls `decide`, and does what the decision says.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from bot.choices import fold, pick_choice
from bot.deep_links import is_link_payload
from bot.feedback import answer_payload, is_feedback_payload, typed_answer
from bot.handoff.config import HandoffConfig
from bot.handoff.packet import is_secret_slot, mask_customer_text
from bot.handoff.rules import language_reason
from bot.masking import (
    CARD_DATA_INTENT,
    CARRIED_CARD_DIGITS,
    card_tail,
    mask_card_data,
    mask_sensitive,
    screen_message,
)
from bot.messaging import keywords
from bot.messaging.buttons import payload_for_id
from bot.messaging.inbound import InboundMessage, rasa_text
from bot.messaging.keywords import Keyword, keyword_of
from bot.messaging.memory import Button, ConversationMemory

HANDOFF_INTENT = "/human_handoff"


@dataclass(frozen=True)
class HandoffState:
    """The conversation's active handoff: "waiting" for a person or "open" with one."""

    status: str
    requested_slot: str | None = None  # the form's question when it was handed over


@dataclass(frozen=True)
class ConversationState:
    handoff: HandoffState | None = None
    pending_buttons: tuple[Button, ...] = ()
    after_card: bool = False  # the previous message held a card number
    card_tail: str = ""  # the digits the previous message ended with (bot.masking.card_tail)
    form_active: bool = False  # read only when `facts_needed(...).form_active`
    opted_out: bool = False  # read only when `facts_needed(...).opted_out`


@dataclass(frozen=True)
class FactsNeeded:
    form_active: bool
    opted_out: bool


class Route(str, Enum):
    WITHDRAW_HANDOFF = "withdraw_handoff"  # end the waiting handoff, tell the customer
    TO_AGENT = "to_agent"  # store `text` for the agent (advise against card data if so)
    OPT_OUT = "opt_out"
    OPT_IN = "opt_in"
    TO_BOT = "to_bot"  # UserMessage(text, metadata=metadata)


@dataclass(frozen=True)
class InboundDecision:
    route: Route
    text: str = ""  # TO_AGENT: the masked text for the agent; TO_BOT: what Rasa reads
    metadata: dict[str, Any] = field(default_factory=dict)  # TO_BOT: the tracker's metadata
    advise_against_card_data: bool = False  # TO_AGENT: card data typed to a person
    held_card_data: bool | None = None  # the card memory's new value; None: leave it
    card_tail: str = ""  # with held_card_data: the digits a card in the next message may continue
    answered_buttons: bool = False  # forget the options on screen


def facts_needed(text: str) -> FactsNeeded:
    """Which costly facts `decide` needs for this text: a form running only for "cancelar", the
    opt-out state only for an opt-in word. The others may be left at their defaults."""
    word = fold(text)
    return FactsNeeded(
        form_active=word in keywords.OPT_OUT_WHEN_IDLE,
        opted_out=keyword_of(text) is Keyword.OPT_IN,
    )


def decide(message: InboundMessage, state: ConversationState, config: HandoffConfig) -> InboundDecision:
    """The one decision for one inbound message; see the module docstring for the rules."""
    word, keyword = fold(message.text), keyword_of(message.text)
    if state.handoff is not None:
        if state.handoff.status == "waiting" and word in keywords.WITHDRAW_HANDOFF:
            return InboundDecision(Route.WITHDRAW_HANDOFF)
        if keyword is None or word in keywords.OPT_OUT_WHEN_IDLE:
            return _to_agent(message, state)
    if keyword is Keyword.OPT_OUT:
        question_open = bool(state.pending_buttons) or state.form_active
        if not (word in keywords.OPT_OUT_WHEN_IDLE and question_open):
            return InboundDecision(Route.OPT_OUT)
    elif keyword is Keyword.OPT_IN and state.opted_out:
        return InboundDecision(Route.OPT_IN)
    return _to_bot(message, state, config)


def _to_agent(message: InboundMessage, state: ConversationState) -> InboundDecision:
    # The same card screening as for the bot (a lone CVV right after a card number too): the
    # agent, the handoff tables and the tracker only ever get the masked text.
    screened = mask_card_data(message.text, after_card=state.after_card, carried=state.card_tail)
    answering_secret = state.handoff is not None and is_secret_slot(state.handoff.requested_slot)
    card_data = screened.changed or message.card_data
    return InboundDecision(
        Route.TO_AGENT,
        text=mask_customer_text(screened.text, answering_secret),
        advise_against_card_data=card_data,
        held_card_data=card_data,
        # A code typed for the agent's prompt is not kept as a card's possible start.
        card_tail="" if card_data or answering_secret else card_tail(screened.text),
    )


# Rasa reads a text that starts with "/" (after str.strip(), so after any Unicode whitespace) as
# "/intent{entities}" and skips NLU (rasa.shared...YAMLStoryReader.unpack_regex_message, run by
# the RegexMessageHandler). The full-width "／" is not read so today, but is dropped as well in
# case some normalisation (NFKC) turns it into "/" on the way.
COMMAND_PREFIXES = "/\uff0f"


def neutralise_command(text: str) -> str:
    """Text a customer typed, made unreadable as a Rasa command and still readable for NLU: the
    leading slashes (and the whitespace around them) are dropped, the rest is kept as written.
    "/human_handoff" becomes "human_handoff"; a text without a leading slash is returned as is.
    The rest is not touched: a "/" inside the text, or after a word, is never read as a command."""
    stripped = text.strip()
    if not stripped.startswith(tuple(COMMAND_PREFIXES)):
        return text
    while stripped and (stripped[0] in COMMAND_PREFIXES or stripped[0].isspace()):
        stripped = stripped[1:]
    return stripped or "\uff0f"  # slashes alone: one full-width slash, not an empty message


def _to_bot(message: InboundMessage, state: ConversationState, config: HandoffConfig) -> InboundDecision:
    tapped = payload_for_id(message.tapped_id, state.pending_buttons) if message.tapped_id else None
    if tapped is None and is_link_payload(message.tapped_id):
        # A template's button that opens a flow (bot/messaging/templates.py): its id is the
        # notification's signed link itself, its own credential, checked by the channel.
        tapped = message.tapped_id
    if tapped is not None:
        # A WhatsApp button or list item the bot offered in this conversation: its payload, as
        # the numbered answer would give. An id that names none of them (stale or forged) is
        # ignored and the message is read as the text it carries, below.
        metadata = message.metadata()
        return InboundDecision(
            Route.TO_BOT, text=tapped, metadata=metadata, held_card_data=False, answered_buttons=True
        )
    # Only the channel's own intents (a location, a bare attachment, card data, a picked option,
    # an escalation) reach Rasa as commands: what the customer typed never does.
    text = rasa_text(message)
    if text == message.text:
        text = neutralise_command(text)
    # payments (issue 6): card data never reaches Rasa, its logs or its tracker store.
    screened = screen_message(text, after_card=state.after_card, carried=state.card_tail)
    card_data = screened.card_data or message.card_data  # masked before it was journaled
    text = f"/{CARD_DATA_INTENT}" if card_data else screened.text
    if state.pending_buttons and not text.startswith("/"):
        picked = pick_choice(text, [button["title"] for button in state.pending_buttons])
        if picked is not None:
            text = state.pending_buttons[picked]["payload"]
        else:
            text = _feedback_answer(text, state.pending_buttons) or text
    metadata = message.metadata()
    if screened.carried:
        # The previous message began this card: the tracker store masks its stored digits too.
        metadata = {**metadata, CARRIED_CARD_DIGITS: screened.carried}
    reason = language_reason(text, config) if text and not text.startswith("/") else None
    if reason is not None:
        # Angry or urgent wording becomes a request for a person, keeping what was written.
        metadata = {**metadata, "handoff_reason": reason.value, "original_text": mask_sensitive(text)}
        text = HANDOFF_INTENT
    return InboundDecision(
        Route.TO_BOT,
        text=text,
        metadata=metadata,
        held_card_data=card_data,
        card_tail="" if card_data else screened.tail,
        answered_buttons=bool(state.pending_buttons),
    )


def _feedback_answer(text: str, pending: tuple[Button, ...]) -> str | None:
    """The payload of "¿Te sirvió?" that a typed "sí gracias" or "no me sirvió" means, when that
    question is the one on screen (bot/feedback.py); None otherwise."""
    offered = {button["payload"] for button in pending}
    answer = typed_answer(text) if any(is_feedback_payload(payload) for payload in offered) else None
    payload = answer_payload(answer) if answer else None
    return payload if payload in offered else None


def screen_for_bot(
    memory: ConversationMemory, conversation_id: str, text: str, *, command: bool = False
) -> str:
    """Card screening alone, with the shared card memory, for channels without the other rules
    (the REST channel): card data becomes the card_data intent, a CVV after a card too. A leading
    "/" is neutralised unless the caller vouches for `command` (a button payload it produced)."""
    if not command:
        text = neutralise_command(text)
    card = memory.card_context(conversation_id)
    screened = screen_message(text, after_card=card.after_card, carried=card.tail)
    memory.remember_card(conversation_id, screened.card_data, screened.tail)
    return screened.text
