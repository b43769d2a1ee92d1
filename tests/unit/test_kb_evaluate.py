"""`make kb-evaluate`'s counting: recall@k, MRR, verdicts and the gate, on a small set written here."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from bot.kb import KnowledgeBase
from tests.unit.test_kb_search import ARTICLES, write_article

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("kb_evaluate_command", ROOT / "scripts" / "kb_evaluate.py")
kb_evaluate = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = kb_evaluate
_spec.loader.exec_module(kb_evaluate)


@pytest.fixture
def kb(tmp_path) -> KnowledgeBase:
    for article_id in ARTICLES:
        write_article(tmp_path, article_id)
    return KnowledgeBase.load(tmp_path, model=None)


def test_recall_and_mrr_count_the_rank_of_the_expected_or_an_also(kb):
    questions = [
        {"q": "formas de pago", "expected": "medios-de-pago"},  # rank 1
        {"q": "formas de pago", "expected": "garantia", "also": ["medios-de-pago"]},  # `also`: rank 1
        {"q": "formas de pago", "expected": "horarios-de-atencion"},  # not found at all
    ]
    metrics = kb_evaluate.score(kb, questions, [{"q": "contame un chiste"}])
    assert metrics["recall_at_1"] == pytest.approx(2 / 3, abs=1e-3)
    assert metrics["mrr"] == pytest.approx(2 / 3, abs=1e-3)
    assert metrics["verdicts_unanswerable"]["answer"] == 0.0
    assert list(metrics["misses_by_article"]) == ["horarios-de-atencion"]


def test_an_unknown_expected_id_is_reported(kb):
    metrics = kb_evaluate.score(kb, [{"q": "x", "expected": "no-existe"}], [])
    assert metrics["expected_ids_not_in_kb"] == ["no-existe"] and metrics["recall_at_3"] == 0.0


def test_the_gate_fails_below_and_the_environment_may_move_it(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "kb"
    folder.mkdir()
    for article_id in ARTICLES:
        write_article(folder, article_id)
    questions = tmp_path / "questions.yml"
    questions.write_text(
        "questions:\n  - {q: formas de pago, expected: medios-de-pago}\n"
        "  - {q: formas de pago, expected: horarios-de-atencion}\nunanswerable: []\n",
        encoding="utf-8",
    )
    monkeypatch.setattr(kb_evaluate, "RESULTS_DIR", tmp_path / "results")
    arguments = ["--questions", str(questions), "--kb", str(folder), "--lexical"]
    assert kb_evaluate.main(arguments) == 1  # recall@3 0.5
    monkeypatch.setenv("KB_GATE_RECALL_AT_3", "0.5")
    monkeypatch.setenv("KB_GATE_MRR", "0.5")
    assert kb_evaluate.main(arguments) == 0
    assert (tmp_path / "results" / "questions-lexical.md").exists()
