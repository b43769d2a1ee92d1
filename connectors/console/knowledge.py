"""The knowledge base as the agent console shows it: search results, the list by tag, the articles
due for review, and an article's text for one conversation's channel and country.

Plain functions over a loaded `bot.kb.KnowledgeBase` that return what the templates print (the
templates escape every field: articles are written by people, and so is a query). They are
synchronous: the console calls them in a worker thread, since a search or a reload of kb/ takes
milliseconds, too long for the event loop that serves every agent.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from bot.kb import Article, KnowledgeBase
from bot.kb.articles import CHANNELS as CHANNEL_CODES
from bot.kb.articles import COUNTRIES

CHANNEL_LABELS = {"whatsapp": "WhatsApp", "sms": "SMS"}
CHANNELS = {code: CHANNEL_LABELS.get(code, code) for code in CHANNEL_CODES}
MAX_QUERY = 200
SEARCH_LIMIT = 10  # the knowledge base page
HANDOFF_LIMIT = 3  # beside the reply box: the top few, as the bot offers them


def clean_query(raw: str | None) -> str:
    return " ".join((raw or "").split())[:MAX_QUERY]


def clean_channel(raw: str | None) -> str | None:
    return raw if raw in CHANNELS else None


def clean_country(raw: str | None) -> str | None:
    country = (raw or "").strip().upper()
    return country if country in COUNTRIES else None


def safe_url(url: str | None) -> str | None:
    """The URL if it is a web link, never a javascript: or data: one put in an href."""
    return url if url and url.startswith(("https://", "http://")) else None


def _with_variants(kb: KnowledgeBase) -> list[Article]:
    return [one for article in kb.articles for one in (article, *kb.variants(article.id))]


def article_row(article: Article, today: date, channel: str | None = None) -> dict[str, Any]:
    """One article as the console prints it, with the text the customer would get on `channel`."""
    return {
        "id": article.id,
        "title": article.title,
        "short": article.short,
        "steps": list(article.steps),
        "before": article.before,
        "if_fails": article.if_fails,
        "owner": article.owner,
        "last_reviewed": article.last_reviewed.isoformat(),
        "review_by": article.review_due_on().isoformat(),
        "review_due": article.review_due(today),
        "link": safe_url(article.link),
        "tags": list(article.tags),
        "countries": [code for code in article.countries if code != "all"],
        "channels": [CHANNELS.get(code, code) for code in article.channels if code != "all"],
        "path": article.path,
        "text": article.render(channel),
    }


def search(
    kb: KnowledgeBase,
    query: str,
    *,
    today: date,
    country: str | None = None,
    channel: str | None = None,
    limit: int = SEARCH_LIMIT,
) -> tuple[list[dict[str, Any]], str]:
    """The hits for `query` (variant already chosen for the country and channel) and the verdict
    the bot would act on: "answer", "options" or "none"."""
    result = kb.search(query, country=country, channel=channel, limit=limit)
    rows = []
    for hit in result.hits:
        if not hit.article.applies_to(country, channel):
            continue
        rows.append({**article_row(hit.article, today, channel), "score": round(hit.score, 2)})
    return rows, result.verdict


def resolved(kb: KnowledgeBase, country: str | None, channel: str | None) -> list[Article]:
    """Every article in the variant `country` and `channel` get, leaving out those not for them."""
    chosen = [kb.resolve(article.id, country=country, channel=channel) for article in kb.articles]
    return [article for article in chosen if article.applies_to(country, channel)]


def by_tag(
    kb: KnowledgeBase, *, today: date, country: str | None = None, channel: str | None = None
) -> list[dict[str, Any]]:
    """Tags in alphabetical order, each with its articles (by title); an article with two tags is
    under both."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for article in resolved(kb, country, channel):
        row = article_row(article, today, channel)
        for tag in article.tags or ("sin etiqueta",):
            groups.setdefault(tag, []).append(row)
    return [
        {"tag": tag, "count": len(rows), "articles": sorted(rows, key=lambda row: row["title"].lower())}
        for tag, rows in sorted(groups.items())
    ]


def due_for_review(
    kb: KnowledgeBase, *, today: date, country: str | None = None, channel: str | None = None
) -> list[dict[str, Any]]:
    """Articles and variants past their review date on `today`, the longest overdue first: a
    variant is a file of its own, reviewed on its own date."""
    due = [
        article
        for article in _with_variants(kb)
        if article.review_due(today) and article.applies_to(country, channel)
    ]
    rows = [article_row(article, today, channel) for article in due]
    return sorted(rows, key=lambda row: (row["review_by"], row["title"].lower()))


def reply_text(kb: KnowledgeBase, article_id: str, *, country: str | None, channel: str | None) -> str | None:
    """The article as this conversation's customer would get it, or None if there is no such id."""
    if kb.get(article_id) is None:
        return None
    return kb.resolve(article_id, country=country, channel=channel).render(channel)
