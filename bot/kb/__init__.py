"""The knowledge base: articles designers write as Markdown files under kb/, searched in the
customer's words, shown in the variant for their country and channel (docs/designing.md,
"Knowledge base: writing an article").

    kb = knowledge_base()                  # the process's instance; reloads edited files itself
    result = kb.search("aceptan yape?", country="PE", channel="whatsapp")
    result.verdict                         # "answer", "options" or "none"
    result.hits[0].article.render("whatsapp")
"""

from __future__ import annotations

from bot.kb.articles import Article
from bot.kb.base import KnowledgeBase
from bot.kb.parsing import KBError, Problem
from bot.kb.reloading import ReloadingKnowledgeBase, knowledge_base
from bot.kb.search import ANSWER, NONE, OPTIONS, Hit, SearchResult, Thresholds

__all__ = [
    "ANSWER",
    "NONE",
    "OPTIONS",
    "Article",
    "Hit",
    "KBError",
    "KnowledgeBase",
    "Problem",
    "ReloadingKnowledgeBase",
    "SearchResult",
    "Thresholds",
    "knowledge_base",
]
