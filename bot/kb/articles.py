"""One knowledge-base article as the bot shows it, and how it is rendered per channel."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

COUNTRIES = ("MX", "AR", "PE", "CO", "CL")
CHANNELS = ("whatsapp", "sms")
ALL = "all"
DEFAULT_REVIEW_DAYS = 90


@dataclass(frozen=True)
class Article:
    """An article (a base, or a variant already merged with its base). `countries` and `channels`
    hold ISO codes / channel names, or ("all",)."""

    id: str
    title: str
    short: str
    steps: tuple[str, ...]
    before: str | None
    if_fails: str | None
    countries: tuple[str, ...]
    channels: tuple[str, ...]
    tags: tuple[str, ...]
    synonyms: tuple[str, ...]
    intent: str | None
    flow: str | None
    owner: str
    last_reviewed: date
    review_days: int
    link: str
    path: str

    def applies_to(self, country: str | None, channel: str | None) -> bool:
        """Whether the article may be shown in this context (None: any country / channel)."""
        return _covers(self.countries, country and country.upper()) and _covers(
            self.channels, channel and channel.lower()
        )

    def review_due_on(self) -> date:
        return self.last_reviewed + timedelta(days=self.review_days)

    def review_due(self, today: date) -> bool:
        """Whether the article is past its review date on `today` (given: never the clock)."""
        return today > self.review_due_on()

    def render(self, channel: str | None = None) -> str:
        """The answer as the channel shows it: SMS the short answer and the link (few segments);
        WhatsApp (and an unknown channel) the short answer, the numbered steps and the link."""
        if channel is not None and channel.lower() == "sms":
            return f"{self.short}\n{self.link}"
        parts = [self.short]
        if self.steps:
            parts.append("\n".join(f"{number}. {step}" for number, step in enumerate(self.steps, 1)))
        parts.append(self.link)
        return "\n\n".join(parts)


def _covers(allowed: tuple[str, ...], value: str | None) -> bool:
    return value is None or ALL in allowed or value in allowed


@dataclass(frozen=True)
class Entry:
    """A base article and its variants (already merged with the base)."""

    base: Article
    variants: tuple[Article, ...]

    def resolve(self, country: str | None, channel: str | None) -> Article:
        """The most specific article for the context: a country match beats a channel match;
        an unknown country or channel takes only what is written for all."""
        country = country.upper() if country else None
        channel = channel.lower() if channel else None
        best, best_rank = self.base, (0, 0)
        for variant in self.variants:
            country_match = _match(variant.countries, country)
            channel_match = _match(variant.channels, channel)
            if country_match is None or channel_match is None:
                continue
            rank = (country_match, channel_match)
            if rank > best_rank:
                best, best_rank = variant, rank
        return best


def _match(allowed: tuple[str, ...], value: str | None) -> int | None:
    """1 for a named match, 0 for 'all', None when it does not apply."""
    if ALL in allowed:
        return 0
    if value is not None and value in allowed:
        return 1
    return None
