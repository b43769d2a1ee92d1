"""Times the KPIs of one week of 100,000 conversations (`make kpi-bench`; a benchmark, not a test).

Writes the analytics rows of a seeded week straight into a fresh database (a SQLite file under
var/ by default, or BENCH_DATABASE_URL), as the consumer leaves them: sessions, handoffs, cases
and misunderstood messages, plus the 72 hours after the week that first-contact resolution reads.
Then it times what `make report` does: reading the facts of the week and computing every KPI.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.adapters.sql import SqlStore, to_db_time  # noqa: E402
from bot.analytics.kpis import Period, compute_kpis  # noqa: E402
from bot.analytics.schema import (  # noqa: E402
    analytics_cases,
    analytics_handoffs,
    analytics_misunderstood,
    analytics_sessions,
    metadata,
)
from bot.settings import shown_url  # noqa: E402

WEEK_START = datetime(2026, 11, 23, 6, 0, tzinfo=timezone.utc)  # Monday 00:00 in Mexico City
INTENTS = [
    "order_status",
    "reschedule_delivery",
    "check_balance",
    "make_payment",
    "faq",
    "cancel_order",
    None,
]
TEXTS = [
    "el cupón no me funciona",
    "¿hay promociones?",
    "me llegó otro color",
    "no entiendo",
    "¿tienen garantía?",
]


def fill(store: SqlStore, conversations: int, seed: int) -> None:
    rng = random.Random(seed)
    span = 7 * 86400 + 72 * 3600
    sessions, handoffs, cases, messages = [], [], [], []
    for number in range(int(conversations * span / (7 * 86400))):
        start = WEEK_START + timedelta(seconds=rng.uniform(0, span))
        conversation = f"+5255{rng.randrange(10**7, 10**8)}"
        turns = rng.randint(1, 6)
        fallbacks = rng.choices([0, 1, 2], weights=[85, 12, 3])[0]
        sessions.append(
            {
                "session_id": hashlib.sha256(f"{number}".encode()).hexdigest()[:32],
                "conversation_id": conversation,
                "customer_key": hashlib.sha256(conversation.encode()).hexdigest()[:32],
                "channel": "whatsapp" if rng.random() < 0.8 else "sms",
                "country": rng.choice(["MX", "MX", "PE", "AR", "CO"]),
                "started_at": to_db_time(start),
                "ended_at": to_db_time(start + timedelta(minutes=rng.uniform(1, 15))),
                "intent": rng.choice(INTENTS),
                "customer_turns": turns,
                "fallback_turns": min(fallbacks, turns),
                "clarification_turns": min(fallbacks, turns) // 2,
                "last_turn_fell_back": rng.random() < 0.05,
                "handed_over": False,
            }
        )
        if rng.random() < 0.1:
            created = start + timedelta(minutes=2)
            handoffs.append(
                {
                    "handoff_id": f"HO-{number:08d}",
                    "conversation_id": conversation,
                    "reason": rng.choice(["customer_request", "not_understood", "angry_language"]),
                    "agent": rng.choice(["ana", "beto", "carla"]),
                    "created_at": to_db_time(created),
                    "accepted_at": to_db_time(created + timedelta(minutes=3)),
                    "ended_at": to_db_time(created + timedelta(minutes=rng.uniform(5, 30))),
                    "satisfaction": rng.choice([None, 3, 4, 5]),
                }
            )
        elif rng.random() < 0.05:
            cases.append(
                {
                    "case_id": f"GES-{number:08d}",
                    "conversation_id": conversation,
                    "kind": "cancel_order",
                    "opened_at": to_db_time(start),
                    "resolved_at": to_db_time(start + timedelta(hours=rng.uniform(1, 72))),
                }
            )
        if fallbacks:
            messages.append(
                {
                    "conversation_id": conversation,
                    "at": to_db_time(start),
                    "text": rng.choice(TEXTS),
                    "reasons": "fallback",
                    "predicted": None,
                }
            )
    with store.connect() as conn:
        metadata.drop_all(conn)
        metadata.create_all(conn)
        for table, rows in (
            (analytics_sessions, sessions),
            (analytics_handoffs, handoffs),
            (analytics_cases, cases),
            (analytics_misunderstood, messages),
        ):
            for index in range(0, len(rows), 10000):
                conn.execute(table.insert(), rows[index : index + 10000])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=100_000, help="conversations in the week")
    parser.add_argument("--seed", type=int, default=19)
    args = parser.parse_args(argv)
    url = os.environ.get("BENCH_DATABASE_URL") or f"sqlite:///{ROOT / 'var' / 'kpi_bench.db'}"
    (ROOT / "var").mkdir(exist_ok=True)
    store = SqlStore(url)
    print(f"==> Writing a week of {args.conversations:,} conversations into {shown_url(url)} ...", flush=True)
    fill(store, args.conversations, args.seed)
    from bot.analytics.store import AnalyticsStore

    analytics = AnalyticsStore(store)
    period = Period(WEEK_START, WEEK_START + timedelta(days=7))
    now = period.end + timedelta(days=4)
    began = time.perf_counter()
    facts = analytics.facts(period)
    read = time.perf_counter()
    kpis = compute_kpis(period, now, zone="America/Mexico_City", active_customers=None, **facts)
    done = time.perf_counter()
    print(
        f"==> {kpis.overall.sessions:,} sessions in the week: read in {read - began:.2f} s, "
        f"KPIs computed in {done - read:.2f} s, {done - began:.2f} s in all "
        f"(containment {100 * (kpis.overall.containment or 0):.1f}%)."
    )
    store.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
