"""Rate limits on console logins: failed tries counted per account and per client address.

Each try costs scrypt's 16 MiB and ~50 ms (bot/handoff/agents.py), so the console asks
`allows()` before it hashes anything: a locked account or address is refused without that cost.
Failures are counted in the attempt store (bot/verification.py; Redis when REDIS_URL is set, so
every console replica sees the same counts). The count's window starts at the first failure;
the failure that reaches the limit sets a lock that lasts a whole window from then, so a lockout
always lasts the full window whatever the pace of the tries. A successful login resets the
account's count; an operator lifts a lock with `make agent-unlock NAME=...`.

Tries for names that do not exist are counted like any other, so a lockout does not tell which
accounts exist. Checking and counting are two steps: a few tries already in flight when the
limit is reached still finish (the thread pool that runs scrypt bounds how many).
"""

from __future__ import annotations

from datetime import timedelta

from bot.verification import AttemptStore

# Names and addresses longer than this are cut in keys: no real one is (agents.py allows 64).
_KEY_LENGTH = 64


class LoginLimits:
    """Per-account and per-address failed-login counts and lockouts over an attempt store."""

    def __init__(self, attempts: AttemptStore, per_account: int, per_address: int, window: timedelta) -> None:
        self._attempts = attempts
        self._limits = {"account": per_account, "address": per_address}
        self.window = window

    @staticmethod
    def _keys(kind: str, value: str) -> tuple[str, str]:
        value = value.strip().lower()[:_KEY_LENGTH]
        return f"failed:{kind}:{value}", f"lock:{kind}:{value}"

    def _subjects(self, name: str, address: str | None) -> list[tuple[str, str]]:
        subjects = [("account", name)]
        if address:
            subjects.append(("address", address))
        return subjects

    def allows(self, name: str, address: str | None) -> bool:
        """Whether a try for `name` from `address` may be checked at all (neither is locked).
        A full in-process store could not count the failure, so nothing is allowed then."""
        if self._attempts.full():
            return False
        return all(
            self._attempts.get(self._keys(kind, value)[1]) is None
            for kind, value in self._subjects(name, address)
        )

    def failed(self, name: str, address: str | None) -> None:
        """Count a wrong name or password; lock the account or address that reaches its limit."""
        for kind, value in self._subjects(name, address):
            count_key, lock_key = self._keys(kind, value)
            if self._attempts.hit(count_key, self.window) >= self._limits[kind]:
                self._attempts.put(lock_key, "1", self.window)
                self._attempts.delete(count_key)

    def succeeded(self, name: str) -> None:
        """The right password: the account's failures so far are forgiven (not the address's)."""
        self._attempts.delete(self._keys("account", name)[0])

    def unlock(self, name: str | None = None, address: str | None = None) -> None:
        """An operator lifts the lock and clears the counts of an account, an address, or both."""
        if name:
            self._attempts.delete(*self._keys("account", name))
        if address:
            self._attempts.delete(*self._keys("address", address))
