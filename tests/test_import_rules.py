"""The arrows of bot/ point down: no import cycle, services never import the wiring, adapters never
import a service, and every kind of write a service declares is in the outbox's registry."""

from __future__ import annotations

import ast
import importlib
import pathlib
from dataclasses import fields

import pytest

from bot.backends import Backends
from bot.outbox import WriteKind
from bot.write_kinds import WRITE_KINDS

ROOT = pathlib.Path(__file__).resolve().parent.parent
WIRING = "bot.backends"
# Entry points inside bot/ that build what they run from the wiring.
ENTRIES = {"bot.outbox_worker"}
# The development CRM/ERP server and the migrations import each other; they move out of bot/
# with their own work (issue 14), and are left out here until then.
DEVELOPMENT_TOOLS = {"bot.adapters.rest.reference_server", "bot.migrations", "bot.migrations.env", "bot.demo"}
# What an adapter may import from bot/ besides other adapters: records and settings.
ADAPTER_MAY_IMPORT = {"bot.records", "bot.settings"}


def module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in (ROOT / "bot").rglob("*.py")}


def owner(name: str) -> str | None:
    """The module of bot/ that `name` (a module or a name inside one) is found in."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(module: str) -> list[tuple[str, bool]]:
    """(module of bot/ imported, whether inside a function); TYPE_CHECKING blocks are skipped."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[tuple[str, bool]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return
        in_function = in_function or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + [base])
            targets = [f"{base}.{alias.name}" for alias in node.names]
        for target in targets:
            found_in = owner(target)
            if found_in and found_in != module:
                found.append((found_in, in_function))
        for child in ast.iter_child_nodes(node):
            visit(child, in_function)

    visit(ast.parse(path.read_text()), False)
    return found


GRAPH = {module: {target for target, _ in imports_of(module)} for module in MODULES}


def cycles() -> list[set[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[set[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in GRAPH[node]:
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(component)

    for node in GRAPH:
        if node not in index:
            connect(node)
    return found


def test_bot_has_no_import_cycle():
    assert [cycle for cycle in cycles() if not cycle <= DEVELOPMENT_TOOLS] == []


@pytest.mark.parametrize("module", sorted(set(MODULES) - DEVELOPMENT_TOOLS))
def test_no_import_is_hidden_inside_a_function(module):
    assert [target for target, in_function in imports_of(module) if in_function] == []


def test_services_never_import_the_wiring():
    importers = {module for module, targets in GRAPH.items() if WIRING in targets}
    assert importers <= ENTRIES


def test_adapters_import_no_service():
    adapters = {module for module in MODULES if module.startswith("bot.adapters")} - DEVELOPMENT_TOOLS
    upward = {
        (module, target)
        for module in adapters
        for target in GRAPH[module]
        if not target.startswith("bot.adapters") and target not in ADAPTER_MAY_IMPORT
    }
    assert upward == set()


def declared_write_kinds() -> dict[str, WriteKind]:
    declared = {}
    for module in sorted(set(MODULES) - DEVELOPMENT_TOOLS - ENTRIES - {"bot.migrations.env"}):
        if module.startswith("bot.migrations.versions") or module.endswith("__main__"):
            continue  # revisions and process entries: nothing a service declares
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
