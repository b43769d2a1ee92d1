"""A circuit breaker: after repeated failures, fail fast for a cool-down, then let one probe through."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from enum import Enum


class CircuitState(str, Enum):
    CLOSED = "closed"  # calls go through; consecutive failures are counted
    OPEN = "open"  # calls fail at once until the cool-down ends
    HALF_OPEN = "half_open"  # one probe call is in flight; its outcome closes or reopens


class CircuitBreaker:
    """Thread-safe: actions call the CRM/ERP from several worker threads at once."""

    def __init__(
        self,
        failure_threshold: int = 5,
        cooldown_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.failure_threshold = failure_threshold
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._lock = threading.Lock()
        self._state = CircuitState.CLOSED
        self._failures = 0
        self._opened_at = 0.0

    @property
    def state(self) -> CircuitState:
        with self._lock:
            if self._state is CircuitState.OPEN and self._cooled_down():
                return CircuitState.HALF_OPEN
            return self._state

    def _cooled_down(self) -> bool:
        return self._clock() - self._opened_at >= self.cooldown_s

    def allow(self) -> bool:
        """Whether a call may go out now; True in half-open for the one probe only."""
        with self._lock:
            if self._state is CircuitState.CLOSED:
                return True
            # A probe that never reported back (its thread died) is given up after a cool-down.
            if self._cooled_down():
                self._state = CircuitState.HALF_OPEN  # this caller is the probe
                self._opened_at = self._clock()
                return True
            return False  # open and cooling down, or a probe is already out

    def retry_in(self) -> float:
        """Seconds until the next probe may go out (0 when calls go through)."""
        with self._lock:
            if self._state is not CircuitState.OPEN:
                return 0.0
            return max(0.0, self.cooldown_s - (self._clock() - self._opened_at))

    def record_success(self) -> None:
        with self._lock:
            self._state = CircuitState.CLOSED
            self._failures = 0

    def record_failure(self) -> None:
        with self._lock:
            self._failures += 1
            if self._state is CircuitState.HALF_OPEN or self._failures >= self.failure_threshold:
                self._state = CircuitState.OPEN
                self._opened_at = self._clock()
