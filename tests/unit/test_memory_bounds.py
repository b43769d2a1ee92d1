"""Every in-process memory that grows per customer or per message is bounded: 100,000 keys
pushed through each leave at most its capacity behind, and what eviction must not do (unlock
someone early, let a fresh duplicate through) it does not."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from bot.clock import FixedClock
from bot.handoff.logins import LoginLimits
from bot.messaging.memory import IN_PROCESS_CAPACITY, InProcessMemory
from bot.verification import IN_PROCESS_ATTEMPT_KEYS, AttemptStoreFull, MemoryAttemptStore

KEYS = 100_000
WINDOW = timedelta(minutes=15)


def test_the_conversation_memory_stays_bounded():
    memory = InProcessMemory()
    for number in range(KEYS):
        memory.remember_card(f"+52155{number:08d}", True, "4111 1111")
    assert len(memory) <= IN_PROCESS_CAPACITY
    assert memory.card_context(f"+52155{KEYS - 1:08d}").tail == "4111 1111"


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime(2026, 11, 26, 16, 0, tzinfo=timezone.utc))


def test_the_attempt_store_stays_bounded_and_refuses_new_keys_rather_than_evict_live_ones(clock):
    store = MemoryAttemptStore(clock)
    store.put("lock:customer:C-001", "1", WINDOW)
    refused = 0
    for number in range(KEYS):
        try:
            store.hit(f"failed:customer:C-{number:06d}", WINDOW)
        except AttemptStoreFull:
            refused += 1
    assert len(store) == IN_PROCESS_ATTEMPT_KEYS and refused == KEYS - IN_PROCESS_ATTEMPT_KEYS + 1
    assert store.get("lock:customer:C-001") == "1"  # never evicted before its time
    assert store.hit("failed:customer:C-000000", WINDOW) == 2  # existing keys still count
    assert store.full()
    clock.advance(WINDOW)  # everything expires: room again, found through the expiry heap
    store.hit("failed:customer:C-new", WINDOW)
    assert len(store) == 1 and not store.full()


def test_expired_keys_make_room_before_anything_is_refused(clock):
    store = MemoryAttemptStore(clock, capacity=1000)
    for number in range(KEYS):
        store.put(f"code:{number}", "7", timedelta(seconds=1))
        if number % 1000 == 999:
            clock.advance(timedelta(seconds=1))
    assert len(store) <= 1000


def test_a_full_attempt_store_refuses_console_logins_before_any_password_is_hashed(clock):
    store = MemoryAttemptStore(clock, capacity=10)
    limits = LoginLimits(store, per_account=5, per_address=20, window=WINDOW)
    for number in range(5):
        limits.failed(f"name{number}", f"10.0.0.{number}")
    assert store.full() and not limits.allows("ana", "10.0.0.99")  # 429, never unlimited tries
    clock.advance(WINDOW)
    assert limits.allows("ana", "10.0.0.99")
