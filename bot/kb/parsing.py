"""Reading one article file: the YAML header and the Markdown sections, checked field by field.

Every problem names the file and line, what is wrong and what to write instead, and all the
problems of a file are reported together, so a designer fixes a file in one pass.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import yaml

from bot.choices import fold
from bot.kb.articles import ALL, CHANNELS, COUNTRIES

SECTION_STEPS = "Pasos"
SECTION_BEFORE = "Antes de empezar"
SECTION_IF_FAILS = "Si no funciona"
SECTIONS = (SECTION_STEPS, SECTION_BEFORE, SECTION_IF_FAILS)

SHORT_MAX_CHARS = 240
SHORT_MAX_LINES = 2
REVIEW_DAYS_RANGE = (60, 90)
MAX_EMOJIS = 1

REQUIRED_IN_BASE = ("id", "title", "short", "countries", "channels", "owner", "last_reviewed", "link")
KNOWN_FIELDS = frozenset(REQUIRED_IN_BASE + ("tags", "synonyms", "intent", "flow", "review_days"))

ID_PATTERN = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
INTENT_PATTERN = re.compile(r"[a-z][a-z0-9_]*(?:/[a-z0-9_]+)?")
FLOW_PATTERN = re.compile(r"[a-z][a-z0-9_]*")
STEP_PATTERN = re.compile(r"\s*(\d+)[.)]\s+(.*)")
HEADING_PATTERN = re.compile(r"#{1,6}\s*(.*?)\s*#*\s*")
EMOJI_PATTERN = re.compile(
    "[\U0001f000-\U0001faff\U00002600-\U000027bf\U0001f900-\U0001f9ff\u2b50\u2b55\u231a-\u231b\u23e9-\u23fa]"
)


@dataclass(frozen=True)
class Problem:
    """One thing wrong in one article file."""

    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


class KBError(ValueError):
    """The knowledge base cannot be loaded: `problems` lists every invalid thing found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        count = len(self.problems)
        header = f"{count} problem{'s' if count != 1 else ''} in the knowledge base:"
        super().__init__("\n".join([header, *(f"  {problem}" for problem in self.problems)]))


@dataclass
class ParsedFile:
    """An article file as written: the fields it gives (base and variant alike) and where."""

    path: str
    id: str | None
    variant: str | None  # the middle part of `<id>.<variant>.md`; None for the base file
    fields: dict[str, Any]
    lines: dict[str, int]  # header field -> line number
    sections: dict[str, Any] = field(default_factory=dict)  # "steps" / "before" / "if_fails"
    section_lines: dict[str, int] = field(default_factory=dict)

    def line_of(self, name: str) -> int:
        return self.lines.get(name) or self.section_lines.get(name) or 1


def parse_file(path: Path, display: str, problems: list[Problem]) -> ParsedFile | None:
    """Parse and check one file; append what is wrong to `problems`. None if unreadable."""

    def problem(line: int, message: str) -> None:
        problems.append(Problem(display, line, message))

    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        problem(1, f"the file is not UTF-8 ({error.reason}): save it as UTF-8.")
        return None
    lines = text.splitlines()
    if not lines or lines[0].strip() != "---":
        problem(1, "the file must start with a YAML header: a line '---', the fields, then '---'.")
        return None
    closing = next((index for index in range(1, len(lines)) if lines[index].strip() == "---"), None)
    if closing is None:
        problem(1, "the YAML header is not closed: add a line '---' after the last field.")
        return None
    header_text = "\n".join(lines[1:closing])
    try:
        header = yaml.safe_load(header_text) or {}
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = mark.line + 2 if mark is not None else 2
        reason = getattr(error, "problem", None) or str(error)
        problem(line, f"the YAML header cannot be read ({reason}): check quotes, colons and indentation.")
        return None
    if not isinstance(header, dict):
        problem(2, "the YAML header must be 'field: value' lines.")
        return None
    field_lines = {}
    for number, line in enumerate(lines[1:closing], start=2):
        match = re.match(r"([A-Za-z_][\w-]*)\s*:", line)
        if match and match.group(1) not in field_lines:
            field_lines[match.group(1)] = number

    stem_parts = path.name[: -len(".md")].split(".")
    parsed = ParsedFile(
        path=display,
        id=header.get("id") if isinstance(header.get("id"), str) else None,
        variant=".".join(stem_parts[1:]) or None,
        fields={},
        lines=field_lines,
    )
    _check_header(header, parsed, stem_parts[0], problem)
    _parse_body(lines, closing + 1, parsed, problem)
    return parsed


def _check_header(header: dict, parsed: ParsedFile, file_id: str, problem) -> None:
    def line(name: str) -> int:
        return parsed.lines.get(name, 2)

    for name in header:
        if name not in KNOWN_FIELDS:
            hint = _closest(str(name), KNOWN_FIELDS)
            problem(
                line(str(name)),
                f"unknown field '{name}'"
                + (
                    f": did you mean '{hint}'?"
                    if hint
                    else f"; the fields are {', '.join(sorted(KNOWN_FIELDS))}."
                ),
            )
    is_variant = parsed.variant is not None
    required = ("id",) if is_variant else REQUIRED_IN_BASE
    for name in required:
        if header.get(name) in (None, "", []):
            problem(line(name) if name in header else 2, f"'{name}' is missing: {_FIELD_HELP[name]}")

    article_id = header.get("id")
    if article_id is not None:
        if not isinstance(article_id, str) or not ID_PATTERN.fullmatch(article_id):
            problem(line("id"), f"id {article_id!r} must be kebab-case (lowercase words joined by '-').")
        elif article_id != file_id:
            problem(
                line("id"),
                f"id '{article_id}' does not match the file name: name the file {article_id}.md "
                f"or {article_id}.<variant>.md "
                "(a variant repeats its base article's id).",
            )
    out = parsed.fields
    for name in ("title", "owner"):
        if name in header and header[name] is not None:
            value = header[name]
            if not isinstance(value, str) or not value.strip():
                problem(line(name), f"'{name}' must be text: {_FIELD_HELP[name]}")
            else:
                out[name] = " ".join(value.split())
    if header.get("short") is not None:
        short = header["short"]
        if not isinstance(short, str) or not short.strip():
            problem(line("short"), f"'short' must be text: {_FIELD_HELP['short']}")
        else:
            short = short.strip()
            if len(short) > SHORT_MAX_CHARS:
                problem(
                    line("short"),
                    f"'short' has {len(short)} characters: keep it to {SHORT_MAX_CHARS} at most "
                    "(2 lines on a phone); move details into '## Pasos'.",
                )
            if short.count("\n") + 1 > SHORT_MAX_LINES:
                problem(line("short"), f"'short' has more than {SHORT_MAX_LINES} lines: write at most 2.")
            out["short"] = short
    for name, allowed, upper in (("countries", COUNTRIES, True), ("channels", CHANNELS, False)):
        if header.get(name) is None:
            continue
        value = _as_list(header[name])
        if value is None or not value:
            problem(line(name), f"'{name}' must be a list like {_FIELD_HELP[name]}")
            continue
        cleaned = []
        for item in value:
            text = str(item).strip()
            text = text.lower() if text.lower() == ALL or not upper else text.upper()
            if text != ALL and text not in allowed:
                problem(line(name), f"'{name}' has {item!r}: use {', '.join(allowed)} or [all].")
            else:
                cleaned.append(text)
        if ALL in cleaned and len(cleaned) > 1:
            problem(line(name), f"'{name}' mixes 'all' with other values: write [all] alone or list them.")
        out[name] = tuple(dict.fromkeys(cleaned))
    for name in ("tags", "synonyms"):
        if header.get(name) is None:
            continue
        value = _as_list(header[name])
        if value is None or any(not isinstance(item, (str, int)) or not str(item).strip() for item in value):
            problem(line(name), f"'{name}' must be a list of words or phrases, like [{_FIELD_HELP[name]}].")
        else:
            out[name] = tuple(str(item).strip() for item in value)
    for name, pattern in (("intent", INTENT_PATTERN), ("flow", FLOW_PATTERN)):
        if header.get(name) is None:
            continue
        value = header[name]
        if not isinstance(value, str) or not pattern.fullmatch(value.strip()):
            problem(line(name), f"'{name}' {value!r} is not an intent name: {_FIELD_HELP[name]}")
        else:
            out[name] = value.strip()
    if header.get("last_reviewed") is not None:
        value = header["last_reviewed"]
        if isinstance(value, date):
            out["last_reviewed"] = value
        else:
            try:
                out["last_reviewed"] = date.fromisoformat(str(value).strip())
            except ValueError:
                problem(
                    line("last_reviewed"),
                    f"'last_reviewed' {value!r} is not a date: write it like 2026-11-15.",
                )
    if header.get("review_days") is not None:
        value = header["review_days"]
        low, high = REVIEW_DAYS_RANGE
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            problem(
                line("review_days"),
                f"'review_days' {value!r}: use a whole number of days from {low} to {high}.",
            )
        else:
            out["review_days"] = value
    if header.get("link") is not None:
        value = header["link"]
        if not isinstance(value, str) or not re.fullmatch(r"https?://\S+", value.strip()):
            problem(
                line("link"),
                f"'link' {value!r} must be the article's full address, like https://ayuda.example/x.",
            )
        else:
            out["link"] = value.strip()
    if "short" in out and len(EMOJI_PATTERN.findall(out["short"])) > MAX_EMOJIS:
        problem(line("short"), f"'short' has more than {MAX_EMOJIS} emoji: keep one at most per answer.")


def _parse_body(lines: list[str], start: int, parsed: ParsedFile, problem) -> None:
    """The sections after the header: numbered steps under '## Pasos', free text in the others."""
    current: str | None = None
    texts: dict[str, list[str]] = {}
    steps: list[str] = []
    for number, raw in enumerate(lines[start:], start=start + 1):
        line = raw.rstrip()
        if not line.strip():
            if current is not None and current != SECTION_STEPS:
                texts[current].append("")
            continue
        if line.lstrip().startswith("#"):
            heading = HEADING_PATTERN.fullmatch(line.strip())
            title = heading.group(1) if heading else line.strip("# ")
            matched = next((name for name in SECTIONS if _fold(name) == _fold(title)), None)
            if not line.startswith("## ") or matched is None:
                hint = _closest(title, SECTIONS)
                problem(
                    number,
                    f"unknown heading {line.strip()!r}: the sections are "
                    + ", ".join(f"'## {name}'" for name in SECTIONS)
                    + (f" (did you mean '## {hint}'?)" if hint else "."),
                )
                current = None
                continue
            if matched in parsed.section_lines:
                problem(number, f"'## {matched}' appears twice: merge both into one section.")
            current = matched
            parsed.section_lines[matched] = number
            texts.setdefault(matched, [])
            continue
        if current is None:
            problem(
                number,
                "text outside a section: put it under '## Pasos', '## Antes de empezar' "
                "or '## Si no funciona'.",
            )
            continue
        if current == SECTION_STEPS:
            match = STEP_PATTERN.fullmatch(line)
            if match:
                steps.append(match.group(2).strip())
            elif steps and raw[:1].isspace():
                steps[-1] += " " + line.strip()
            else:
                problem(number, "under '## Pasos' write numbered steps: '1. Entra a ...', '2. ...'.")
        else:
            texts[current].append(line.strip())
    if SECTION_STEPS in parsed.section_lines:
        if not steps:
            problem(parsed.section_lines[SECTION_STEPS], "'## Pasos' has no steps: write '1. ...' lines.")
        parsed.sections["steps"] = tuple(steps)
        parsed.section_lines["steps"] = parsed.section_lines[SECTION_STEPS]
        emojis = sum(len(EMOJI_PATTERN.findall(step)) for step in steps)
        emojis += len(EMOJI_PATTERN.findall(parsed.fields.get("short", "")))
        if emojis > MAX_EMOJIS:
            problem(
                parsed.section_lines[SECTION_STEPS],
                "the short answer and steps hold more than one emoji: keep one at most.",
            )
    elif parsed.variant is None:
        problem(
            start if start <= len(lines) else len(lines),
            "'## Pasos' is missing: add the numbered steps after the header.",
        )
    for name, key in ((SECTION_BEFORE, "before"), (SECTION_IF_FAILS, "if_fails")):
        if name in texts:
            body = "\n".join(texts[name]).strip()
            body = re.sub(r"\n{3,}", "\n\n", body)
            if not body:
                problem(parsed.section_lines[name], f"'## {name}' is empty: write it or remove the heading.")
            parsed.sections[key] = body or None
            parsed.section_lines[key] = parsed.section_lines[name]


def _as_list(value: Any) -> list | None:
    if isinstance(value, (list, tuple)):
        return list(value)
    if isinstance(value, str):
        return [part for part in (item.strip() for item in value.split(",")) if part]
    return None


def _fold(text: str) -> str:
    return " ".join(fold(text).split())


def _closest(word: str, choices) -> str | None:
    """The choice a typo most likely meant (same first letter, or a close spelling)."""
    folded = {_fold(choice): choice for choice in choices}
    match = difflib.get_close_matches(_fold(word), list(folded), n=1, cutoff=0.6)
    return folded[match[0]] if match else None


_FIELD_HELP = {
    "id": "the article's kebab-case id, the same as its file name (medios-de-pago).",
    "title": "a title that says what to do or know (Pagar con tarjeta, transferencia o efectivo).",
    "short": "the answer itself in at most 2 lines and 240 characters.",
    "countries": "[all] or ISO codes [MX, AR, PE, CO, CL].",
    "channels": "[all] or [whatsapp] / [sms].",
    "owner": "the person or team responsible for the article (Equipo de Pagos).",
    "last_reviewed": "the day it was last reviewed, like 2026-11-15.",
    "link": "the article on the help site, like https://ayuda.tienda.example/medios-de-pago.",
    "tags": "pagos, envios",
    "synonyms": "formas de pago, como pago",
    "intent": "write an NLU intent (cancel_order) or a retrieval topic (faq/garantia).",
    "flow": "write the intent of the flow the answer offers (make_payment).",
}
