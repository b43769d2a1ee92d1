"""Checks the knowledge base (`make kb-check`, also run by `make validate`).

Fails (exit 1) when an article is invalid, listing every problem with its file and line, or when
an article's `intent` or `flow` names an intent the assistant does not have (domain.yml, and the
faq/<topic> retrieval intents of data/nlu/). Lists the articles past their review date on the
day given by --today (default: today in BOT_TIMEZONE, from the project's clock): those are
warnings for their owners, never a failure, so CI does not turn red as days pass.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.clock import SystemClock, local_day  # noqa: E402
from bot.kb import Article, KBError, KnowledgeBase, Problem  # noqa: E402
from bot.settings import Settings  # noqa: E402

DUE_SOON_DAYS = 14


@dataclass(frozen=True)
class Intents:
    """What the assistant understands: domain intents and faq/<topic> retrieval intents."""

    domain: frozenset[str]
    retrieval: frozenset[str]

    def knows(self, name: str) -> bool:
        if "/" in name:
            return name in self.retrieval and name.split("/", 1)[0] in self.domain
        return name in self.domain


def load_intents(domain: Path, nlu_dir: Path) -> Intents:
    names: set[str] = set()
    paths = sorted(domain.rglob("*.yml")) if domain.is_dir() else [domain]
    for path in paths:
        for item in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("intents") or []:
            names.add(next(iter(item)) if isinstance(item, dict) else str(item))
    retrieval = set()
    for path in sorted(nlu_dir.rglob("*.yml")):
        retrieval.update(
            re.findall(r"^\s*-\s*intent:\s*(\w+/\w+)\s*$", path.read_text(encoding="utf-8"), re.M)
        )
    return Intents(frozenset(names), frozenset(retrieval))


def field_line(path: str, name: str) -> int:
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError:
        return 1
    return next((number for number, line in enumerate(lines, 1) if line.startswith(f"{name}:")), 1)


def intent_problems(kb: KnowledgeBase, intents: Intents) -> list[Problem]:
    problems = []
    for base in kb.articles:
        for article in (base, *kb.variants(base.id)):
            for name, value, what in (
                ("intent", article.intent, "an intent of domain.yml or a faq/<topic> of data/nlu/"),
                ("flow", article.flow, "the intent of a flow in domain.yml (e.g. make_payment)"),
            ):
                if value and not intents.knows(value):
                    if name == "flow" and "/" in value:
                        message = f"flow '{value}' is a retrieval topic, not a flow: use {what}."
                    else:
                        message = f"{name} '{value}' is not an intent the assistant has: use {what}."
                    problems.append(Problem(article.path, field_line(article.path, name), message))
    return sorted(set(problems), key=lambda problem: (problem.path, problem.line))


def review_report(kb: KnowledgeBase, today: date) -> tuple[list[Article], list[Article]]:
    """The articles (and variants) past their review date, and those due within two weeks."""
    overdue, soon = [], []
    for base in kb.articles:
        # A variant that takes its review date from the base is reviewed with it.
        own = [v for v in kb.variants(base.id) if v.review_due_on() != base.review_due_on()]
        for article in (base, *own):
            if article.review_due(today):
                overdue.append(article)
            elif article.review_due(today + timedelta(days=DUE_SOON_DAYS)):
                soon.append(article)
    key = lambda article: (article.review_due_on(), article.path)  # noqa: E731
    return sorted(overdue, key=key), sorted(soon, key=key)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kb", type=Path, help="the knowledge-base folder (default: KB_DIR or kb/)")
    parser.add_argument(
        "--today", type=date.fromisoformat, help="the day to check review dates on (2026-12-01)"
    )
    parser.add_argument(
        "--domain", type=Path, default=ROOT / ("domain" if (ROOT / "domain").is_dir() else "domain.yml")
    )
    parser.add_argument("--nlu", type=Path, default=ROOT / "data" / "nlu")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    folder = args.kb or settings.kb_dir
    # The CLI is the edge where "today" is read, from the project's clock (BOT_NOW moves it).
    today = args.today or local_day(SystemClock(settings.clock_shift).now(), settings.bot_timezone)

    print(f"==> Checking the knowledge base in {_shown(folder)}...")
    try:
        kb = KnowledgeBase.load(folder, model=None)
    except KBError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    problems = intent_problems(kb, load_intents(args.domain, args.nlu))
    if problems:
        print(f"error: {KBError(problems)}", file=sys.stderr)
        return 1
    variants = sum(len(kb.variants(article.id)) for article in kb.articles)
    print(f"    {len(kb.articles)} articles and {variants} variants are valid; intents and flows exist.")

    overdue, soon = review_report(kb, today)
    if overdue:
        print(
            f"warning: {len(overdue)} past their review date on {today.isoformat()} "
            "(review, then set last_reviewed):"
        )
        for article in overdue:
            late = (today - article.review_due_on()).days
            print(
                f"    {article.path}: due {article.review_due_on().isoformat()} ({late} days ago), "
                f"owner {article.owner}"
            )
    if soon:
        print(f"    due within {DUE_SOON_DAYS} days of {today.isoformat()}:")
        for article in soon:
            print(f"    {article.path}: due {article.review_due_on().isoformat()}, owner {article.owner}")
    if not overdue and not soon:
        print(f"    none is due for review by {(today + timedelta(days=DUE_SOON_DAYS)).isoformat()}.")
    return 0


def _shown(folder: Path) -> str:
    try:
        return str(Path(folder).resolve().relative_to(ROOT))
    except ValueError:
        return str(folder)


if __name__ == "__main__":
    raise SystemExit(main())
