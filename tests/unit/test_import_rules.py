"""Every kind of write a service declares is in the outbox's registry, once, and applies to a system
the worker has. (The directions of the imports are tests/unit/test_architecture.py's.)"""

from __future__ import annotations

import importlib
import pathlib
from dataclasses import fields

from bot.backends import Backends
from bot.outbox import WriteKind
from bot.write_kinds import WRITE_KINDS

ROOT = pathlib.Path(__file__).resolve().parents[2]
# Services declare write kinds; revisions, process entries and the composition root do not.
SERVICES = sorted(
    ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
    for path in (ROOT / "bot").rglob("*.py")
    if path.stem not in ("__main__", "wiring") and "migrations" not in path.parts
)


def declared_write_kinds() -> dict[str, WriteKind]:
    declared = {}
    for module in SERVICES:
        for value in vars(importlib.import_module(module)).values():
            if isinstance(value, WriteKind):
                declared[value.name] = value
    return declared


def test_every_write_kind_a_service_declares_is_registered_once():
    assert dict(WRITE_KINDS) == declared_write_kinds()
    assert all(name == kind.name for name, kind in WRITE_KINDS.items())


def test_every_write_kind_is_applied_to_a_system_the_worker_has():
    systems = {field.name for field in fields(Backends)}
    assert {kind.system for kind in WRITE_KINDS.values()} <= systems
