"""Adds the labelled messages of an inbox file to the designers' NLU file: `make accept FILE=…`.

Refuses, and lists, what must not become a training example: a text that duplicates a held-out
row (tests/nlu_holdout.yml, tests/nlu_external/*.yml), a label that is not an intent the model
learns, a text with card data or a mask. The rules are bot/training_examples.py; the guide is
docs/designing.md, "Review real misunderstood messages".
Usage: python scripts/accept.py inbox/2026-11-30.yml [--target data/nlu/inbox_accepted.yml]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from bot.clock import Clock, SystemClock  # noqa: E402
from bot.settings import Settings, SettingsError  # noqa: E402
from bot.training_examples import (  # noqa: E402
    Acceptance,
    Vocabulary,
    accept_entries,
    append_examples,
    nlu_examples,
    vocabulary,
)

TARGET = ROOT / "data" / "nlu" / "inbox_accepted.yml"
TRAINING_DIR = ROOT / "data" / "nlu"
DOMAIN = ROOT / "domain.yml"
HELD_OUT = [ROOT / "tests" / "nlu_holdout.yml", ROOT / "tests" / "nlu_external"]


def held_out_files(paths: list[Path]) -> list[Path]:
    """The held-out files: the given files, and every *.yml under the given folders."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(path.glob("*.yml"))
        elif path.exists():
            files.append(path)
    return files


def training_data(training_dir: Path, target: Path) -> dict[str, list[str]]:
    """Every example the model learns from: data/nlu/*.yml and the accepted file."""
    merged: dict[str, list[str]] = {}
    files = sorted(training_dir.glob("*.yml"))
    if target.exists() and target.resolve() not in {path.resolve() for path in files}:
        files.append(target)
    for path in files:
        for intent, examples in nlu_examples(path).items():
            merged.setdefault(intent, []).extend(examples)
    return merged


def report(outcome: Acceptance, target: Path, say: Callable[[str], None]) -> None:
    for intent, examples in sorted(outcome.added.items()):
        say(f"    + {intent}: " + " | ".join(examples))
    if outcome.already:
        say(f"    {len(outcome.already)} already in the training data, not added again")
    if outcome.refused:
        say(f"==> Refused, not added ({len(outcome.refused)}):")
        for refusal in outcome.refused:
            say(f"    - {refusal.text!r} as {refusal.label}: {refusal.reason}")
    say(
        f"==> {outcome.added_count} examples added to {target}, {len(outcome.refused)} refused, "
        f"{len(outcome.already)} already there, {outcome.skipped} skipped, {outcome.unlabelled} not labelled"
    )
    if outcome.added_count:
        say("    next: `make validate`, then `make train` (and `make evaluate` to see the effect)")


def accept_file(
    inbox_file: Path,
    target: Path,
    clock: Clock,
    zone: str,
    *,
    domain: Path = DOMAIN,
    training_dir: Path = TRAINING_DIR,
    held_out: list[Path] | None = None,
    say: Callable[[str], None] = print,
) -> Acceptance:
    """Read the labelled inbox file and append what passes the checks to `target`."""
    document = yaml.safe_load(inbox_file.read_text(encoding="utf-8"))
    if not isinstance(document, dict) or not isinstance(document.get("messages"), list):
        raise ValueError(f"{inbox_file} is not an inbox file from `make inbox` (no `messages:` list)")
    training = training_data(training_dir, target)
    words: Vocabulary = vocabulary(domain, training)
    held_rows = [
        example
        for path in held_out_files(HELD_OUT if held_out is None else held_out)
        for examples in nlu_examples(path).values()
        for example in examples
    ]
    say(f"==> Accepting {inbox_file} ({len(held_rows)} held-out rows kept out)")
    outcome = accept_entries(document["messages"], words, held_rows, training)
    if outcome.added:
        source = inbox_file.relative_to(ROOT) if inbox_file.is_relative_to(ROOT) else inbox_file
        append_examples(target, outcome.added, str(source), clock.now().astimezone(ZoneInfo(zone)).date())
    report(outcome, target.relative_to(ROOT) if target.is_relative_to(ROOT) else target, say)
    return outcome


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", type=Path, help="the labelled inbox file (inbox/<day>.yml)")
    parser.add_argument("--target", type=Path, default=TARGET, help="the NLU file to append to")
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
    except SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    inbox_file = args.file if args.file.is_absolute() else Path.cwd() / args.file
    target = args.target if args.target.is_absolute() else Path.cwd() / args.target
    if not inbox_file.exists():
        print(f"error: {args.file} does not exist; `make inbox` writes one", file=sys.stderr)
        return 2
    try:
        accept_file(inbox_file, target, SystemClock(settings.clock_shift), settings.bot_timezone)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
