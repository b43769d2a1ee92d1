"""The knowledge base: every article of a folder, checked, with its variants, and searchable."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

from bot.kb.articles import ALL, DEFAULT_REVIEW_DAYS, Article, Entry
from bot.kb.parsing import KBError, ParsedFile, Problem, parse_file
from bot.kb.search import SearchIndex, SearchResult, Thresholds
from bot.kb.semantic import SentenceModel, default_model
from bot.settings import VAR_DIR

# Files in the folder that are not articles: notes for designers.
IGNORED_NAMES = frozenset({"readme.md"})
EMBEDDING_CACHE = VAR_DIR / "kb-embeddings"
DEFAULT = "default"  # load(): the process's sentence model / cache folder


class KnowledgeBase:
    """Articles loaded from Markdown files. Build it with `KnowledgeBase.load(folder)`."""

    def __init__(self, entries: list[Entry], root: str = "", *, index: SearchIndex | None = None) -> None:
        self.root = root
        self._entries = {entry.base.id: entry for entry in entries}
        self.articles: list[Article] = [entry.base for entry in entries]
        self._index = index or SearchIndex.build(entries)

    @property
    def semantic(self) -> bool:
        """Whether search blends in the sentence model (False: lexical only)."""
        return self._index.semantic is not None

    @classmethod
    def load(
        cls,
        folder: str | Path,
        *,
        model: SentenceModel | None | str = DEFAULT,
        cache_dir: Path | None | str = DEFAULT,
        thresholds: Thresholds | None = None,
    ) -> KnowledgeBase:
        """Parse and check every `**/*.md` under `folder`; raise KBError listing every problem.
        `model`: the sentence model for semantic ranking (default: the bundled one if it loads;
        None: lexical only); `cache_dir`: where article vectors are cached (None: nowhere)."""
        root = Path(folder)
        if not root.is_dir():
            raise KBError(
                [Problem(str(root), 0, "the knowledge-base folder does not exist: create it or set KB_DIR.")]
            )
        problems: list[Problem] = []
        parsed: list[ParsedFile] = []
        for path in sorted(root.rglob("*.md")):
            if path.name.lower() in IGNORED_NAMES or path.name.startswith(("_", ".")):
                continue
            display = _display(path)
            result = parse_file(path, display, problems)
            if result is not None:
                parsed.append(result)
        entries = assemble(parsed, problems)
        if problems:
            raise KBError(problems)
        index = SearchIndex.build(
            entries,
            thresholds=thresholds,
            model=default_model() if isinstance(model, str) else model,
            cache_dir=EMBEDDING_CACHE if isinstance(cache_dir, str) else cache_dir,
        )
        return cls(entries, root=str(root), index=index)

    def get(self, article_id: str) -> Article | None:
        entry = self._entries.get(article_id)
        return entry.base if entry else None

    def by_intent(self, intent: str) -> Article | None:
        """The base article tied to an NLU intent or faq/<topic> (its `intent` field), if any:
        when the NLU is sure of a migrated FAQ topic, its article answers without a search."""
        return next((article for article in self.articles if article.intent == intent), None)

    def variants(self, article_id: str) -> tuple[Article, ...]:
        entry = self._entries.get(article_id)
        return entry.variants if entry else ()

    def resolve(self, article_id: str, *, country: str | None = None, channel: str | None = None) -> Article:
        """The article to show for `article_id` in this country and channel. KeyError if unknown."""
        entry = self._entries.get(article_id)
        if entry is None:
            raise KeyError(article_id)
        return entry.resolve(country, channel)

    def search(
        self, query: str, *, country: str | None = None, channel: str | None = None, limit: int = 3
    ) -> SearchResult:
        """The articles that best answer `query` in the customer's words, best first, each
        resolved for the country and channel, with a verdict on how sure the match is."""
        return self._index.search(query, country=country, channel=channel, limit=limit)

    async def search_async(
        self, query: str, *, country: str | None = None, channel: str | None = None, limit: int = 3
    ) -> SearchResult:
        """`search` off the event loop: the sentence model takes ~15 ms of CPU on some questions."""
        return await asyncio.to_thread(self.search, query, country=country, channel=channel, limit=limit)


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def assemble(parsed: list[ParsedFile], problems: list[Problem]) -> list[Entry]:
    """Group files by id, check bases and variants against each other, merge variants."""
    bases: dict[str, ParsedFile] = {}
    variants: dict[str, list[ParsedFile]] = {}
    for item in parsed:
        if item.id is None:
            continue
        if item.variant is None:
            if item.id in bases:
                problems.append(
                    Problem(
                        item.path,
                        item.line_of("id"),
                        f"id '{item.id}' is already used by {bases[item.id].path}: ids are unique.",
                    )
                )
                continue
            bases[item.id] = item
        else:
            variants.setdefault(item.id, []).append(item)
    entries = []
    for article_id, items in variants.items():
        if article_id not in bases:
            for item in items:
                problems.append(
                    Problem(
                        item.path,
                        item.line_of("id"),
                        f"variant of '{article_id}' without a base article: create {article_id}.md "
                        "(countries: [all]) beside it, or fix the id.",
                    )
                )
    for article_id, base_file in bases.items():
        base = _article(base_file, None)
        if base is None:
            continue
        merged = []
        seen: dict[tuple, str] = {}
        for item in variants.get(article_id, []):
            variant = _article(item, base)
            if variant is None:
                continue
            line = item.line_of("countries") if "countries" in item.fields else item.line_of("channels")
            if ALL in variant.countries and ALL in variant.channels:
                problems.append(
                    Problem(
                        item.path,
                        line,
                        "a variant must narrow 'countries' and/or 'channels' (for example countries: [PE]); "
                        "this one applies everywhere, like its base.",
                    )
                )
                continue
            outside = [code for code in variant.countries if not base.applies_to(code, None) and code != ALL]
            outside += [name for name in variant.channels if not base.applies_to(None, name) and name != ALL]
            if outside:
                problems.append(
                    Problem(
                        item.path,
                        line,
                        f"the variant covers {', '.join(outside)}, which its base {base_file.path} does not.",
                    )
                )
            scope = (tuple(sorted(variant.countries)), tuple(sorted(variant.channels)))
            if scope in seen:
                problems.append(
                    Problem(
                        item.path,
                        line,
                        f"another variant, {seen[scope]}, covers the same countries and channels: "
                        "merge them.",
                    )
                )
                continue
            seen[scope] = item.path
            merged.append(variant)
        entries.append(Entry(base, tuple(merged)))
    return entries


def _article(item: ParsedFile, base: Article | None) -> Article | None:
    values = {**item.fields, **item.sections}
    if base is None:
        if any(
            name not in values
            for name in ("title", "short", "countries", "channels", "owner", "last_reviewed", "link", "steps")
        ):
            return None  # its problems are already listed
        return Article(
            id=item.id or "",
            title=values["title"],
            short=values["short"],
            steps=values["steps"],
            before=values.get("before"),
            if_fails=values.get("if_fails"),
            countries=values["countries"],
            channels=values["channels"],
            tags=values.get("tags", ()),
            synonyms=values.get("synonyms", ()),
            intent=values.get("intent"),
            flow=values.get("flow"),
            owner=values["owner"],
            last_reviewed=values["last_reviewed"],
            review_days=values.get("review_days", DEFAULT_REVIEW_DAYS),
            link=values["link"],
            path=item.path,
        )
    known = {field.name for field in dataclasses.fields(Article)}
    return dataclasses.replace(
        base, path=item.path, **{key: value for key, value in values.items() if key in known}
    )
