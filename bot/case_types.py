"""The catalogue of case types (bot/case_types.yml): label, SLA, team, required data and the
"what happens next" line of every kind of case, loaded once and checked with errors that name
the file and the key to fix.

Designers add a type in the YAML without Python; the kinds the bot opens (CaseKind) each map to
exactly one type, so every case the bot opens has an SLA and a team.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from bot.records import Case, CaseKind

CATALOGUE = Path(__file__).resolve().parent / "case_types.yml"
FALLBACK = "generic"
_FIELDS = {
    "label",
    "sla_hours",
    "team",
    "required",
    "next_step",
    "kinds",
    "intents",
    "eligibility",
    "customer_updates",
}
# The checks a type's `eligibility:` may list; bot/returns.py applies them (with the categories
# of bot/return_rules.yml) before a case of the type is opened by the guided return flow.
ELIGIBILITY_CHECKS = ("delivered", "within_return_window", "returnable_category")
_MAX_SLA_HOURS = 24 * 90
# The statuses an agent moves a case to that the customer is told of, by `customer_updates:`
# (closing asks the 1-5 question instead); and what their texts may name.
UPDATED_STATUSES = ("in_progress", "waiting_customer", "resolved")
UPDATE_FIELDS = ("id", "label", "order_id", "item")
# A type's own `customer_updates:` may give a status one text per value of the case's
# `resolution` detail (a return closed as a refund, a voucher or an exchange).
RESOLUTION_DETAIL = "resolution"


class CaseCatalogueError(ValueError):
    """The catalogue file is broken; the message names the file and the key."""


@dataclass(frozen=True)
class CaseType:
    """One type of case as the catalogue declares it."""

    id: str
    label: str
    sla_hours: int
    team: str
    required: dict[str, str]  # detail key -> its Spanish name
    next_step: str
    kinds: tuple[CaseKind, ...]
    intents: tuple[str, ...] = ()
    eligibility: tuple[str, ...] = ()  # ELIGIBILITY_CHECKS this type's cases must pass
    # status -> resolution (or "default") -> text: what the customer is told, ahead of the
    # catalogue-wide `customer_updates`
    customer_updates: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def sla(self) -> timedelta:
        return timedelta(hours=self.sla_hours)

    def due_at(self, case: Case) -> datetime:
        """When the case should be resolved: its opening plus the type's SLA."""
        return case.opened_at + self.sla

    def missing(self, case: Case) -> list[str]:
        """The Spanish names of the required data the case does not carry."""
        return [name for key, name in self.required.items() if not case.details.get(key)]


@dataclass(frozen=True)
class CaseCatalogue:
    """Every case type, by id, and which type each kind of case the bot opens is."""

    types: dict[str, CaseType]
    _by_kind: dict[CaseKind, str]
    _by_intent: dict[str, str]
    customer_updates: dict[str, str] = field(default_factory=dict)  # status -> text for the customer

    def type_of(self, case: Case) -> CaseType:
        """The case's type: the intent that opened it if the catalogue names it, else its kind."""
        by_intent = self._by_intent.get(case.details.get("intent", ""))
        if by_intent is not None:
            return self.types[by_intent]
        return self.types[self._by_kind.get(case.kind, FALLBACK)]

    def update_for(self, case: Case, status: str) -> str | None:
        """What the customer is told when an agent moves their case to `status`, if anything."""
        case_type = self.type_of(case)
        own = case_type.customer_updates.get(status) or {}
        text = own.get(case.details.get(RESOLUTION_DETAIL, "")) or own.get("default")
        text = text or self.customer_updates.get(status)
        if not text:
            return None
        return text.format(
            id=case.id,
            label=case_type.label,
            order_id=case.details.get("order_id", ""),
            item=case.details.get("item", ""),
        )


def _fail(path: Path, key: str, problem: str) -> CaseCatalogueError:
    return CaseCatalogueError(f"{path}: {key}: {problem}")


def _text(path: Path, key: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _fail(path, key, "must be a non-empty text")
    return " ".join(value.split())


def _case_type(path: Path, type_id: str, raw: Any) -> CaseType:
    where = f"types.{type_id}"
    if not isinstance(raw, Mapping):
        raise _fail(path, where, "must be a mapping of label, sla_hours, team, required, next_step, kinds")
    unknown = sorted(set(raw) - _FIELDS)
    if unknown:
        raise _fail(path, f"{where}.{unknown[0]}", f"unknown field (known: {', '.join(sorted(_FIELDS))})")
    for name in ("label", "sla_hours", "team", "required", "next_step", "kinds"):
        if name not in raw:
            raise _fail(path, f"{where}.{name}", "is missing")
    sla = raw["sla_hours"]
    if isinstance(sla, bool) or not isinstance(sla, int) or not 1 <= sla <= _MAX_SLA_HOURS:
        raise _fail(path, f"{where}.sla_hours", f"must be a whole number of hours, 1 to {_MAX_SLA_HOURS}")
    required = raw["required"]
    if not isinstance(required, Mapping) or not required:
        raise _fail(path, f"{where}.required", "must map each detail key to its Spanish name")
    needed = {
        _text(path, f"{where}.required", str(key)): _text(path, f"{where}.required.{key}", name)
        for key, name in required.items()
    }
    kinds_raw = raw["kinds"]
    if not isinstance(kinds_raw, list):
        raise _fail(path, f"{where}.kinds", "must be a list of case kinds (it may be empty: [])")
    kinds = []
    for kind in kinds_raw:
        try:
            kinds.append(CaseKind(kind))
        except ValueError:
            known = ", ".join(item.value for item in CaseKind)
            raise _fail(path, f"{where}.kinds", f"{kind!r} is not a case kind (known: {known})") from None
    intents = raw.get("intents") or []
    if not isinstance(intents, list) or not all(isinstance(item, str) and item for item in intents):
        raise _fail(path, f"{where}.intents", "must be a list of intent names")
    eligibility = raw.get("eligibility") or []
    if not isinstance(eligibility, list) or any(check not in ELIGIBILITY_CHECKS for check in eligibility):
        raise _fail(path, f"{where}.eligibility", f"must list checks among: {', '.join(ELIGIBILITY_CHECKS)}")
    own_updates = raw.get("customer_updates") or {}
    if not isinstance(own_updates, Mapping):
        raise _fail(path, f"{where}.customer_updates", "must map statuses to a text or texts by resolution")
    updates: dict[str, dict[str, str]] = {}
    for status, texts in own_updates.items():
        by_resolution = texts if isinstance(texts, Mapping) else {"default": texts}
        at = f"{where}.customer_updates.{status}"
        updates[status] = {
            str(resolution): _update_text(path, f"{at}.{resolution}", status, text)
            for resolution, text in by_resolution.items()
        }
    return CaseType(
        id=type_id,
        label=_text(path, f"{where}.label", raw["label"]),
        sla_hours=sla,
        team=_text(path, f"{where}.team", raw["team"]),
        required=needed,
        next_step=_text(path, f"{where}.next_step", raw["next_step"]),
        kinds=tuple(kinds),
        intents=tuple(intents),
        eligibility=tuple(eligibility),
        customer_updates=updates,
    )


def _update_text(path: Path, where: str, status: str, text: Any) -> str:
    """A customer update's text, checked: a status they are told of, known {fields} only."""
    if status not in UPDATED_STATUSES:
        known = ", ".join(UPDATED_STATUSES)
        raise _fail(path, where, f"not a status the customer is told of (known: {known})")
    text = _text(path, where, text)
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}
    except ValueError as error:
        raise _fail(path, where, f"a brace is not closed ({error}); write {{id}} or {{label}}") from None
    unknown = sorted(names - set(UPDATE_FIELDS))
    if unknown:
        known = ", ".join(f"{{{name}}}" for name in UPDATE_FIELDS)
        raise _fail(path, where, f"{{{unknown[0]}}} is not known: only {known} are filled")
    return text


def _customer_updates(path: Path, raw: Any) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise _fail(path, "customer_updates", f"must map statuses ({', '.join(UPDATED_STATUSES)}) to a text")
    updates = {}
    for status, text in raw.items():
        updates[status] = _update_text(path, f"customer_updates.{status}", status, text)
    return updates


def parse_catalogue(raw: Any, path: Path = CATALOGUE) -> CaseCatalogue:
    """The catalogue from the YAML's data; CaseCatalogueError names the file and the key."""
    if not isinstance(raw, Mapping) or not isinstance(raw.get("types"), Mapping) or not raw["types"]:
        raise _fail(path, "types", "the file must hold a non-empty mapping `types:` of case types")
    types: dict[str, CaseType] = {}
    by_kind: dict[CaseKind, str] = {}
    by_intent: dict[str, str] = {}
    for type_id, body in raw["types"].items():
        if not isinstance(type_id, str) or not type_id.replace("_", "").isalnum() or not type_id.islower():
            raise _fail(path, f"types.{type_id}", "a type's id is lowercase letters, digits and _")
        case_type = _case_type(path, type_id, body)
        for kind in case_type.kinds:
            if kind in by_kind:
                raise _fail(
                    path, f"types.{type_id}.kinds", f"{kind.value} is already a kind of {by_kind[kind]}"
                )
            by_kind[kind] = type_id
        for intent in case_type.intents:
            if intent in by_intent:
                raise _fail(
                    path, f"types.{type_id}.intents", f"{intent} is already an intent of {by_intent[intent]}"
                )
            by_intent[intent] = type_id
        types[type_id] = case_type
    if FALLBACK not in types:
        raise _fail(path, f"types.{FALLBACK}", "is missing: the type of a case no other type claims")
    unmapped = [kind.value for kind in CaseKind if kind not in by_kind]
    if unmapped:
        raise _fail(path, "types.*.kinds", f"no type lists the case kind(s) {', '.join(unmapped)}")
    return CaseCatalogue(types, by_kind, by_intent, _customer_updates(path, raw.get("customer_updates")))


def load_catalogue(path: Path = CATALOGUE) -> CaseCatalogue:
    """Read and check the catalogue file."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise CaseCatalogueError(f"{path}: cannot be read ({error.strerror})") from error
    except yaml.YAMLError as error:
        raise CaseCatalogueError(f"{path}: is not valid YAML ({error})") from error
    return parse_catalogue(raw, path)


@lru_cache(maxsize=1)
def case_catalogue() -> CaseCatalogue:
    """The project's catalogue, read once per process."""
    return load_catalogue()
