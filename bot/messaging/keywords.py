"""The one table of words that mean something whole: opting out or in, leaving a form, withdrawing.

Every word is compared folded (bot.choices.fold: lower case, no accents or punctuation), and only
as the whole message: "cancelar" is a keyword, "quiero cancelar mi pedido" is a sentence for NLU.
The channel, the REST channel and the form actions all read these sets; a word added here counts
everywhere at once.
"""

from __future__ import annotations

from enum import Enum

from bot.choices import fold

# Twilio's own opt-out and opt-in words and their Spanish counterparts (STOP / BAJA must opt out).
OPT_OUT = frozenset({"stop", "stopall", "unsubscribe", "cancel", "end", "quit", "baja", "alto", "cancelar"})
OPT_IN = frozenset({"start", "unstop", "yes", "alta", "iniciar"})
# Opt-out words that also answer a question in a conversation ("cancelar" leaves a form): they
# opt out only when no question of the bot's is open, and go to the agent during a handoff.
OPT_OUT_WHEN_IDLE = frozenset({"cancelar", "cancel"})

# While waiting for a person, these withdraw the request.
WITHDRAW_HANDOFF = frozenset(
    {"cancelar", "cancela", "cancelo", "ya no", "ya no gracias", "mejor no", "olvidalo", "ya no hace falta"}
)

# Answers that leave a form whatever NLU made of them ("cancelar" can read as cancel_order,
# "salir" as opt_out). The union of what the verification and rescheduling forms accepted.
LEAVE_FORM = frozenset(
    {
        "cancelar", "cancela", "cancelalo", "salir", "sali", "quiero salir", "mejor no", "dejalo",
        "ya no", "olvidalo", "no quiero", "no gracias", "basta", "chau", "stop",
    }
)  # fmt: skip

# Answers to "¿lo confirmo?" read without NLU (short words it may not be sure of).
CONFIRM_YES = frozenset(
    {"si", "sii", "sip", "dale", "ok", "okey", "confirmo", "confirmar", "si confirmo", "correcto"}
)
CONFIRM_NO = frozenset({"no", "nop", "otro", "otra", "elegir otro", "otro horario", "otro dia"})


# Answers to "¿Te sirvió?" typed instead of tapped (bot/feedback.py reads them, after dropping
# the courtesy words around them: "sí, muchas gracias" is "si"). "1" and "2" are read as the
# numbered options they are.
FEEDBACK_YES = frozenset(
    {
        "si", "sii", "siii", "sip", "sep", "claro", "me sirvio", "si me sirvio", "sirvio",
        "si sirvio", "si mucho", "perfecto", "excelente", "genial", "de una", "obvio", "todo bien",
        "si todo bien", "si resolvieron", "si resolviste", "si me ayudaste", "me ayudaste",
    }
)  # fmt: skip
FEEDBACK_NO = frozenset(
    {
        "no", "nop", "nel", "no me sirvio", "no sirvio", "no mucho", "para nada", "nada",
        "no me ayudo", "no me ayudaste", "no resolvieron", "no resolviste", "no realmente",
        "no la verdad", "la verdad no",
    }
)  # fmt: skip
FEEDBACK_COURTESY = frozenset({"gracias", "muchas", "mil", "ok", "oki", "bueno", "pues", "porfa", "jaja"})


class Keyword(str, Enum):
    OPT_OUT = "opt_out"
    OPT_IN = "opt_in"


def keyword_of(text: str) -> Keyword | None:
    """Whether the whole message is an opt-out or opt-in keyword ("BAJA", "stop.", "Alta!")."""
    word = fold(text)
    if word in OPT_OUT:
        return Keyword.OPT_OUT
    if word in OPT_IN:
        return Keyword.OPT_IN
    return None


def leaves_form(text: str) -> bool:
    """Whether the whole message is a way of leaving the form the customer is in."""
    return fold(text) in LEAVE_FORM
