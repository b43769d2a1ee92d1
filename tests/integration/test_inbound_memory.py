"""The inbound rules' memory (card data last message, options on screen) on real Redis and in process."""

from __future__ import annotations

import time

import pytest

from bot.messaging.memory import (
    CARD_TAIL_TTL_S,
    CardContext,
    ConversationMemory,
    InProcessMemory,
    RedisMemory,
    memory_for,
)
from tests.conftest import REDIS_URL

PHONE = "+525512345678"
OPTIONS = [
    {"title": "PED-1004 — Auriculares", "payload": '/choose{"order": "PED-1004"}'},
    {"title": "Ñandú ¿sí?", "payload": "/b"},
]


@pytest.fixture(params=["in_process", "redis"])
def memory(request, redis_client):
    found: ConversationMemory = InProcessMemory() if request.param == "in_process" else RedisMemory(REDIS_URL)
    yield found
    found.close()


def test_card_memory_is_per_conversation_and_forgotten_after_an_ordinary_message(memory):
    assert not memory.after_card(PHONE)
    memory.remember_card(PHONE, True)
    assert memory.after_card(PHONE) and not memory.after_card("+525500000000")
    memory.remember_card(PHONE, False)
    assert not memory.after_card(PHONE)


def test_options_are_read_back_as_offered_and_taken_once(memory):
    assert memory.pending_buttons(PHONE) == []
    memory.set_pending_buttons(PHONE, OPTIONS)
    assert memory.pending_buttons(PHONE) == OPTIONS  # a peek leaves them
    assert memory.take_pending_buttons(PHONE) == OPTIONS
    assert memory.take_pending_buttons(PHONE) == []
    memory.set_pending_buttons(PHONE, OPTIONS)
    memory.clear_pending_buttons(PHONE)
    assert memory.pending_buttons(PHONE) == []


def test_two_replicas_on_redis_share_what_they_remember(redis_client):
    first, second = RedisMemory(REDIS_URL), RedisMemory(REDIS_URL)
    first.remember_card(PHONE, True)
    first.set_pending_buttons(PHONE, OPTIONS)
    assert second.after_card(PHONE)
    assert second.take_pending_buttons(PHONE) == OPTIONS
    assert first.pending_buttons(PHONE) == []
    first.close()
    second.close()


def test_redis_memory_expires(redis_client):
    memory = RedisMemory(REDIS_URL, ttl_s=1)
    memory.remember_card(PHONE, True)
    memory.set_pending_buttons(PHONE, OPTIONS)
    assert 0 < redis_client.ttl(f"inbound:card:{PHONE}") <= 1
    assert 0 < redis_client.ttl(f"inbound:buttons:{PHONE}") <= 1
    memory.close()


def test_in_process_memory_is_bounded_and_expires():
    memory = InProcessMemory(ttl_s=0.05, capacity=2)
    for phone in ("+1", "+2", "+3"):
        memory.remember_card(phone, True)
    assert not memory.after_card("+1")  # the least recently used went
    assert memory.after_card("+2") and memory.after_card("+3")
    time.sleep(0.06)
    assert not memory.after_card("+3")


def test_redis_is_used_when_configured():
    assert isinstance(memory_for(None), InProcessMemory)
    configured = memory_for(REDIS_URL)
    assert isinstance(configured, RedisMemory)
    configured.close()


def test_the_card_tail_is_kept_with_the_card_fact_and_replaced_by_the_next_message(memory):
    assert memory.card_context(PHONE) == CardContext()
    memory.remember_card(PHONE, False, "4111 1111")
    assert memory.card_context(PHONE) == CardContext(after_card=False, tail="4111 1111")
    assert memory.card_context("+525500000000").tail == ""
    memory.remember_card(PHONE, True)
    assert memory.card_context(PHONE) == CardContext(after_card=True, tail="")


def test_the_card_tail_lives_in_redis_for_minutes_only(redis_client):
    memory = RedisMemory(REDIS_URL)
    memory.remember_card(PHONE, False, "4111 1111")
    assert 0 < redis_client.ttl(f"inbound:tail:{PHONE}") <= CARD_TAIL_TTL_S
    assert RedisMemory(REDIS_URL).card_context(PHONE).tail == "4111 1111"  # another replica
    memory.close()
