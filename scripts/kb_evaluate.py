"""How well the knowledge-base search finds the right article (issue 21): `make kb-evaluate`.

Scores a retrieval test set (default tests/kb_eval/questions.yml, written blind to the articles;
tests/kb_dev/questions.yml is the development set the thresholds were chosen on):
  questions:    [{q, expected, also?, country?, channel?}]  the article that answers (or `also`)
  unanswerable: [{q}]                                       nothing in the knowledge base answers
recall@1 and recall@3 (the expected article, or one in `also`, among the first 1 / 3 hits), MRR,
the verdicts (answer / options / none) on answerable questions, how often an unanswerable one
gets "answer", and the misses by article. It also scores the ten FAQ topics that migrated into
articles: for the rows of tests/nlu_holdout.yml labelled faq/<topic>, how often the top hit is
the article whose `intent` is that topic. Writes results/kb/<set>.json and .md; exits 1 below
recall@3 KB_GATE_RECALL_AT_3 (0.95) or MRR KB_GATE_MRR (0.85).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.kb import KnowledgeBase  # noqa: E402

DEFAULT_SET = ROOT / "tests" / "kb_eval" / "questions.yml"
DEV_SET = ROOT / "tests" / "kb_dev" / "questions.yml"
HOLDOUT = ROOT / "tests" / "nlu_holdout.yml"
RESULTS_DIR = ROOT / "results" / "kb"
GATE_RECALL_AT_3 = 0.95
GATE_MRR = 0.85


def load_set(path: Path) -> tuple[list[dict], list[dict]]:
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    questions = [row for row in data.get("questions") or [] if row.get("q") and row.get("expected")]
    unanswerable = [row for row in data.get("unanswerable") or [] if row.get("q")]
    return questions, unanswerable


def score(kb: KnowledgeBase, questions: list[dict], unanswerable: list[dict]) -> dict:
    """Retrieval metrics of `kb` on a question set (see the module's docstring)."""
    known = {article.id for article in kb.articles}
    rows, misses = [], defaultdict(list)
    found_at_1 = found_at_3 = 0
    reciprocal = 0.0
    verdicts: Counter = Counter()
    unknown_ids = sorted({row["expected"] for row in questions} - known)
    for row in questions:
        good = {row["expected"], *(row.get("also") or [])}
        result = kb.search(str(row["q"]), country=row.get("country"), channel=row.get("channel"), limit=10)
        ids = [hit.article.id for hit in result.hits]
        rank = next((position for position, article_id in enumerate(ids, 1) if article_id in good), None)
        found_at_1 += rank == 1
        found_at_3 += rank is not None and rank <= 3
        reciprocal += 1 / rank if rank else 0.0
        verdicts[result.verdict] += 1
        if rank != 1:
            misses[row["expected"]].append(
                {"q": row["q"], "rank": rank, "top": ids[:3], "verdict": result.verdict}
            )
        rows.append({"q": row["q"], "expected": row["expected"], "rank": rank, "verdict": result.verdict,
                     "top": [(hit.article.id, hit.score) for hit in result.hits[:3]]})  # fmt: skip
    wrong_answers = []
    unanswerable_verdicts: Counter = Counter()
    for row in unanswerable:
        result = kb.search(str(row["q"]), country=row.get("country"), channel=row.get("channel"))
        unanswerable_verdicts[result.verdict] += 1
        if result.verdict == "answer":
            wrong_answers.append(
                {"q": row["q"], "answered": result.hits[0].article.id, "score": result.hits[0].score}
            )
    total = max(len(questions), 1)
    return {
        "questions": len(questions),
        "unanswerable": len(unanswerable),
        "recall_at_1": round(found_at_1 / total, 4),
        "recall_at_3": round(found_at_3 / total, 4),
        "mrr": round(reciprocal / total, 4),
        "verdicts_answerable": {
            name: round(verdicts[name] / total, 4) for name in ("answer", "options", "none")
        },
        "verdicts_unanswerable": {
            name: round(unanswerable_verdicts[name] / max(len(unanswerable), 1), 4)
            for name in ("answer", "options", "none")
        },
        "unanswerable_answered": wrong_answers,
        "misses_by_article": dict(sorted(misses.items())),
        "expected_ids_not_in_kb": unknown_ids,
        "rows": rows,
    }


def faq_topics(kb: KnowledgeBase, holdout: Path = HOLDOUT) -> dict:
    """Top-1 accuracy of the search on the held-out NLU rows of each migrated faq/<topic>."""
    topic_article = {}
    for article in kb.articles:
        if article.intent and article.intent.startswith("faq/"):
            topic_article[article.intent] = article.id
    data = yaml.safe_load(holdout.read_text(encoding="utf-8"))
    per_topic = {}
    hits = hits3 = count = 0
    for block in data.get("nlu", []):
        topic = block.get("intent", "")
        if not topic.startswith("faq/"):
            continue
        examples = [
            line[2:].strip() for line in block["examples"].splitlines() if line.strip().startswith("- ")
        ]
        article_id = topic_article.get(topic)
        ranked = [_top3(kb, text) for text in examples]
        right = sum(1 for ids in ranked if article_id and ids[:1] == [article_id])
        in_three = sum(1 for ids in ranked if article_id in ids)
        per_topic[topic] = {
            "article": article_id,
            "examples": len(examples),
            "top1": round(right / max(len(examples), 1), 4),
            "top3": round(in_three / max(len(examples), 1), 4),
        }
        hits += right
        hits3 += in_three
        count += len(examples)
    return {
        "examples": count,
        "top1_accuracy": round(hits / max(count, 1), 4),
        "top3_accuracy": round(hits3 / max(count, 1), 4),
        "per_topic": per_topic,
    }


def _top3(kb: KnowledgeBase, text: str) -> list[str]:
    return [hit.article.id for hit in kb.search(text).hits[:3]]


def gate(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise SystemExit(f"error: {name}={raw!r}: use a number between 0 and 1.") from None


def markdown(report: dict) -> str:
    metrics = report["metrics"]
    lines = [
        f"# Knowledge-base retrieval: {report['set']}",
        "",
        f"{metrics['questions']} answerable and {metrics['unanswerable']} unanswerable questions; "
        f"{report['articles']} articles; semantic ranking {'on' if report['semantic'] else 'off'}.",
        "",
        "| metric | value | gate |",
        "|---|---|---|",
        f"| recall@1 | {metrics['recall_at_1']:.3f} | |",
        f"| recall@3 | {metrics['recall_at_3']:.3f} | ≥ {report['gates']['recall_at_3']:.2f} |",
        f"| MRR | {metrics['mrr']:.3f} | ≥ {report['gates']['mrr']:.2f} |",
    ]
    for name, value in metrics["verdicts_answerable"].items():
        lines.append(f"| answerable → {name} | {value:.3f} | |")
    for name, value in metrics["verdicts_unanswerable"].items():
        lines.append(f"| unanswerable → {name} | {value:.3f} | |")
    faq = report.get("faq_topics")
    if faq:
        lines += [
            "",
            f"## Migrated FAQ topics (tests/nlu_holdout.yml, {faq['examples']} rows)",
            "",
            f"Top-1 accuracy: **{faq['top1_accuracy']:.3f}**; top-3: {faq['top3_accuracy']:.3f}",
            "",
            "| topic | article | rows | top-1 | top-3 |",
            "|---|---|---|---|---|",
        ]
        for topic, row in faq["per_topic"].items():
            lines.append(
                f"| {topic} | {row['article']} | {row['examples']} | {row['top1']:.2f} | {row['top3']:.2f} |"
            )
    lines += ["", "## Misses (expected article not first)", ""]
    for article_id, items in metrics["misses_by_article"].items():
        for item in items:
            lines.append(
                f"- `{article_id}` ← “{item['q']}”: rank {item['rank']}, "
                f"top {', '.join(item['top'])} ({item['verdict']})"
            )
    if metrics["unanswerable_answered"]:
        lines += ["", "## Unanswerable questions answered", ""]
        for item in metrics["unanswerable_answered"]:
            lines.append(f"- “{item['q']}” → `{item['answered']}` ({item['score']:.2f})")
    if metrics["expected_ids_not_in_kb"]:
        lines += [
            "",
            "Expected ids not in the knowledge base: " + ", ".join(metrics["expected_ids_not_in_kb"]),
        ]
    return "\n".join(lines) + "\n"


def _shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--questions", type=Path, default=DEFAULT_SET, help="the question set (default: the gated one)"
    )
    parser.add_argument(
        "--kb", type=Path, default=None, help="the knowledge-base folder (default: KB_DIR or kb/)"
    )
    parser.add_argument("--lexical", action="store_true", help="without the sentence model")
    parser.add_argument("--no-gate", action="store_true", help="report only (the development set)")
    args = parser.parse_args(argv)
    from bot.settings import Settings

    settings = Settings.from_env()
    folder = args.kb or settings.kb_dir
    semantic = settings.kb_semantic and not args.lexical
    kb = KnowledgeBase.load(folder, **({} if semantic else {"model": None}))
    if not args.questions.exists():
        raise SystemExit(f"error: {args.questions} is missing: the retrieval test set (issue 21).")
    questions, unanswerable = load_set(args.questions)
    started = time.perf_counter()
    metrics = score(kb, questions, unanswerable)
    elapsed = time.perf_counter() - started
    gates = {
        "recall_at_3": gate("KB_GATE_RECALL_AT_3", GATE_RECALL_AT_3),
        "mrr": gate("KB_GATE_MRR", GATE_MRR),
    }
    name = args.questions.stem if args.questions.parent.name != "kb_eval" else "kb_eval"
    name = "kb_dev" if args.questions.resolve() == DEV_SET.resolve() else name
    report = {
        "set": str(args.questions.resolve().relative_to(ROOT))
        if args.questions.resolve().is_relative_to(ROOT)
        else str(args.questions),
        "articles": len(kb.articles),
        "semantic": kb.semantic,
        "gates": gates,
        "metrics": metrics,
        "faq_topics": faq_topics(kb) if HOLDOUT.exists() else None,
    }
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    suffix = "" if semantic else "-lexical"
    (RESULTS_DIR / f"{name}{suffix}.json").write_text(
        json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8"
    )
    (RESULTS_DIR / f"{name}{suffix}.md").write_text(markdown(report), encoding="utf-8")
    faq = report["faq_topics"]
    mode = "on" if kb.semantic else "off"
    print(
        f"\n  Knowledge-base retrieval on {report['set']}: {metrics['questions']} questions, "
        f"{metrics['unanswerable']} unanswerable, {len(kb.articles)} articles, semantic {mode}"
    )
    print(f"    recall@1             {metrics['recall_at_1']:.3f}")
    print(f"    recall@3             {metrics['recall_at_3']:.3f}  (gate >= {gates['recall_at_3']:.2f})")
    print(f"    MRR                  {metrics['mrr']:.3f}  (gate >= {gates['mrr']:.2f})")
    print(
        "    answerable           "
        + ", ".join(f"{k} {v:.2f}" for k, v in metrics["verdicts_answerable"].items())
    )
    print(
        "    unanswerable         "
        + ", ".join(f"{k} {v:.2f}" for k, v in metrics["verdicts_unanswerable"].items())
    )
    if faq:
        print(
            f"    FAQ topics top-1     {faq['top1_accuracy']:.3f}, top-3 {faq['top3_accuracy']:.3f}  "
            f"({faq['examples']} rows of tests/nlu_holdout.yml)"
        )
    print(
        f"    time                 {1000 * elapsed / max(len(questions) + len(unanswerable), 1):.1f} "
        "ms a question"
    )
    print(f"    report               {_shown(RESULTS_DIR / (name + suffix))}.md / .json\n")
    if args.no_gate:
        return 0
    if metrics["recall_at_3"] < gates["recall_at_3"] or metrics["mrr"] < gates["mrr"]:
        print(
            "error: the knowledge-base search is below its gate (see above and the report).", file=sys.stderr
        )
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
