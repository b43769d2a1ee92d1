"""A/B tests of microcopy declared in domain.yml: which variant of a response a customer sees.

A designer declares an experiment in the responses themselves (docs/designing.md, "Variants"):
every variation of the response has an `id` (the variant's name) and
`metadata: {experiment: <name>}`. Rasa would pick a variation at random per message; the
assistant's NLG (connectors/nlg.py) instead picks `variant_for(conversation, experiment)`, a
digest of both, so a customer sees the same variant every time, and records it on the bot's
event (`experiment`, `variant`) for analytics to compare outcomes per variant.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

EXPERIMENT_KEY, VARIANT_KEY = "experiment", "variant"  # on the bot event's metadata


class ExperimentError(ValueError):
    """A response declares an experiment the assistant cannot run as written."""


@dataclass(frozen=True)
class Experiment:
    name: str
    response: str
    variants: tuple[str, ...]  # in the order domain.yml writes them


def experiment_name(variation: Mapping[str, Any]) -> str | None:
    metadata = variation.get("metadata")
    name = metadata.get(EXPERIMENT_KEY) if isinstance(metadata, Mapping) else None
    return str(name) if name else None


def variant_index(conversation_id: str, experiment: str, count: int) -> int:
    """0..count-1 from SHA-256 of "<experiment>:<conversation_id>" (its first 8 bytes, big-endian,
    modulo count): the same customer and experiment always give the same variant, and separate
    experiments split customers independently."""
    digest = hashlib.sha256(f"{experiment}:{conversation_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % count


def pick_variation(
    conversation_id: str, variations: Sequence[Mapping[str, Any]]
) -> tuple[Mapping[str, Any], str, str] | None:
    """(variation, experiment, variant) among `variations` (those Rasa found suitable for the
    channel and slots) when they declare an experiment; None when they declare none. Variations
    of another experiment or of none are left out of the draw."""
    named = [(variation, experiment_name(variation)) for variation in variations]
    experiment = next((name for _, name in named if name), None)
    if experiment is None:
        return None
    candidates = [variation for variation, name in named if name == experiment and variation.get("id")]
    if not candidates:
        return None
    chosen = candidates[variant_index(conversation_id, experiment, len(candidates))]
    return chosen, experiment, str(chosen["id"])


def experiments_in(responses: Mapping[str, Sequence[Mapping[str, Any]]]) -> dict[str, Experiment]:
    """Every experiment the domain's responses declare, checked: one response per experiment, and
    in that response every variation in the experiment with an `id` of its own."""
    found: dict[str, Experiment] = {}
    for response, variations in responses.items():
        names = {experiment_name(variation) for variation in variations}
        declared = names - {None}
        if not declared:
            continue
        if len(declared) > 1 or None in names:
            raise ExperimentError(f"{response}: every variation must name the same experiment")
        (name,) = declared
        if name in found:
            raise ExperimentError(f"experiment {name}: declared by {found[name].response} and {response}")
        ids = [str(variation.get("id") or "") for variation in variations]
        if not all(ids) or len(set(ids)) != len(ids):
            raise ExperimentError(f"{response}: each variation of experiment {name} needs an id of its own")
        if len(ids) < 2:
            raise ExperimentError(f"{response}: experiment {name} needs two variants or more")
        found[name] = Experiment(name, response, tuple(ids))
    return found
