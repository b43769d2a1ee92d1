"""The "¿Te sirvió? 1 Sí / 2 No" question after a flow that ended well: when to ask it, and how a
typed answer is read. Plain functions: the actions and the channel's inbound rules call them.

The answer reaches Rasa only as the question's payload, /flow_feedback{"feedback_useful":"yes"}
(or "no"): a tapped button gives it, "1" / "2" give it as numbered options, and `typed_answer`
reads "sí gracias" or "no me sirvió" while the question is the one on screen. Anything else the
customer writes goes to NLU as usual: an ignored question is simply left behind.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bot.choices import fold
from bot.messaging.keywords import FEEDBACK_COURTESY, FEEDBACK_NO, FEEDBACK_YES

FEEDBACK_INTENT = "flow_feedback"
FEEDBACK_ENTITY = "feedback_useful"
QUESTION_RESPONSE = "utter_ask_feedback"
RATED_FLOW_KEY = "rated_flow"  # the key the question's bot event carries the rated flow under
YES, NO = "yes", "no"


def answer_payload(useful: str) -> str:
    """The payload of the "Sí" (yes) or "No" (no) button, as domain.yml writes it."""
    return f'/{FEEDBACK_INTENT}{{"{FEEDBACK_ENTITY}":"{useful}"}}'


def is_feedback_payload(payload: str) -> bool:
    return payload.startswith(f"/{FEEDBACK_INTENT}{{")


def typed_answer(text: str) -> str | None:
    """YES or NO when the whole message says so ("sí, gracias", "no me sirvio", "Nop"), else None.

    Only the courtesy words around the answer are dropped; a sentence that says more ("no, quiero
    cambiar la fecha") is not an answer and goes to NLU."""
    words = [word for word in fold(text).split() if word not in FEEDBACK_COURTESY]
    said = " ".join(words)
    if said in FEEDBACK_YES:
        return YES
    if said in FEEDBACK_NO:
        return NO
    return None


@dataclass(frozen=True)
class EarlierQuestion:
    """A "¿Te sirvió?" already asked in this session: what it rated and whether it was answered."""

    flow: str
    answered: bool


def should_ask(flow: str, earlier: Sequence[EarlierQuestion], *, handed_over: bool, in_form: bool) -> bool:
    """Whether to ask after `flow` ended well, given this session's earlier questions.

    Not when a person took part in the session (they were asked their 1-5), not while a form
    goes on (its own question comes next and would bury this one), not after a question the
    customer left unanswered (they moved on: no asking twice in a row), and not for a flow the
    customer already rated in this session."""
    if handed_over or in_form or not flow:
        return False
    if earlier and not earlier[-1].answered:
        return False
    return all(question.flow != flow for question in earlier)


@dataclass(frozen=True)
class SessionSoFar:
    """What `should_ask` needs from the conversation's current session."""

    earlier: tuple[EarlierQuestion, ...]
    handed_over: bool


def session_so_far(events: Sequence[dict], handoff_action: str = "action_handoff") -> SessionSoFar:
    """The questions asked since the last `session_started` (Rasa events as dicts: the tracker's
    as rasa_sdk hands them over), each answered when the customer's next message was its answer."""
    start = max((i for i, event in enumerate(events) if event.get("event") == "session_started"), default=-1)
    asked: list[list] = []  # [flow, answered] in order
    waiting = False  # the last question has had no customer message yet
    handed_over = False
    for event in events[start + 1 :]:
        kind = event.get("event")
        if kind == "bot" and (event.get("metadata") or {}).get(RATED_FLOW_KEY):
            asked.append([event["metadata"][RATED_FLOW_KEY], False])
            waiting = True
        elif kind == "user":
            intent = ((event.get("parse_data") or {}).get("intent") or {}).get("name")
            if waiting and intent == FEEDBACK_INTENT:
                asked[-1][1] = True
            waiting = False
        elif kind == "action" and event.get("name") == handoff_action:
            handed_over = True
    return SessionSoFar(tuple(EarlierQuestion(flow, answered) for flow, answered in asked), handed_over)
