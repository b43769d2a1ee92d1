"""Spanish text as the search compares it: folded, split into words, stop words out, stemmed
(Snowball's Spanish stemmer).

"¿Cuánto TARDA el envío?" and "cuanto tardan los envios" become the same terms, so a customer's
spelling (no accents, capitals, plurals, verb forms) matches the article's.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import snowballstemmer

# The one folding of customers' words (lower case, no accents or ñ's tilde, punctuation as
# spaces): the search's words are what WORD finds in it.
from bot.choices import fold

WORD = re.compile(r"[a-z0-9]+")

# Words that say nothing about what the customer wants, in a file designers can read. Question
# words that do ("cuanto", "donde", "cuando") are kept: "cuánto cuesta" and "cuándo llega" differ.
STOP_WORDS = frozenset(
    word
    for line in (Path(__file__).parent / "stop_words.txt").read_text(encoding="utf-8").splitlines()
    if not line.startswith("#")
    for word in line.split()
)


def words(text: str) -> list[str]:
    """The folded words of `text`, stop words included."""
    return WORD.findall(fold(text))


_STEMMER = snowballstemmer.stemmer("spanish")


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """The Snowball Spanish stem of a folded word: "envios", "enviar", "envio" all give "envi".
    Folding first keeps a word typed without accents on the same stem as the accented one."""
    return _STEMMER.stemWord(word)


def terms(text: str) -> list[str]:
    """The search terms of `text`: folded words without stop words, stemmed."""
    return [stem(word) for word in words(text) if word not in STOP_WORDS]
