"""Step-up verification with one-time codes: send, check, limit and lock, per customer.

A code is HOTP (pyotp) over a per-customer secret kept encrypted (Fernet, OTP_SECRET_KEY) and
a counter the database increments on every send, so each code is new. The code that is valid
right now lives only as its counter under a 5-minute key in the attempt store (Redis when
REDIS_URL is set, shared by replicas; in-process otherwise), taken atomically when it is used,
so it works once. Wrong codes and sends are counted there too.
"""

from __future__ import annotations

import heapq
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from enum import Enum

import pyotp
import redis
from cryptography.fernet import Fernet, InvalidToken

from bot.adapters.base import BackendUnavailable, OtpSecrets
from bot.clock import Clock

CODE_DIGITS = 6
CODE_TTL = timedelta(minutes=5)
MAX_WRONG = 3  # wrong codes before verification locks
LOCK_TTL = timedelta(minutes=15)
MAX_SENDS = 3  # codes sent per customer within SEND_WINDOW
SEND_WINDOW = timedelta(minutes=15)


class AttemptStore(ABC):
    """Counters, locks and short-lived values with expiry: the one thing codes need shared."""

    @abstractmethod
    def hit(self, key: str, window: timedelta) -> int:
        """Count one more event under `key`; the count starts at 1 and expires `window` after
        the first event (atomically, even across replicas)."""

    @abstractmethod
    def put(self, key: str, value: str, ttl: timedelta) -> None:
        """Store `value` under `key` for `ttl`, replacing what was there."""

    @abstractmethod
    def get(self, key: str) -> str | None:
        """The value under `key`, if it has not expired."""

    @abstractmethod
    def take(self, key: str) -> str | None:
        """Remove and return the value under `key`: only one caller ever gets it."""

    @abstractmethod
    def delete(self, *keys: str) -> None:
        """Forget these keys."""

    def full(self) -> bool:
        """Whether a new key would be refused now (only a bounded in-process store can be)."""
        return False


# Keys the in-process store holds at most: counters and locks of every customer (and console
# name and address) active within the longest window, 15 minutes. One process serving more
# than this many people in 15 minutes should run with REDIS_URL.
IN_PROCESS_ATTEMPT_KEYS = 50_000


class AttemptStoreFull(BackendUnavailable):
    """The in-process attempt store holds `capacity` live keys: a new one would need evicting a
    counter or a lock before its time, which could unlock someone early. Refused instead, as
    when Redis is down: the caller refuses the code or the login (fails closed)."""


class MemoryAttemptStore(AttemptStore):
    """In-process attempts for a single action server (REDIS_URL unset); expiry on the given clock.

    Bounded: at most `capacity` keys. Expired keys go first (a heap of expiries finds them in
    O(log n)); when every key is still live, a new key is refused (AttemptStoreFull) rather than
    evicting a live one, because evicting a wrong-code counter or a lock would unlock early.
    Counting on an existing key always works; `full()` lets a caller refuse before it costs.
    """

    def __init__(self, clock: Clock, capacity: int = IN_PROCESS_ATTEMPT_KEYS) -> None:
        self._clock = clock.monotonic
        self._capacity = capacity
        self._values: dict[str, tuple[str, float]] = {}
        self._expiries: list[tuple[float, str]] = []  # a heap; entries of replaced values go stale
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._values)

    def _live(self, key: str) -> str | None:
        entry = self._values.get(key)
        if entry is None:
            return None
        if entry[1] <= self._clock():
            del self._values[key]
            return None
        return entry[0]

    def _purge_expired(self) -> None:
        now = self._clock()
        while self._expiries and self._expiries[0][0] <= now:
            until, key = heapq.heappop(self._expiries)
            entry = self._values.get(key)
            if entry is not None and entry[1] == until:
                del self._values[key]
        if len(self._expiries) > 2 * self._capacity:  # stale entries of replaced values
            self._expiries = [(until, key) for key, (_, until) in self._values.items()]
            heapq.heapify(self._expiries)

    def _has_room(self, key: str | None = None) -> bool:
        if key in self._values or len(self._values) < self._capacity:
            return True
        self._purge_expired()
        return len(self._values) < self._capacity

    def _store(self, key: str, value: str, until: float) -> None:
        if not self._has_room(key):
            raise AttemptStoreFull(f"in-process attempt store full ({self._capacity} live keys)")
        self._values[key] = (value, until)
        heapq.heappush(self._expiries, (until, key))

    def full(self) -> bool:
        """Whether a new key would be refused now (every key live, none expired)."""
        with self._lock:
            return not self._has_room()

    def hit(self, key: str, window: timedelta) -> int:
        with self._lock:
            current = self._live(key)
            if current is None:
                self._store(key, "1", self._clock() + window.total_seconds())
                return 1
            count = int(current) + 1
            self._values[key] = (str(count), self._values[key][1])
            return count

    def put(self, key: str, value: str, ttl: timedelta) -> None:
        with self._lock:
            self._store(key, value, self._clock() + ttl.total_seconds())

    def get(self, key: str) -> str | None:
        with self._lock:
            return self._live(key)

    def take(self, key: str) -> str | None:
        with self._lock:
            value = self._live(key)
            self._values.pop(key, None)
            return value

    def delete(self, *keys: str) -> None:
        with self._lock:
            for key in keys:
                self._values.pop(key, None)


class RedisAttemptStore(AttemptStore):
    """Attempts in Redis, shared by every action-server replica."""

    def __init__(self, client: redis.Redis, prefix: str = "autoservicio:otp:") -> None:
        self._redis = client
        self._prefix = prefix

    def _call(self, work: Callable[[], object]) -> object:
        try:
            return work()
        except redis.RedisError as error:
            raise BackendUnavailable(f"redis unavailable: {error!r}") from error

    def hit(self, key: str, window: timedelta) -> int:
        full = self._prefix + key

        def count() -> int:
            # INCR and EXPIRE NX in one transaction: the window starts at the first event and
            # a crash between the two can never leave a counter that never expires.
            pipe = self._redis.pipeline(transaction=True)
            pipe.incr(full)
            pipe.expire(full, int(window.total_seconds()), nx=True)
            return int(pipe.execute()[0])

        return int(self._call(count))

    def put(self, key: str, value: str, ttl: timedelta) -> None:
        self._call(lambda: self._redis.set(self._prefix + key, value, px=int(ttl.total_seconds() * 1000)))

    def get(self, key: str) -> str | None:
        value = self._call(lambda: self._redis.get(self._prefix + key))
        return value.decode() if isinstance(value, bytes) else value

    def take(self, key: str) -> str | None:
        value = self._call(lambda: self._redis.getdel(self._prefix + key))
        return value.decode() if isinstance(value, bytes) else value

    def delete(self, *keys: str) -> None:
        if keys:
            self._call(lambda: self._redis.delete(*(self._prefix + key for key in keys)))


def attempt_store_for(redis_url: str | None, clock: Clock, prefix: str = "autoservicio:otp:") -> AttemptStore:
    """Redis when REDIS_URL is set (expiry on Redis's own timers), in-process otherwise; `prefix`
    keeps one user's Redis keys (codes, console logins) apart from another's."""
    if redis_url:
        return RedisAttemptStore(redis.Redis.from_url(redis_url, socket_timeout=5), prefix)
    return MemoryAttemptStore(clock)


class SendOutcome(str, Enum):
    SENT = "sent"
    LOCKED = "locked"  # too many wrong codes: no new code until the lock expires
    TOO_MANY_SENDS = "too_many_sends"


class CheckOutcome(str, Enum):
    VERIFIED = "verified"
    WRONG = "wrong"
    LOCKED = "locked"  # this wrong code was the last allowed one, or the lock was already on
    EXPIRED = "expired"  # no code is valid now (never sent, used, or older than 5 minutes)


@dataclass(frozen=True)
class Check:
    outcome: CheckOutcome
    tries_left: int = 0


class CodeVerifier:
    """Issues and checks one-time codes; see the module docstring."""

    def __init__(self, secrets: OtpSecrets, attempts: AttemptStore, fernet_key: str) -> None:
        self._secrets = secrets
        self._attempts = attempts
        self._fernet = Fernet(fernet_key)

    @staticmethod
    def _keys(customer_id: str) -> tuple[str, str, str, str]:
        return (f"code:{customer_id}", f"wrong:{customer_id}", f"lock:{customer_id}", f"sends:{customer_id}")

    def is_locked(self, customer_id: str) -> bool:
        return self._attempts.get(self._keys(customer_id)[2]) is not None

    def issue(self, customer_id: str) -> tuple[SendOutcome, str | None]:
        """A new code for the customer (the caller sends it to the number on file), or why not."""
        code_key, _, lock_key, sends_key = self._keys(customer_id)
        if self._attempts.get(lock_key) is not None:
            return SendOutcome.LOCKED, None
        if self._attempts.hit(sends_key, SEND_WINDOW) > MAX_SENDS:
            return SendOutcome.TOO_MANY_SENDS, None
        encrypted, counter = self._secrets.next_counter(
            customer_id, self._fernet.encrypt(pyotp.random_base32().encode())
        )
        code = pyotp.HOTP(self._secret(encrypted), digits=CODE_DIGITS).at(counter)
        # A new code replaces the previous one: only the latest works.
        self._attempts.put(code_key, str(counter), CODE_TTL)
        return SendOutcome.SENT, code

    def check(self, customer_id: str, code: str) -> Check:
        """Whether `code` is the customer's current code; each code works once."""
        code_key, wrong_key, lock_key, _ = self._keys(customer_id)
        if self._attempts.get(lock_key) is not None:
            return Check(CheckOutcome.LOCKED)
        counter = self._attempts.get(code_key)
        if counter is None:
            return Check(CheckOutcome.EXPIRED)
        encrypted = self._secrets.secret_of(customer_id)
        if encrypted is None:
            return Check(CheckOutcome.EXPIRED)
        candidate = "".join(ch for ch in code if ch.isdigit())
        hotp = pyotp.HOTP(self._secret(encrypted), digits=CODE_DIGITS)
        if len(candidate) == CODE_DIGITS and hotp.verify(candidate, int(counter)):
            if self._attempts.take(code_key) != counter:
                return Check(CheckOutcome.EXPIRED)  # used a moment ago by a concurrent request
            self._attempts.delete(wrong_key)
            return Check(CheckOutcome.VERIFIED)
        wrong = self._attempts.hit(wrong_key, LOCK_TTL)
        if wrong >= MAX_WRONG:
            self._attempts.put(lock_key, "1", LOCK_TTL)
            self._attempts.delete(code_key, wrong_key)
            return Check(CheckOutcome.LOCKED)
        return Check(CheckOutcome.WRONG, tries_left=MAX_WRONG - wrong)

    def _secret(self, encrypted: bytes) -> str:
        try:
            return self._fernet.decrypt(encrypted).decode()
        except InvalidToken as error:
            raise BackendUnavailable(
                "one-time-code secret cannot be decrypted: OTP_SECRET_KEY changed?"
            ) from error


class IdentityGuesses:
    """Wrong answers to the identity questions (order number + last digits of a document),
    counted per sender number and per customer an order named, across form runs and sessions.

    A form run forgives one wrong answer and a new run starts over, so without this an attacker
    could keep guessing documents for a known order number. Here each wrong answer counts for
    the number that sent it and for the customer whose order it named, in a window that starts at
    the first wrong answer; once either count reaches its limit, no answer is checked (not even a
    right one) until the window ends.
    """

    def __init__(self, attempts: AttemptStore, per_number: int, per_customer: int, window: timedelta) -> None:
        self._attempts = attempts
        self._per_number = per_number
        self._per_customer = per_customer
        self._window = window

    @staticmethod
    def _number_key(sender: str) -> str:
        return f"number:{sender}"

    @staticmethod
    def _customer_key(customer_id: str) -> str:
        return f"customer:{customer_id}"

    def _count(self, key: str) -> int:
        return int(self._attempts.get(key) or 0)

    def number_blocked(self, sender: str) -> bool:
        return self._count(self._number_key(sender)) >= self._per_number

    def blocked(self, sender: str, customer_id: str | None) -> bool:
        """Whether answers from `sender`, or about `customer_id`, are no longer checked."""
        if self.number_blocked(sender):
            return True
        return customer_id is not None and self._count(self._customer_key(customer_id)) >= self._per_customer

    def wrong(self, sender: str, customer_id: str | None) -> bool:
        """Count a wrong answer (for the customer too when the order was real); True when it
        reached a limit."""
        reached = self._attempts.hit(self._number_key(sender), self._window) >= self._per_number
        if customer_id is not None:
            for_customer = self._attempts.hit(self._customer_key(customer_id), self._window)
            reached = reached or for_customer >= self._per_customer
        return reached
