"""Domain responses (domain.yml or domain/) rendered outside Rasa, for messages bot/ sends itself."""

from __future__ import annotations

import random
from functools import lru_cache

import yaml

from bot.settings import PROJECT_ROOT


@lru_cache(maxsize=1)
def domain_responses() -> dict[str, list[dict]]:
    domain_dir = PROJECT_ROOT / "domain"
    files = sorted(domain_dir.rglob("*.yml")) if domain_dir.is_dir() else [PROJECT_ROOT / "domain.yml"]
    responses: dict[str, list[dict]] = {}
    for path in files:
        responses.update((yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("responses") or {})
    return responses


def render(name: str, **values: str) -> str:
    """One variation of response `name`, its {placeholders} filled from `values`."""
    text = random.choice(domain_responses()[name])["text"]
    for key, value in values.items():
        text = text.replace("{" + key + "}", value)
    return text
