"""The numbers of the external NLU check (issue 16), from (true label, prediction) pairs.

No Rasa and no model here: scripts/external_check.py classifies, this module counts, so the
counting is tested on a hand-made confusion (tests/unit/test_external_metrics.py).

- intent macro-F1: the mean F1 over the labels the source holds (its true labels), each F1
  from that label's precision and recall over every message of the source. A message the
  FallbackClassifier turned into nlu_fallback is a miss for its label and a prediction of no
  label, as `rasa test nlu` counts it.
- out-of-scope recall: of the off-topic messages, the share predicted out_of_scope.
- in-scope precision: of the messages predicted as a store intent (anything but out_of_scope
  and nlu_fallback), the share that are truly in scope: an off-topic message that starts a
  store flow is the costly error.
- confident misroutes: in-scope messages whose best intent (before the fallback) is wrong and
  that the fallback let through (confidence above its threshold): the customer is taken into
  the wrong flow without being asked. Counted over the in-scope messages (issue 16's target:
  at most 5%) and over the misrouted ones (how often the fallback misses a miss).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

FALLBACK = "nlu_fallback"
OUT_OF_SCOPE = "out_of_scope"


@dataclass(frozen=True)
class Prediction:
    text: str
    truth: str  # the label the source gives
    intent: str  # what the model answered after the FallbackClassifier (may be nlu_fallback)
    top_intent: str  # the classifier's best intent before the fallback
    confidence: float  # top_intent's confidence

    @property
    def in_scope(self) -> bool:
        return self.truth != OUT_OF_SCOPE

    @property
    def starts_store_flow(self) -> bool:
        return self.intent not in (OUT_OF_SCOPE, FALLBACK)

    @property
    def misrouted(self) -> bool:
        return self.in_scope and self.top_intent != self.truth


def ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def per_label(predictions: list[Prediction]) -> dict[str, dict[str, float | int]]:
    """Precision, recall, F1 and support of each true label of the source."""
    labels = sorted({p.truth for p in predictions})
    rows: dict[str, dict[str, float | int]] = {}
    for label in labels:
        hits = sum(1 for p in predictions if p.truth == label and p.intent == label)
        predicted = sum(1 for p in predictions if p.intent == label)
        support = sum(1 for p in predictions if p.truth == label)
        precision = hits / predicted if predicted else 0.0
        recall = hits / support
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        rows[label] = {"precision": precision, "recall": recall, "f1": f1, "support": support}
    return rows


def score(predictions: list[Prediction], threshold: float) -> dict:
    """Every number of one source; None where the source has nothing to measure it on."""
    if not predictions:
        raise ValueError("a source without messages cannot be scored")
    labels = per_label(predictions)
    off_topic = [p for p in predictions if not p.in_scope]
    in_scope = [p for p in predictions if p.in_scope]
    into_flows = [p for p in predictions if p.starts_store_flow]
    misrouted = [p for p in in_scope if p.misrouted]
    confident = [p for p in misrouted if p.intent != FALLBACK and p.confidence > threshold]
    return {
        "messages": len(predictions),
        "in_scope_messages": len(in_scope),
        "out_of_scope_messages": len(off_topic),
        "accuracy": sum(1 for p in predictions if p.intent == p.truth) / len(predictions),
        "macro_f1": sum(row["f1"] for row in labels.values()) / len(labels),
        "out_of_scope_recall": ratio(sum(1 for p in off_topic if p.intent == OUT_OF_SCOPE), len(off_topic)),
        "in_scope_precision": ratio(sum(1 for p in into_flows if p.in_scope), len(into_flows)),
        "fallback_rate": ratio(sum(1 for p in predictions if p.intent == FALLBACK), len(predictions)),
        "misrouted_in_scope": len(misrouted),
        "confident_misroutes": len(confident),
        "confident_misroutes_of_in_scope": ratio(len(confident), len(in_scope)),
        "confident_misroutes_of_misrouted": ratio(len(confident), len(misrouted)),
        "per_label": labels,
    }


def destinations(predictions: list[Prediction], threshold: float) -> dict:
    """Where messages of labels the product lacked go (a missing-intents source). Once the
    product has the label, a message taken to it is `recognised`, not "another flow"."""
    counts = Counter(p.intent for p in predictions)
    # A person is the right way out for a request the assistant has no flow for; another flow is not.
    elsewhere = [p for p in predictions if p.starts_store_flow and p.intent not in ("human_handoff", p.truth)]
    confident = sum(1 for p in elsewhere if p.confidence > threshold)
    return {
        "messages": len(predictions),
        "recognised": sum(1 for p in predictions if p.intent == p.truth) / len(predictions),
        "predicted": dict(counts.most_common()),
        "fallback_rate": counts[FALLBACK] / len(predictions),
        "to_human_handoff": counts["human_handoff"] / len(predictions),
        "confidently_into_another_flow": confident / len(predictions),
        "per_label": {
            label: dict(Counter(p.intent for p in predictions if p.truth == label).most_common(3))
            for label in sorted({p.truth for p in predictions})
        },
    }
