"""Ranking articles for a customer's question: BM25F over the article's fields, a 0..1 score, and
a verdict (answer / offer options / nothing fits) from the top score and its lead over the next.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

from bot.kb.articles import ALL, Article, Entry
from bot.kb.text import terms

ANSWER = "answer"
OPTIONS = "options"
NONE = "none"

# How much a word counts in each field: the title and the customer's own words (synonyms) say
# what the article is about; the steps mention many things in passing.
FIELD_WEIGHTS = {
    "title": 3.0,
    "synonyms": 3.0,
    "tags": 1.5,
    "short": 2.0,
    "steps": 1.0,
    "extra": 0.5,  # "Antes de empezar" and "Si no funciona"
}
FIELD_B = {"title": 0.5, "synonyms": 0.3, "tags": 0.3, "short": 0.75, "steps": 0.75, "extra": 0.75}
K1 = 1.2


@dataclass(frozen=True)
class Thresholds:
    """When the top hit is confident enough to answer, and when anything fits at all."""

    answer: float = 0.45  # top score at least this ...
    margin: float = 0.10  # ... and this far ahead of the second: answer it
    options: float = 0.20  # below `answer` but at least this: offer the top titles


@dataclass(frozen=True)
class Hit:
    article: Article  # the variant for the country and channel searched
    score: float  # 0..1, comparable across queries


@dataclass(frozen=True)
class SearchResult:
    query: str
    hits: list[Hit]
    verdict: str  # "answer", "options" or "none"

    @property
    def top(self) -> Hit | None:
        return self.hits[0] if self.hits else None


@dataclass(frozen=True)
class _Document:
    article_id: str
    countries: tuple[str, ...]
    channels: tuple[str, ...]

    def compatible(self, country: str | None, channel: str | None) -> bool:
        """A document speaks for the context if it is written for it (or for all); with no
        country or channel known, every variant's words count."""
        return (country is None or ALL in self.countries or country in self.countries) and (
            channel is None or ALL in self.channels or channel in self.channels
        )


class SearchIndex:
    """An inverted index of every article and variant; built once per knowledge-base load."""

    def __init__(self, thresholds: Thresholds | None = None) -> None:
        self.thresholds = thresholds or Thresholds()
        self.documents: list[_Document] = []
        self.postings: dict[str, list[tuple[int, float]]] = {}
        self.idf: dict[str, float] = {}
        self.unknown_weight = 1.0
        self.entries: dict[str, Entry] = {}

    @classmethod
    def build(cls, entries: list[Entry], thresholds: Thresholds | None = None) -> SearchIndex:
        index = cls(thresholds)
        index.entries = {entry.base.id: entry for entry in entries}
        field_terms: list[dict[str, list[str]]] = []
        for entry in entries:
            for article in (entry.base, *entry.variants):
                index.documents.append(_Document(article.id, article.countries, article.channels))
                field_terms.append(article_fields(article))
        count = max(len(field_terms), 1)
        average = {
            name: max(sum(len(fields[name]) for fields in field_terms) / count, 1.0) for name in FIELD_WEIGHTS
        }
        weighted: dict[str, dict[int, float]] = defaultdict(dict)
        for doc, fields in enumerate(field_terms):
            for name, items in fields.items():
                if not items:
                    continue
                norm = 1 - FIELD_B[name] + FIELD_B[name] * len(items) / average[name]
                frequencies: dict[str, int] = defaultdict(int)
                for term in items:
                    frequencies[term] += 1
                for term, frequency in frequencies.items():
                    weighted[term][doc] = (
                        weighted[term].get(doc, 0.0) + FIELD_WEIGHTS[name] * frequency / norm
                    )
        # Document frequency over articles, not files: a term in five variants of one article is
        # as specific as a term in one.
        articles = max(len(entries), 1)
        for term, docs in weighted.items():
            frequency = len({index.documents[doc].article_id for doc in docs})
            idf = math.log(1 + (articles - frequency + 0.5) / (frequency + 0.5))
            index.idf[term] = idf
            index.postings[term] = [(doc, idf * tf / (K1 + tf)) for doc, tf in docs.items()]
        max_idf = math.log(1 + (articles + 0.5) / 0.5)
        index.unknown_weight = 0.5 * max_idf
        return index

    def search(self, query: str, *, country: str | None, channel: str | None, limit: int) -> SearchResult:
        country = country.upper() if country else None
        channel = channel.lower() if channel else None
        query_terms = list(dict.fromkeys(terms(query)))
        scores = self._lexical(query_terms, country, channel)
        ranked = sorted(scores.items(), key=lambda item: (-item[1], item[0]))
        hits = [
            Hit(self.entries[article_id].resolve(country, channel), round(score, 4))
            for article_id, score in ranked[: max(limit, 2)]
        ]
        verdict = self.verdict([hit.score for hit in hits])
        return SearchResult(query=query, hits=hits[:limit], verdict=verdict)

    def _lexical(self, query_terms: list[str], country: str | None, channel: str | None) -> dict[str, float]:
        """Per article: the share of the query's weight its best document matches (0..1)."""
        if not query_terms:
            return {}
        total = sum(self.idf.get(term, self.unknown_weight) for term in query_terms)
        per_doc: dict[int, float] = defaultdict(float)
        for term in query_terms:
            for doc, contribution in self.postings.get(term, ()):
                per_doc[doc] += contribution
        best: dict[str, float] = {}
        for doc, score in per_doc.items():
            document = self.documents[doc]
            if not document.compatible(country, channel):
                continue
            base = self.entries[document.article_id].base
            if not base.applies_to(country, channel):
                continue
            normalized = score / total
            if normalized > best.get(document.article_id, 0.0):
                best[document.article_id] = normalized
        return best

    def verdict(self, scores: list[float]) -> str:
        if not scores or scores[0] < self.thresholds.options:
            return NONE
        second = scores[1] if len(scores) > 1 else 0.0
        if scores[0] >= self.thresholds.answer and scores[0] - second >= self.thresholds.margin:
            return ANSWER
        return OPTIONS


def article_fields(article: Article) -> dict[str, list[str]]:
    """The search terms of each weighted field of an article."""
    extra = " ".join(part for part in (article.before, article.if_fails) if part)
    return {
        "title": terms(article.title),
        "synonyms": terms(" ; ".join(article.synonyms)),
        "tags": terms(" ".join(tag.replace("-", " ").replace("_", " ") for tag in article.tags)),
        "short": terms(article.short),
        "steps": terms(" ".join(article.steps)),
        "extra": terms(extra),
    }
