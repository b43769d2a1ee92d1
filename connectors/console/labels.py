"""Spanish for the assistant's internal names in the agents' console: `order_status` is shown
as "Estado de pedido", `action_order_status` as "Consultó el estado del pedido".

The names come from labels.yml beside this module (designers edit it; a test fails when an
intent, custom action, form or slot of domain.yml has no label). A response (`utter_*`) needs no
entry: the console shows the start of its text from domain.yml ("Respondió: «¡Hola! Soy…»").
An unknown name is shown as it is, never hidden.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

LABELS_FILE = Path(__file__).with_name("labels.yml")
DOMAIN_FILE = Path(__file__).resolve().parents[2] / "domain.yml"
KINDS = ("intents", "actions", "forms", "slots")
RESPONSE_PREVIEW = 60  # characters of a response's text shown as its step


@dataclass(frozen=True)
class Labels:
    intents: dict[str, str] = field(default_factory=dict)
    actions: dict[str, str] = field(default_factory=dict)
    forms: dict[str, str] = field(default_factory=dict)
    slots: dict[str, str] = field(default_factory=dict)
    responses: dict[str, str] = field(default_factory=dict)  # utter_* -> the start of its text
    # A case's details: name -> {"label": ..., "values": {code: Spanish}} (labels.yml, case_details)
    case_details: dict[str, dict[str, Any]] = field(default_factory=dict)

    def intent(self, name: Any) -> str:
        return self.intents.get(str(name), str(name)) if name else "—"

    def form(self, name: Any) -> str:
        return self.forms.get(str(name), str(name)) if name else "—"

    def slot(self, name: Any) -> str:
        return self.slots.get(str(name), str(name))

    def detail(self, name: Any) -> str:
        """A case detail's name in Spanish: `media_url_2` as "Foto o archivo 2"; unknown as it is."""
        name = str(name)
        base, _, number = name.rpartition("_")
        if name not in self.case_details and base in self.case_details and number.isdigit():
            return f"{self.detail(base)} {number}"
        return str(self.case_details.get(name, {}).get("label", name))

    def detail_value(self, value: Any, name: Any) -> str:
        """A case detail's value: a code of that detail in Spanish (`changed_mind`: "Ya no lo
        quiere"), an intent by its label, anything else as it is."""
        if str(name) == "intent":
            return self.intent(value)
        values = self.case_details.get(str(name), {}).get("values") or {}
        return str(values.get(str(value), value))

    def step(self, name: Any) -> str:
        """A step the bot took: a custom action, a form, or a response it sent."""
        name = str(name)
        if name in self.actions:
            return self.actions[name]
        if name in self.forms:
            return f"Trámite: {self.forms[name]}"
        if name in self.responses:
            return f"Respondió: «{self.responses[name]}»"
        return name


def load_labels(path: Path = LABELS_FILE, domain: Path = DOMAIN_FILE) -> Labels:
    """The labels of labels.yml and the responses' texts of domain.yml; a missing or broken
    domain only loses the responses' previews."""
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    tables = {kind: {str(key): str(value) for key, value in (data.get(kind) or {}).items()} for kind in KINDS}
    details = {str(key): dict(value or {}) for key, value in (data.get("case_details") or {}).items()}
    return Labels(**tables, responses=response_previews(domain), case_details=details)


def response_previews(domain: Path) -> dict[str, str]:
    try:
        responses = (yaml.safe_load(domain.read_text(encoding="utf-8")) or {}).get("responses") or {}
    except (OSError, yaml.YAMLError):
        return {}
    previews = {}
    for name, variants in responses.items():
        text = next((str(v["text"]) for v in variants or [] if isinstance(v, dict) and v.get("text")), "")
        text = " ".join(text.split())
        if text:
            previews[name] = text if len(text) <= RESPONSE_PREVIEW else text[: RESPONSE_PREVIEW - 1] + "…"
    return previews


def domain_names(domain: Path = DOMAIN_FILE) -> dict[str, set[str]]:
    """The intents, custom actions, forms and slots domain.yml declares (for the completeness test)."""
    data = yaml.safe_load(domain.read_text(encoding="utf-8")) or {}

    def names(items: Any) -> set[str]:
        if isinstance(items, dict):
            return {str(key) for key in items}
        return {str(next(iter(item))) if isinstance(item, dict) else str(item) for item in items or []}

    return {
        "intents": names(data.get("intents")),
        "actions": names(data.get("actions")),
        "forms": names(data.get("forms")),
        "slots": names(data.get("slots")),
    }
