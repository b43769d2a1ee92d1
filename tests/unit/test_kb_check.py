"""`make kb-check`: invalid articles and unknown intents or flows fail; a review date past is a
warning that never fails, whatever the day."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from tests.unit.test_kb_search import write_article

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("kb_check_command", ROOT / "scripts" / "kb_check.py")
kb_check = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = kb_check
_spec.loader.exec_module(kb_check)


def run(folder: Path, *extra: str) -> int:
    return kb_check.main(["--kb", str(folder), *extra])


def test_the_shipped_knowledge_base_passes_on_any_day(capsys):
    assert kb_check.main(["--today", "2026-11-30"]) == 0
    assert kb_check.main(["--today", "2031-01-01"]) == 0  # everything overdue: still not a failure
    assert "past their review date on 2031-01-01" in capsys.readouterr().out


def test_overdue_articles_are_listed_with_owner_as_a_warning(tmp_path, capsys):
    write_article(tmp_path, "garantia", extra="review_days: 60\n")  # last_reviewed 2026-11-15
    assert run(tmp_path, "--today", "2027-01-14") == 0
    out = capsys.readouterr().out
    assert "none is due" not in out and "due within 14 days" in out
    assert run(tmp_path, "--today", "2027-01-20") == 0
    out = capsys.readouterr().out
    assert "warning: 1 past their review date on 2027-01-20" in out
    assert "garantia.md: due 2027-01-14 (6 days ago), owner Equipo" in out


def test_an_invalid_article_fails_with_every_problem(tmp_path, capsys):
    write_article(tmp_path, "garantia", extra="review_days: 200\nsynonym: [x]\n")
    assert run(tmp_path, "--today", "2026-11-30") == 1
    err = capsys.readouterr().err
    assert "garantia.md:12: 'review_days' 200" in err and "unknown field 'synonym'" in err


def test_an_unknown_intent_or_flow_fails(tmp_path, capsys):
    write_article(tmp_path, "garantia", extra="intent: faq/garantias\nflow: return_requests\n")
    write_article(tmp_path, "medios-de-pago", extra="intent: faq/medios_de_pago\nflow: make_payment\n")
    assert run(tmp_path, "--today", "2026-11-30") == 1
    err = capsys.readouterr().err
    assert "garantia.md:12: intent 'faq/garantias' is not an intent the assistant has" in err
    assert "garantia.md:13: flow 'return_requests' is not an intent the assistant has" in err
    assert "medios-de-pago.md" not in err
