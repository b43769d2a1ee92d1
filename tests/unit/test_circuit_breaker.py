"""The circuit breaker on its own: states, the single probe, thread safety."""

from concurrent.futures import ThreadPoolExecutor

from bot.adapters.rest.breaker import CircuitBreaker, CircuitState
from tests.rest_fixtures import FakeClock


def tripped(clock: FakeClock) -> CircuitBreaker:
    breaker = CircuitBreaker(failure_threshold=3, cooldown_s=10, clock=clock)
    for _ in range(3):
        assert breaker.allow()
        breaker.record_failure()
    return breaker


def test_failures_below_the_threshold_keep_it_closed_and_a_success_resets_the_count():
    breaker = CircuitBreaker(failure_threshold=3, cooldown_s=10, clock=FakeClock())
    for _ in range(2):
        breaker.record_failure()
    breaker.record_success()
    for _ in range(2):
        breaker.record_failure()
    assert breaker.state is CircuitState.CLOSED and breaker.allow()


def test_open_fails_fast_until_the_cooldown_then_lets_exactly_one_probe_through():
    clock = FakeClock()
    breaker = tripped(clock)
    assert breaker.state is CircuitState.OPEN and not breaker.allow()
    assert breaker.retry_in() == 10
    clock.advance(10)
    with ThreadPoolExecutor(8) as pool:
        allowed = list(pool.map(lambda _: breaker.allow(), range(8)))
    assert allowed.count(True) == 1  # one probe, however many callers arrive at once
    breaker.record_success()
    assert breaker.state is CircuitState.CLOSED and breaker.allow()


def test_a_failed_probe_opens_it_for_another_cooldown():
    clock = FakeClock()
    breaker = tripped(clock)
    clock.advance(10)
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.state is CircuitState.OPEN and not breaker.allow()
    clock.advance(9)
    assert not breaker.allow()
    clock.advance(1)
    assert breaker.allow()


def test_a_probe_that_never_reports_back_is_replaced_after_a_cooldown():
    clock = FakeClock()
    breaker = tripped(clock)
    clock.advance(10)
    assert breaker.allow()  # the probe's thread dies without recording anything
    assert not breaker.allow()
    clock.advance(10)
    assert breaker.allow()
