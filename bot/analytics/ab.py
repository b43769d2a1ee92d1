"""A/B tests of microcopy compared: each variant's sessions, containment and "¿Te sirvió?" yes-rate,
each against the experiment's first variant with a two-proportion z-test. Plain functions.

docs/kpis.md, "A/B tests of microcopy", defines every figure; the z-test is the textbook pooled
one, two-sided: p = (x1 + x2) / (n1 + n2), z = (x1/n1 − x2/n2) / √(p (1 − p) (1/n1 + 1/n2)),
p-value = erfc(|z| / √2) (= 2 (1 − Φ(|z|))).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


def two_proportion_p_value(x1: int, n1: int, x2: int, n2: int) -> float | None:
    """The two-sided p-value that x1/n1 and x2/n2 differ only by chance; None when it cannot be
    computed (an empty group, or both groups all successes or all failures)."""
    if n1 <= 0 or n2 <= 0:
        return None
    pooled = (x1 + x2) / (n1 + n2)
    variance = pooled * (1 - pooled) * (1 / n1 + 1 / n2)
    if variance <= 0:
        return None
    z = (x1 / n1 - x2 / n2) / math.sqrt(variance)
    return math.erfc(abs(z) / math.sqrt(2))


@dataclass
class VariantFigures:
    """One variant's sessions of the period (exposed to it) and its "¿Te sirvió?" answers."""

    experiment: str
    variant: str
    sessions: int = 0
    contained: int = 0
    answers: int = 0
    yes: int = 0
    containment_p: float | None = None  # against the experiment's first variant; None for it
    yes_rate_p: float | None = None

    @property
    def containment(self) -> float | None:
        return self.contained / self.sessions if self.sessions else None

    @property
    def yes_rate(self) -> float | None:
        return self.yes / self.answers if self.answers else None


def compare(variants: list[VariantFigures]) -> list[VariantFigures]:
    """Sorted by experiment and variant; the first variant of each experiment (alphabetically) is
    the reference, and every other gets its p-values against it."""
    ordered = sorted(variants, key=lambda v: (v.experiment, v.variant))
    reference: VariantFigures | None = None
    for figures in ordered:
        if reference is None or reference.experiment != figures.experiment:
            reference = figures
            continue
        figures.containment_p = two_proportion_p_value(
            figures.contained, figures.sessions, reference.contained, reference.sessions
        )
        figures.yes_rate_p = two_proportion_p_value(
            figures.yes, figures.answers, reference.yes, reference.answers
        )
    return ordered
