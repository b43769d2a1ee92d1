"""Ranking articles for a customer's question.

Lexical: BM25F over the article's fields (title, synonyms, tags, short answer, steps), on folded
and stemmed Spanish words; a word the articles never use is matched to the closest one they do
(typo folding: "enbio" finds "envio"); a synonym phrase said whole adds a bonus. The score is the
share of the question's weight the article matches, 0..1, so it compares across questions.
Semantic (when a sentence model is loaded): the cosine between the question and the article,
scaled to 0..1 and blended with the lexical score. The verdict (answer / offer options / nothing
fits) comes from the top score and its lead over the second.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rapidfuzz import process
from rapidfuzz.distance import OSA

from bot.kb.articles import ALL, Article, Entry
from bot.kb.semantic import SemanticIndex, SentenceModel
from bot.kb.text import STOP_WORDS, stem, terms, words

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
# A query word the articles do not use counts this share of the rarest word's weight: a question
# mostly about something else scores low.
UNKNOWN_WEIGHT = 0.5
# Typo folding: a word of at least this many letters may be matched to a known word one edit away
# (two from 9 letters on); such a match counts this much.
FUZZY_MIN_LENGTH = 4
FUZZY_WEIGHT = 0.8
# A synonym phrase of two or more words found whole in the question closes this share of the gap
# to a perfect score.
PHRASE_BONUS = 0.3
# The least total weight a question is measured against, in units of the rarest word's weight.
MIN_WEIGHT = 0.75


@dataclass(frozen=True)
class Thresholds:
    """When the top hit is confident enough to answer, and when anything fits at all."""

    answer: float  # top score at least this ...
    margin: float  # ... and this far ahead of the second: answer it
    options: float  # below that but at least this: offer the top titles


# Chosen on tests/kb_dev/questions.yml (docs/designing.md, "Knowledge base: how search and
# confidence work"); the same values served the lexical and the blended score best there.
LEXICAL_THRESHOLDS = Thresholds(answer=0.50, margin=0.05, options=0.20)
BLENDED_THRESHOLDS = Thresholds(answer=0.50, margin=0.05, options=0.20)
# A lexical top score this high and this far ahead is answered without the sentence model.
SURE_LEXICAL = Thresholds(answer=0.7, margin=0.3, options=0.0)
# The semantic part of the blended score, and how cosines map to 0..1 for this model.
SEMANTIC_WEIGHT = 0.5
COSINE_FLOOR = 0.78
COSINE_CEILING = 0.92


@dataclass(frozen=True)
class Hit:
    article: Article  # the variant for the country and channel searched
    score: float  # 0..1, comparable across queries
    lexical: float = 0.0  # the parts of the score, for reports and tuning
    semantic: float | None = None


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

    def __init__(self, thresholds: Thresholds | None, semantic: SemanticIndex | None) -> None:
        self.semantic = semantic
        self.thresholds = thresholds or (BLENDED_THRESHOLDS if semantic else LEXICAL_THRESHOLDS)
        self.documents: list[_Document] = []
        self.postings: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # term -> (docs, contributions)
        self.article_ids: list[str] = []
        self.starts = np.zeros(0, dtype=np.intp)
        self._masks: dict[tuple[str | None, str | None], tuple[np.ndarray, np.ndarray]] = {}
        self.idf: dict[str, float] = {}
        self.unknown_weight = 1.0
        self.max_idf = 1.0
        self.entries: dict[str, Entry] = {}
        self.vocabulary: list[str] = []  # folded surface words, for typo folding
        self.phrases: dict[str, list[tuple[int, frozenset[str]]]] = {}

    @classmethod
    def build(
        cls,
        entries: list[Entry],
        *,
        thresholds: Thresholds | None = None,
        model: SentenceModel | None = None,
        cache_dir: Path | None = None,
    ) -> SearchIndex:
        field_terms: list[dict[str, list[str]]] = []
        documents: list[_Document] = []
        passages: list[str] = []
        surface: set[str] = set()
        phrases: dict[str, list[tuple[int, frozenset[str]]]] = defaultdict(list)
        entries = sorted(entries, key=lambda entry: entry.base.id)  # ties rank by id
        for entry in entries:
            for article in (entry.base, *entry.variants):
                doc = len(documents)
                documents.append(_Document(article.id, article.countries, article.channels))
                field_terms.append(article_fields(article))
                passages.append(passage_text(article))
                surface.update(words(searchable_text(article)))
                for synonym in article.synonyms:
                    phrase = frozenset(terms(synonym))
                    if len(phrase) >= 2:
                        for term in phrase:
                            phrases[term].append((doc, phrase))
        semantic = SemanticIndex(model, passages, cache_dir) if model is not None else None
        index = cls(thresholds, semantic)
        index.entries = {entry.base.id: entry for entry in entries}
        index.article_ids = [entry.base.id for entry in entries]
        index.documents = documents
        # Documents are grouped by article, in article order: per-article maxima are one reduceat.
        index.starts = np.array(
            [0, *np.cumsum([1 + len(entry.variants) for entry in entries])[:-1]], dtype=np.intp
        )
        index.phrases = dict(phrases)
        index._weigh(field_terms, len(entries))
        index.vocabulary = sorted(
            w for w in surface if w not in STOP_WORDS and len(w) >= 3 and not w.isdigit()
        )
        return index

    def _weigh(self, field_terms: list[dict[str, list[str]]], articles: int) -> None:
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
        articles = max(articles, 1)
        for term, docs in weighted.items():
            frequency = len({self.documents[doc].article_id for doc in docs})
            idf = math.log(1 + (articles - frequency + 0.5) / (frequency + 0.5))
            self.idf[term] = idf
            self.postings[term] = (
                np.fromiter(docs.keys(), dtype=np.intp, count=len(docs)),
                np.fromiter(
                    (idf * tf / (K1 + tf) for tf in docs.values()), dtype=np.float64, count=len(docs)
                ),
            )
        self.max_idf = math.log(1 + (articles + 0.5) / 0.5)
        self.unknown_weight = UNKNOWN_WEIGHT * self.max_idf

    def search(self, query: str, *, country: str | None, channel: str | None, limit: int) -> SearchResult:
        country = country.upper() if country else None
        channel = channel.lower() if channel else None
        if not self.article_ids:
            return SearchResult(query=query, hits=[], verdict=NONE)
        doc_mask, article_mask = self._mask(country, channel)
        lexical = self._lexical(self.analyze(query), doc_mask)
        if lexical is None:  # nothing worth searching: a greeting, an emoji
            return SearchResult(query=query, hits=[], verdict=NONE)
        semantic = None
        if self.semantic is not None and not self._lexically_sure(lexical):
            semantic = self._semantic(query, doc_mask)
            scores = (1 - SEMANTIC_WEIGHT) * lexical + SEMANTIC_WEIGHT * semantic
            scores[~article_mask] = -1.0
        else:
            scores = np.where(lexical > 0, lexical, -1.0)
        order = np.argsort(-scores, kind="stable")[: max(limit, 2)]
        hits = [
            Hit(
                self.entries[self.article_ids[index]].resolve(country, channel),
                round(float(scores[index]), 4),
                lexical=round(float(lexical[index]), 4),
                semantic=round(float(semantic[index]), 4) if semantic is not None else None,
            )
            for index in order
            if scores[index] >= 0
        ]
        verdict = self.verdict([hit.score for hit in hits])
        return SearchResult(query=query, hits=hits[:limit], verdict=verdict)

    def _mask(self, country: str | None, channel: str | None) -> tuple[np.ndarray, np.ndarray]:
        """Which documents speak for the context, and which articles may be shown in it."""
        key = (country, channel)
        cached = self._masks.get(key)
        if cached is None:
            docs = np.array(
                [self._applies(document, country, channel) for document in self.documents], dtype=bool
            )
            articles = np.maximum.reduceat(docs, self.starts) if len(docs) else docs
            cached = self._masks[key] = (docs, articles.astype(bool))
        return cached

    def analyze(self, query: str) -> list[tuple[str | None, float, float]]:
        """The question's terms as (term, weight, factor): a word the articles use counts its idf
        fully; a typo of one counts as that word, less (FUZZY_WEIGHT); a word they never use is
        (None, weight, 0): it only lowers the share the articles can match. Numbers are skipped."""
        analyzed: list[tuple[str | None, float, float]] = []
        seen: set[str] = set()
        for word in words(query):
            if word in STOP_WORDS or word.isdigit():
                continue
            term, factor = stem(word), 1.0
            if term not in self.idf:
                term, factor = self._closest(word), FUZZY_WEIGHT
            if term is None:
                analyzed.append((None, self.unknown_weight, 0.0))
            elif term not in seen:
                seen.add(term)
                analyzed.append((term, self.idf[term], factor))
        return analyzed

    def _closest(self, word: str) -> str | None:
        """The known term an unknown word most likely means: the longest known stem it starts
        with ("rastreo" → "rastr", which the stemmer gives "rastrear"), else a word one edit away
        (a transposition is one edit) for words of 4-8 letters, two for longer ones."""
        if len(word) < FUZZY_MIN_LENGTH:
            return None
        for end in range(len(word) - 1, FUZZY_MIN_LENGTH, -1):
            if word[:end] in self.idf:
                return word[:end]
        distance = 1 if len(word) <= 8 else 2
        found = process.extractOne(word, self.vocabulary, scorer=OSA.distance, score_cutoff=distance)
        if found is None:
            return None
        term = stem(found[0])
        return term if term in self.idf else None

    def _lexical(
        self, analyzed: list[tuple[str | None, float, float]], doc_mask: np.ndarray
    ) -> np.ndarray | None:
        """Per article: the share of the question's weight its best document matches (0..1).
        None when the question has no words worth searching (a greeting, an emoji)."""
        if not analyzed:
            return None
        # A question of one common word ("cuanto?") is not a confident match even if an article
        # has that word: the share is taken of at least MIN_WEIGHT times the rarest word's weight.
        total = max(sum(weight for _, weight, _ in analyzed), MIN_WEIGHT * self.max_idf)
        scores = np.zeros(len(self.documents))
        known = set()
        for term, _, factor in analyzed:
            if term is None:
                continue
            known.add(term)
            docs, contributions = self.postings[term]
            scores[docs] += contributions * factor
        normalized = np.minimum(scores / total, 1.0)
        phrase_docs = {
            doc
            for term in known
            for doc, phrase in self.phrases.get(term, ())
            if phrase <= known and scores[doc] > 0
        }
        if phrase_docs:  # a synonym said whole: closer to certain, never above 1
            chosen = np.fromiter(phrase_docs, dtype=np.intp, count=len(phrase_docs))
            normalized[chosen] += PHRASE_BONUS * (1 - normalized[chosen])
        normalized[~doc_mask] = 0.0
        return np.maximum.reduceat(normalized, self.starts)

    def _semantic(self, query: str, doc_mask: np.ndarray) -> np.ndarray:
        """Per article: its best document's cosine with the question, scaled to 0..1."""
        cosines = self.semantic.similarities(query)
        scaled = np.clip((cosines - COSINE_FLOOR) / (COSINE_CEILING - COSINE_FLOOR), 0.0, 1.0)
        scaled[~doc_mask] = 0.0
        return np.maximum.reduceat(scaled, self.starts)

    def _applies(self, document: _Document, country: str | None, channel: str | None) -> bool:
        return document.compatible(country, channel) and self.entries[document.article_id].base.applies_to(
            country, channel
        )

    def _lexically_sure(self, lexical: np.ndarray) -> bool:
        """A clear lexical winner needs no sentence model: its ~15 ms per question are spent
        only on the questions the words alone leave open."""
        top = np.sort(lexical)[-2:] if len(lexical) >= 2 else np.array([0.0, *lexical])
        return top[-1] >= SURE_LEXICAL.answer and top[-1] - top[-2] >= SURE_LEXICAL.margin

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


def searchable_text(article: Article) -> str:
    return " ".join(
        [
            article.title,
            article.short,
            *article.synonyms,
            *article.tags,
            *article.steps,
            article.before or "",
            article.if_fails or "",
        ]
    )


def passage_text(article: Article) -> str:
    """What the sentence model reads of an article: what it is about, in a few lines."""
    return ". ".join([article.title, article.short, "; ".join(article.synonyms)])
