"""The outbox worker's health and readiness (connectors/outbox_worker.py) on a clock the test moves,
and its stop between writes (bot/outbox_worker.py) on fakes."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone

from bot.adapters.outbox_sql import OutboxEntry
from bot.outbox import WriteKind
from bot.outbox_worker import OutboxWorker
from connectors.outbox_worker import WorkerHealth

MOMENT = datetime(2026, 11, 26, 16, 0, tzinfo=timezone.utc)


class Monotonic:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


def test_the_worker_is_ready_once_a_round_reached_the_database():
    clock = Monotonic()
    health = WorkerHealth(clock, stale_after_s=300)
    assert health.alive() and not health.ready()  # just started: alive, no round yet
    health.round_ended(reached_database=True)
    assert health.ready()
    health.round_ended(reached_database=False)  # the database went away
    assert health.alive() and not health.ready()


def test_a_loop_that_ended_no_round_for_too_long_is_not_alive():
    clock = Monotonic()
    health = WorkerHealth(clock, stale_after_s=300)
    health.round_ended(reached_database=True)
    clock.now += 300
    assert health.alive() and health.ready()
    clock.now += 1
    assert not health.alive() and not health.ready()


def test_a_stopping_worker_is_not_ready():
    health = WorkerHealth(Monotonic())
    health.round_ended(reached_database=True)
    health.stopping = True
    assert health.alive() and not health.ready()


class FakeOutbox:
    def __init__(self, entries: list[OutboxEntry]) -> None:
        self.entries = entries
        self.applied: list[int] = []

    def claim_due(self, now: datetime, limit: int = 20) -> list[OutboxEntry]:
        return list(self.entries)

    def mark_applied(self, entry_id: int, attempts: int, now: datetime) -> None:
        self.applied.append(entry_id)


def entry(entry_id: int) -> OutboxEntry:
    return OutboxEntry(
        id=entry_id, idempotency_key=f"key-{entry_id}", kind="note", payload={},
        management_id=f"GES-{entry_id}", conversation_id="+525512345678",
        customer_phone="+525512345678", status="pending", attempts=0,
        next_attempt_at=MOMENT, last_error=None, failure_case_id=None, created_at=MOMENT,
    )  # fmt: skip


def test_a_stop_during_a_write_finishes_that_write_and_leaves_the_rest_of_the_batch():
    outbox = FakeOutbox([entry(1), entry(2), entry(3)])

    async def scenario() -> tuple[int, list[str]]:
        stop = asyncio.Event()
        told: list[str] = []

        async def notify(phone, conversation_id, response, values) -> None:
            told.append(values["management_id"])
            stop.set()  # SIGTERM arrives while the first write is being finished

        kind = WriteKind("note", lambda system, payload: None, "crm", "utter_write_applied")
        worker = OutboxWorker(
            outbox,
            type("Backends", (), {"crm": object()})(),
            None,
            notify,
            lambda: MOMENT,
            kinds={"note": kind},
        )
        return await worker.run_once(stop), told

    tried, told = asyncio.run(scenario())
    assert tried == 1 and outbox.applied == [1] and told == ["GES-1"]


def test_rounds_are_reported_with_whether_they_reached_the_database():
    class BrokenOutbox(FakeOutbox):
        def claim_due(self, now: datetime, limit: int = 20) -> list[OutboxEntry]:
            raise ConnectionError("database down")

    rounds: list[bool] = []

    async def scenario(outbox) -> None:
        stop = asyncio.Event()

        def on_round(ok: bool) -> None:
            rounds.append(ok)
            stop.set()

        worker = OutboxWorker(outbox, None, None, None, lambda: MOMENT)
        await worker.run_forever(stop, poll_s=0.01, on_round=on_round)

    asyncio.run(scenario(FakeOutbox([])))
    asyncio.run(scenario(BrokenOutbox([])))
    assert rounds == [True, False]
