"""Exports the customer messages the assistant misunderstood, masked, to a YAML file designers label.

`make inbox [SINCE=2026-11-01] [OUT=inbox/2026-11-30.yml]` runs it. It reads Rasa's SQL tracker
store (the `events` table) on DATABASE_URL, from the settings: the SQLite file under var/ by
default, PostgreSQL in production. What is exported and why is bot/inbox.py; docs/designing.md,
"Review real misunderstood messages", is the designers' guide. `make accept` takes the file back.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402
import yaml  # noqa: E402
from rasa.core.tracker_store import SQLTrackerStore  # noqa: E402
from rasa.shared.core.events import deserialise_events  # noqa: E402

from bot.adapters.sql import create_engine, is_sqlite_file  # noqa: E402
from bot.clock import Clock, SystemClock, parse_moment  # noqa: E402
from bot.inbox import (  # noqa: E402
    REASONS,
    Misunderstood,
    group_messages,
    keep_labels,
    misunderstood_messages,
    reason_counts,
    render_inbox,
)
from bot.settings import Settings, SettingsError  # noqa: E402
from connectors.stores import masked_events  # noqa: E402

INBOX_DIR = ROOT / "inbox"
DEFAULT_DAYS = 7
PROGRESS_EVERY = 200  # conversations between two progress lines


@dataclass(frozen=True)
class Summary:
    """What one export found."""

    path: Path
    conversations: int  # conversations with events in the window
    occurrences: int  # messages exported, before grouping identical texts
    texts: int  # entries in the file
    by_reason: dict[str, int]
    labels_kept: int

    def line(self) -> str:
        kinds = ", ".join(f"{self.by_reason[reason]} {reason}" for reason in REASONS)
        kept = f"; {self.labels_kept} labels kept from the earlier file" if self.labels_kept else ""
        return (
            f"{self.texts} messages to review ({self.occurrences} times written, in "
            f"{self.conversations} conversations read): {kinds}{kept} → {self.path}"
        )


def window_start(value: str | None, clock: Clock, zone: str) -> datetime:
    """SINCE: a day (its midnight in BOT_TIMEZONE) or a moment with its offset; by default
    seven days before the clock's now."""
    if not value:
        return clock.now() - timedelta(days=DEFAULT_DAYS)
    try:
        day = date.fromisoformat(value.strip())
    except ValueError:
        try:
            return parse_moment(value)
        except ValueError:
            raise ValueError(
                f"{value!r}: write a day (2026-11-01) or a moment with its offset (2026-11-01T08:00:00-06:00)"
            ) from None
    return datetime.combine(day, time(0), ZoneInfo(zone))


def default_path(clock: Clock, zone: str) -> Path:
    return INBOX_DIR / f"{clock.now().astimezone(ZoneInfo(zone)).date().isoformat()}.yml"


def stored_conversations(
    engine: sa.engine.Engine, since: datetime
) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """(conversation id, its events since `since` in stored order), one conversation at a time,
    streamed: the table may hold millions of rows."""
    events = SQLTrackerStore.SQLEvent.__table__
    if not sa.inspect(engine).has_table(events.name):
        return
    query = (
        sa.select(events.c.sender_id, events.c.data)
        .where(events.c.timestamp >= since.timestamp())
        .order_by(events.c.sender_id, events.c.id)
    )
    with engine.connect() as conn:
        rows = conn.execution_options(stream_results=True, yield_per=1000).execute(query)
        for sender_id, group in itertools.groupby(rows, key=lambda row: row.sender_id):
            yield sender_id, [json.loads(row.data) for row in group]


def masked_as_stored(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The events with the tracker store's own masking applied again (cards, a card split over two
    messages, answers to the code and document questions): rows written before it, or by another
    store, come out as safe as new ones."""
    return [event.as_dict() for event in masked_events(deserialise_events(events), 0)]


def export(
    settings: Settings,
    clock: Clock,
    since: datetime,
    out: Path,
    say: Callable[[str], None] = print,
) -> Summary:
    """Reads the tracker store, writes the inbox file at `out` (keeping the labels of an earlier
    version of it), and says what it found."""
    url = settings.database_url
    engine_url = sa.engine.make_url(url)
    local = since.astimezone(ZoneInfo(settings.bot_timezone)).isoformat(timespec="minutes")
    say(f"==> Reading the conversations since {local} from {engine_url!r}")
    messages: list[Misunderstood] = []
    conversations = 0
    if is_sqlite_file(url) and not Path(engine_url.database).exists():
        say("    no tracker store there yet: nothing to export")
    else:
        engine = create_engine(url)
        try:
            for conversation_id, events in stored_conversations(engine, since):
                conversations += 1
                messages += misunderstood_messages(conversation_id, masked_as_stored(events))
                if conversations % PROGRESS_EVERY == 0:
                    say(f"    {conversations} conversations read, {len(messages)} messages found")
        finally:
            engine.dispose()
    entries = group_messages(messages)
    previous = yaml.safe_load(out.read_text(encoding="utf-8")) if out.exists() else None
    kept = keep_labels(entries, previous if isinstance(previous, dict) else None)
    out.parent.mkdir(parents=True, exist_ok=True)
    shown = out.relative_to(ROOT) if out.is_relative_to(ROOT) else out
    out.write_text(
        render_inbox(entries, since, clock.now(), settings.bot_timezone, str(shown)), encoding="utf-8"
    )
    summary = Summary(out, conversations, len(messages), len(entries), reason_counts(entries), kept)
    say(f"==> {summary.line()}")
    if entries:
        say(f"    next: label them, then `make accept FILE={shown}`")
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--since", help="a day (2026-11-01) or a moment with its offset; default: 7 days ago")
    parser.add_argument("--out", type=Path, help="the file to write; default: inbox/<today>.yml")
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
    except SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    clock = SystemClock(settings.clock_shift)  # the project's clock: BOT_NOW moves it in development
    try:
        since = window_start(args.since, clock, settings.bot_timezone)
    except ValueError as error:
        print(f"error: SINCE: {error}", file=sys.stderr)
        return 2
    out = args.out or default_path(clock, settings.bot_timezone)
    export(settings, clock, since, out if out.is_absolute() else Path.cwd() / out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
