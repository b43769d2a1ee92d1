"""The consent log as CSV, for an operator or an auditor (`make consents FROM=… TO=…`)."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from typing import TextIO

from bot.consents.store import LoggedConsent

COLUMNS = ("at_utc", "phone", "topic", "channel", "granted", "via", "source", "message_id", "message_text")


def write_csv(entries: Iterable[LoggedConsent], out: TextIO) -> int:
    """One row per change, oldest first, times in UTC (ISO 8601); how many rows were written.
    `topic` "*" is a BAJA / ALTA (every topic); `message_text` is already masked when stored.
    A text starting with = + - @ is prefixed with ' so a spreadsheet never runs it as a formula."""
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    count = 0
    for entry in entries:
        writer.writerow(
            (
                entry.at.isoformat(), entry.phone, entry.topic, entry.channel,
                "yes" if entry.granted else "no", entry.via, entry.source,
                entry.message_id or "", _inert(entry.message_text or ""),
            )
        )  # fmt: skip
        count += 1
    return count


def _inert(text: str) -> str:
    return f"'{text}" if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
