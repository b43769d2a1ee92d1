"""Spanish text as the search compares it: folded, split into words, stop words out, stemmed.

"¿Cuánto TARDA el envío?" and "cuanto tardan los envios" become the same terms, so a customer's
spelling (no accents, capitals, plurals, verb forms) matches the article's.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from pathlib import Path

WORD = re.compile(r"[a-z0-9]+")

# Words that say nothing about what the customer wants, in a file designers can read. Question
# words that do ("cuanto", "donde", "cuando") are kept: "cuánto cuesta" and "cuándo llega" differ.
STOP_WORDS = frozenset(
    word
    for line in (Path(__file__).parent / "stop_words.txt").read_text(encoding="utf-8").splitlines()
    if not line.startswith("#")
    for word in line.split()
)


@lru_cache(maxsize=65536)
def fold(text: str) -> str:
    """Lowercase, without accents or the ñ's tilde: the spelling customers type on a phone."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(char for char in decomposed if not unicodedata.combining(char))


def words(text: str) -> list[str]:
    """The folded words of `text`, stop words included."""
    return WORD.findall(fold(text))


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """A light Spanish stem: plural and common verb endings off, so forms of one word meet."""
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


_SUFFIXES = sorted(
    ("amientos", "imientos", "amiento", "imiento", "aciones", "iciones", "acion", "icion", "ando"),
    key=len,
    reverse=True,
) + ["iendo", "ados", "idos", "adas", "idas", "ado", "ido", "ada", "ida", "ar", "er", "ir"]
_SUFFIXES += ["an", "en", "as", "es", "os", "a", "e", "o", "s"]


def terms(text: str) -> list[str]:
    """The search terms of `text`: folded words without stop words, stemmed."""
    return [stem(word) for word in words(text) if word not in STOP_WORDS]
