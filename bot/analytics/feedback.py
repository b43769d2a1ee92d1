"""The "¿Te sirvió?" answers and the A/B variants shown, read from a conversation's kept events:
plain functions, no database (the store rebuilds both tables from them, like the sessions).

An answer is the customer's next message after the question, when it is the question's payload
(/flow_feedback{"feedback_useful": "yes" | "no"}): it rates the flow the question's bot event
names (`rated_flow`). Any other message leaves the question unanswered (ignored), and a second
answer to the same question does not count. An exposure is every bot event that carries an
experiment and its variant (connectors/nlg.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from bot.experiments import EXPERIMENT_KEY, VARIANT_KEY
from bot.feedback import FEEDBACK_ENTITY, FEEDBACK_INTENT, NO, RATED_FLOW_KEY, YES


@dataclass(frozen=True)
class FeedbackFacts:
    """One answer to "¿Te sirvió?": the flow it rates, and the question's A/B variant if any."""

    conversation_id: str
    at: datetime
    flow: str
    useful: bool
    experiment: str | None = None
    variant: str | None = None


@dataclass(frozen=True)
class ExposureFacts:
    """A response of an A/B experiment shown to the customer, in the variant they were given."""

    conversation_id: str
    at: datetime
    experiment: str
    variant: str


def _moment(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, timezone.utc)


def _answer(event: Mapping[str, Any]) -> str | None:
    parse_data = event.get("parse_data") or {}
    if (parse_data.get("intent") or {}).get("name") != FEEDBACK_INTENT:
        return None
    values = [e.get("value") for e in parse_data.get("entities") or [] if e.get("entity") == FEEDBACK_ENTITY]
    return values[0] if values and values[0] in (YES, NO) else None


def feedback_and_exposures(
    conversation_id: str, events: Iterable[Mapping[str, Any]]
) -> tuple[list[FeedbackFacts], list[ExposureFacts]]:
    """The answers and exposures of one conversation from its kept events (any order)."""
    ordered = sorted(events, key=lambda event: float(event.get("timestamp") or 0.0))
    answers: list[FeedbackFacts] = []
    exposures: list[ExposureFacts] = []
    question: Mapping[str, Any] | None = None  # the metadata of the question still open
    paused = False
    for event in ordered:
        kind = event.get("event")
        if kind == "session_started":
            question = None
        elif kind == "pause":
            paused, question = True, None
        elif kind == "resume":
            paused = False
        elif kind == "bot":
            metadata = event.get("metadata") or {}
            at = _moment(float(event.get("timestamp") or 0.0))
            if metadata.get(EXPERIMENT_KEY) and metadata.get(VARIANT_KEY):
                exposures.append(
                    ExposureFacts(
                        conversation_id,
                        at,
                        str(metadata[EXPERIMENT_KEY])[:64],
                        str(metadata[VARIANT_KEY])[:64],
                    )
                )
            if metadata.get(RATED_FLOW_KEY):
                question = metadata
        elif kind == "user" and not paused:
            answer = _answer(event)
            if question is not None and answer is not None:
                answers.append(
                    FeedbackFacts(
                        conversation_id=conversation_id,
                        at=_moment(float(event.get("timestamp") or 0.0)),
                        flow=str(question[RATED_FLOW_KEY])[:64],
                        useful=answer == YES,
                        experiment=question.get(EXPERIMENT_KEY),
                        variant=question.get(VARIANT_KEY),
                    )
                )
            question = None
    return answers, exposures
