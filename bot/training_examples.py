"""Labelled inbox messages become NLU training examples (`make accept`), under the checks that
keep the data honest: held-out rows stay out of training, labels are intents the model learns,
and no card data reaches the repository.

Accepted examples are appended to one designers' file (data/nlu/inbox_accepted.yml), one block
per intent and acceptance, under a comment naming the inbox file and the day. A text already
in the training data is not added again, so accepting the same file twice adds nothing.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import yaml

from bot.choices import fold
from bot.inbox import PHONE_MASK
from bot.masking import CARD_MASK, CVV_MASK, SECRET_MASK, mask_card_data

# An entity marked in an example: [text](entity), [text](entity:value) or [text]{"entity": …}.
ANNOTATION = re.compile(r"\[(?P<text>[^\]]+)\](?:\((?P<entity>[^:)]+)(?::[^)]*)?\)|\{(?P<json>[^}]*)\})")
FILE_HEADER = """\
version: "3.1"
# Real customer messages, labelled by designers from `make inbox` files and added by
# `make accept` (docs/designing.md, "Review real misunderstood messages"). Each block says
# which inbox file it came from and when. Edit or delete examples like in any data/nlu file.
nlu:
"""


def plain(example: str) -> str:
    """The example as the customer typed it, compared without case, accents, punctuation or
    extra spaces (entity marks removed)."""
    text = ANNOTATION.sub(lambda match: match["text"], example)
    return fold(text) or " ".join(text.split())


def nlu_examples(path: Path) -> dict[str, list[str]]:
    """{intent or faq/topic: [examples as written]} of a Rasa NLU YAML file. A file that is not
    one raises ValueError: a held-out file that cannot be read must not let its rows through."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as error:
        raise ValueError(f"{path}: cannot be read as Rasa NLU YAML: {error}") from error
    if not isinstance(document, dict) or not isinstance(document.get("nlu", []), list):
        raise ValueError(f"{path}: not Rasa NLU YAML (no `nlu:` list)")
    found: dict[str, list[str]] = {}
    for block in document.get("nlu") or []:
        if not isinstance(block, dict) or "intent" not in block:
            continue
        examples = block.get("examples") or ""
        if isinstance(examples, list):  # the long form: - text: "…"
            lines = [str(item.get("text", "")) for item in examples if isinstance(item, dict)]
        else:
            lines = [line.strip()[2:] for line in str(examples).splitlines() if line.strip().startswith("- ")]
        found.setdefault(str(block["intent"]), []).extend(line.strip() for line in lines if line.strip())
    return found


@dataclass(frozen=True)
class Vocabulary:
    """What a label and an entity mark may name."""

    intents: frozenset[str]  # intents of domain.yml that the training data teaches
    channel_intents: frozenset[str]  # intents of domain.yml set by the channels, never by NLU
    faq_topics: frozenset[str]  # faq/<topic> with an utter_faq/<topic> answer
    entities: frozenset[str]


def vocabulary(domain_path: Path, training: dict[str, list[str]]) -> Vocabulary:
    """The labels a designer may use: the domain's intents that data/nlu already has examples of
    (card_data, share_location… are set by the channels and take none), and FAQ topics."""
    domain = yaml.safe_load(domain_path.read_text(encoding="utf-8")) or {}
    names = {
        next(iter(item)) if isinstance(item, dict) else str(item) for item in domain.get("intents") or []
    }
    trained = {intent.split("/", 1)[0] for intent in training}
    topics = {
        name.removeprefix("utter_") for name in domain.get("responses") or {} if name.startswith("utter_faq/")
    }
    entities = {
        next(iter(item)) if isinstance(item, dict) else str(item) for item in domain.get("entities") or []
    }
    return Vocabulary(
        frozenset(names & trained), frozenset(names - trained), frozenset(topics), frozenset(entities)
    )


@dataclass(frozen=True)
class Refusal:
    text: str
    label: str
    reason: str


@dataclass
class Acceptance:
    """What accepting one inbox file did."""

    added: dict[str, list[str]] = field(default_factory=dict)  # intent → examples
    refused: list[Refusal] = field(default_factory=list)
    already: list[tuple[str, str]] = field(default_factory=list)  # (text, intent it is under)
    skipped: int = 0  # `skip: true`
    unlabelled: int = 0  # neither label nor skip

    @property
    def added_count(self) -> int:
        return sum(map(len, self.added.values()))


def _one_line(text: str) -> str:
    """An example fits one line of a YAML block: control characters and line breaks become spaces."""
    return " ".join("".join(" " if unicodedata.category(ch) == "Cc" else ch for ch in text).split())


def _label_problem(label: str, words: Vocabulary) -> str | None:
    if label.startswith("faq/"):
        return None if label in words.faq_topics else f"{label} has no answer utter_{label} in domain.yml"
    if label == "faq":
        return "faq needs its topic: faq/<topic>"
    if label in words.intents:
        return None
    if label in words.channel_intents:
        return f"{label} is set by the channel, never learnt from text"
    return f"{label} is not an intent of domain.yml"


def _text_problem(text: str, words: Vocabulary) -> str | None:
    if not text:
        return "empty text"
    if CARD_MASK in text or CVV_MASK in text or mask_card_data(text).changed:
        return "holds card data: never a training example (skip it)"
    if SECRET_MASK in text or PHONE_MASK in text:
        return "holds a mask: write an invented number in its place, or skip it"
    for match in ANNOTATION.finditer(text):
        entity = (match["entity"] or "").strip()
        if match["json"] is None and entity not in words.entities:
            return f"marks an entity that is not in domain.yml: {entity!r}"
    return None


def accept_entries(
    entries: Iterable[dict[str, Any]],
    words: Vocabulary,
    held_out: Iterable[str],
    training: dict[str, list[str]],
) -> Acceptance:
    """Sort the inbox file's entries into added, refused, already there, skipped and unlabelled.

    `held_out` holds the examples of every held-out set; `training` every example the model
    already learns from (data/nlu and the accepted file)."""
    outcome = Acceptance()
    held = {plain(example) for example in held_out}
    known = {plain(example): intent for intent, examples in training.items() for example in examples}
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        if entry.get("skip"):
            outcome.skipped += 1
            continue
        label = str(entry.get("label") or "").strip()
        if not label:
            outcome.unlabelled += 1
            continue
        text = _one_line(str(entry.get("text") or ""))
        key = plain(text)
        problem = _label_problem(label, words) or _text_problem(text, words)
        if problem is None and key in held:
            problem = "duplicates a held-out row: held-out sets stay out of training"
        if problem is None and key in known and known[key] != label:
            problem = f"already a training example of {known[key]}: decide which intent it is there"
        if problem is not None:
            outcome.refused.append(Refusal(text, label, problem))
        elif key in known:
            outcome.already.append((text, label))
        else:
            outcome.added.setdefault(label, []).append(text)
            known[key] = label
    return outcome


def appended_blocks(added: dict[str, list[str]], source: str, day: date) -> str:
    """The YAML appended to the accepted file: a comment, then one block per intent."""
    lines = [f"# from {source}, accepted {day.isoformat()} (make accept)"]
    for intent in sorted(added):
        lines += [f"- intent: {intent}", "  examples: |"]
        lines += [f"    - {text}" for text in added[intent]]
    return "\n".join(lines) + "\n"


def append_examples(target: Path, added: dict[str, list[str]], source: str, day: date) -> None:
    """Append the blocks to `target` (created with its header if missing), checking first that
    the result still reads as NLU YAML, so a failed write never leaves a broken data file."""
    current = target.read_text(encoding="utf-8") if target.exists() else FILE_HEADER
    if current and not current.endswith("\n"):
        current += "\n"
    updated = current + appended_blocks(added, source, day)
    document = yaml.safe_load(updated)
    if not isinstance(document, dict) or not isinstance(document.get("nlu"), list):
        raise ValueError(f"{target}: the result would not be Rasa NLU YAML; nothing written")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    partial.write_text(updated, encoding="utf-8")
    partial.replace(target)
