"""Checks the case catalogue, bot/case_types.yml, and the return rules, bot/return_rules.yml
(run by `make validate`).

Fails (exit 1) with the file and the key when the catalogue is broken (bot/case_types.py says
every rule) or the return rules are (bot/returns.py), or when a type's `intents` names an
intent the assistant does not have (domain.yml).
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.case_types import CATALOGUE, CaseCatalogueError, load_catalogue  # noqa: E402
from bot.returns import ReturnRulesError, load_rules  # noqa: E402


def domain_intents(root: Path = ROOT) -> set[str]:
    """Every intent of domain.yml (or of the files under domain/)."""
    folder = root / "domain"
    files = sorted(folder.rglob("*.yml")) if folder.is_dir() else [root / "domain.yml"]
    names: set[str] = set()
    for path in files:
        for item in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("intents") or []:
            names.add(next(iter(item)) if isinstance(item, dict) else str(item))
    return names


def main(path: Path = CATALOGUE) -> int:
    try:
        catalogue = load_catalogue(path)
    except CaseCatalogueError as error:
        print(f"case catalogue: {error}", file=sys.stderr)
        return 1
    known = domain_intents()
    for case_type in catalogue.types.values():
        for intent in case_type.intents:
            if intent not in known:
                print(
                    f"case catalogue: {path}: types.{case_type.id}.intents: "
                    f"{intent} is not an intent of the domain",
                    file=sys.stderr,
                )
                return 1
    try:
        rules = load_rules()
    except ReturnRulesError as error:
        print(f"return rules: {error}", file=sys.stderr)
        return 1
    print(f"case catalogue: {len(catalogue.types)} types, every case kind mapped ({path.name})")
    print(f"return rules: {len(rules.categories)} categories (default {rules.default})")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else CATALOGUE))
