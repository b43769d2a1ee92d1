"""Agent accounts for the console: scrypt password hashes with a salt of their own per agent."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets

from bot.handoff.store import ROLES, HandoffStore

# scrypt's cost: 2**14 x 8 x 1 takes ~50 ms and 16 MiB, enough to slow guessing from a stolen table.
_N, _R, _P = 2**14, 8, 1
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
MIN_PASSWORD = 10


class AgentError(ValueError):
    """An agent name or password that cannot be used; the message says why."""


def hash_password(password: str) -> str:
    """`scrypt$N$r$p$salt$hash`, base64; a fresh random salt every time."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    encode = base64.b64encode
    return f"scrypt${_N}${_R}${_P}${encode(salt).decode()}${encode(digest).decode()}"


def verify_password(password: str, stored: str | None) -> bool:
    if not stored:
        # Spend the same time as a real check, so a wrong name is not told apart from a wrong password.
        hash_password(password)
        return False
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        given = hashlib.scrypt(
            password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p), dklen=32
        )
    except ValueError:
        return False
    return hmac.compare_digest(given, base64.b64decode(digest))


def create_agent(store: HandoffStore, name: str, password: str | None, role: str | None = None) -> None:
    """Create the agent `name` (or reset its password) and, given `role`, set its role.

    A new agent is an `agent` unless `role` says otherwise. `password` may be None only for an
    existing agent whose role alone changes."""
    if not _NAME.match(name):
        raise AgentError("the name is 2-64 lower-case letters, digits, '.', '_' or '-'")
    if role is not None and role not in ROLES:
        raise AgentError(f"the role is one of: {', '.join(ROLES)}")
    if password is None:
        if role is None or not store.agent_exists(name):
            raise AgentError("a new agent needs a password")
    elif len(password) < MIN_PASSWORD:
        raise AgentError(f"the password needs at least {MIN_PASSWORD} characters")
    else:
        store.save_agent(name, hash_password(password))
    if role is not None:
        store.set_agent_role(name, role)


def authenticate(store: HandoffStore, name: str, password: str) -> bool:
    return verify_password(password, store.agent_password_hash(name.strip().lower()))
