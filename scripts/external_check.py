"""The external NLU check of `make evaluate` (issue 16): sources the model's authors did not write.

Every tests/nlu_external/*.yml is a source (its header says where it comes from and under
which licence). A file named *_missing_intents.yml holds requests the product has no intent
for yet: it is reported (where its messages go), never gated. Every other source is gated on
its intent macro-F1; the gate is on the WORST source, not on the average, because a register
the model handles badly is a whole population of customers it fails, whatever the others say.

The model is loaded once, in this process, and every message goes through
Agent.parse_message: the same pipeline, FallbackClassifier included, that serves customers.
The counting is in scripts/nlu_metrics.py.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import yaml
from nlu_metrics import FALLBACK, Prediction, destinations, score

ROOT = Path(__file__).resolve().parent.parent
SOURCES_DIR = ROOT / "tests" / "nlu_external"
RESULTS_DIR = ROOT / "results" / "external"
MISSING_SUFFIX = "_missing_intents"
# What issue 16 asks of every external source; printed beside each number (the gate itself is
# GATE_EXTERNAL_WORST_F1 in scripts/stack.py).
TARGETS = {"macro_f1": 0.90, "macro_f1_goal": 0.95, "out_of_scope_recall": 0.85, "in_scope_precision": 0.95}
TARGET_CONFIDENT_MISROUTES = 0.05  # of the in-scope messages
PROGRESS_EVERY = 100


@dataclass(frozen=True)
class Source:
    name: str
    path: Path
    gated: bool
    examples: list[tuple[str, str]]  # (text, label)


def load_sources(directory: Path = SOURCES_DIR) -> list[Source]:
    from rasa.shared.nlu.training_data.loading import load_data

    sources = []
    for path in sorted(directory.glob("*.yml")):
        data = load_data(str(path))
        examples = [(m.get("text"), m.get("intent")) for m in data.intent_examples]
        if examples:
            sources.append(Source(path.stem, path, not path.stem.endswith(MISSING_SUFFIX), examples))
    return sources


def fallback_threshold(config: Path = ROOT / "config.yml") -> float:
    """The FallbackClassifier's threshold in config.yml: below it the intent is nlu_fallback."""
    pipeline = yaml.safe_load(config.read_text())["pipeline"]
    for component in pipeline:
        if component.get("name") == "FallbackClassifier":
            return float(component.get("threshold", 0.3))  # Rasa's default
    raise SystemExit("error: config.yml has no FallbackClassifier; the external check reads its threshold.")


def quiet_rasa() -> None:
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    from rasa.utils.common import configure_logging_and_warnings
    from rasa.utils.log_utils import configure_structlog

    configure_logging_and_warnings(logging.WARNING)
    configure_structlog(logging.WARNING)


def classify(model: Path, sources: list[Source]) -> tuple[dict[str, list[Prediction]], list[str]]:
    """Every message of every source through the model, loaded once; progress on stdout."""
    quiet_rasa()
    from rasa.core.agent import Agent

    print(f"    loading {model.name} once for every source...", flush=True)
    agent = Agent.load(str(model))
    intents = list(agent.domain.intents)
    total = sum(len(source.examples) for source in sources)

    async def run() -> dict[str, list[Prediction]]:
        done = 0
        results: dict[str, list[Prediction]] = {}
        for source in sources:
            predictions = results.setdefault(source.name, [])
            for text, truth in source.examples:
                parsed = await agent.parse_message(text)
                ranking = [row for row in parsed.get("intent_ranking") or [] if row["name"] != FALLBACK]
                top = ranking[0] if ranking else parsed["intent"]
                predictions.append(
                    Prediction(text, truth, parsed["intent"]["name"], top["name"], float(top["confidence"]))
                )
                done += 1
                if done % PROGRESS_EVERY == 0 or done == total:
                    print(f"    {done}/{total} messages classified", flush=True)
        return results

    return asyncio.run(run()), intents


def unknown_labels(sources: list[Source], intents: list[str]) -> dict[str, list[str]]:
    """Labels of gated sources the model's domain does not know: a typo, or a missing intent
    that belongs in a *_missing_intents.yml file."""
    known = set(intents)
    return {
        source.name: sorted({label for _, label in source.examples} - known)
        for source in sources
        if source.gated and {label for _, label in source.examples} - known
    }


def partner_of(missing: str, gated: dict) -> str | None:
    """The gated source a missing-intents file belongs to: `bitext_es_missing_intents` to
    `bitext_es_translated`, `written_missing_intents` to `written_independent`."""
    stem = missing.removesuffix(MISSING_SUFFIX)
    found = [name for name in gated if name.startswith(stem + "_") or name == stem]
    return found[0] if len(found) == 1 else None


def fmt(value: float | None, percent: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"{value:.0%}" if percent else f"{value:.3f}"


def chart(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    gated = {name: row for name, row in report["sources"].items() if row["gated"]}
    names = ["own held-out", *gated]
    f1 = [report["own_macro_f1"], *(row["macro_f1"] for row in gated.values())]
    oos = [report["own_out_of_scope_recall"], *(row["out_of_scope_recall"] for row in gated.values())]
    figure, axes = plt.subplots(figsize=(7.5, 4.2), dpi=100)
    xs = range(len(names))
    axes.bar([x - 0.2 for x in xs], f1, width=0.4, label="intent macro-F1", color="#3b6ea8")
    oos_bars = [value or 0 for value in oos]
    axes.bar([x + 0.2 for x in xs], oos_bars, width=0.4, label="out-of-scope recall", color="#d08a2c")
    for x, f1_value, oos_value in zip(xs, f1, oos, strict=True):
        axes.text(x - 0.2, f1_value + 0.01, f"{f1_value:.2f}", ha="center", fontsize=8)
        label = "n/a" if oos_value is None else f"{oos_value:.2f}"
        axes.text(x + 0.2, (oos_value or 0) + 0.01, label, ha="center", fontsize=8)
    target, floor = TARGETS["macro_f1"], report["floor"]
    axes.axhline(target, color="green", linestyle="--", linewidth=1, label=f"issue 16 target {target:.2f}")
    axes.axhline(floor, color="red", linestyle=":", linewidth=1, label=f"gate floor {floor:.2f}")
    axes.set_xticks(list(xs), names, fontsize=8)
    axes.set_ylim(0, 1.05)
    axes.set_title("NLU on messages the model's authors did not write", fontsize=10)
    axes.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=4)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def evaluate(model: Path, own_macro_f1: float, own_oos_recall: float | None, floor: float) -> dict:
    """Classify, print the tables, write results/external/; the caller gates on `worst`."""
    # Rasa and its dependencies warn about their own deprecations on import, on the first parse
    # and when matplotlib draws; none of it is about this check, and it would bury the table.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # Some of them reset the filters on import; what is not shown cannot bury anything.
        warnings.showwarning = lambda *args, **kwargs: None
        return _evaluate(model, own_macro_f1, own_oos_recall, floor)


def _evaluate(model: Path, own_macro_f1: float, own_oos_recall: float | None, floor: float) -> dict:
    sources = load_sources()
    if not any(source.gated for source in sources):
        raise SystemExit(f"error: no gated source in {SOURCES_DIR.relative_to(ROOT)}/.")
    threshold = fallback_threshold()
    predictions, intents = classify(model, sources)
    unknown = unknown_labels(sources, intents)
    if unknown:
        raise SystemExit(f"error: gated external sources use labels the domain lacks: {unknown}")

    report: dict = {
        "model": model.name,
        "fallback_threshold": threshold,
        "own_macro_f1": own_macro_f1,
        "own_out_of_scope_recall": own_oos_recall,
        "floor": floor,
        "targets": {**TARGETS, "confident_misroutes_of_in_scope": TARGET_CONFIDENT_MISROUTES},
        "sources": {},
    }
    for source in sources:
        rows = predictions[source.name]
        numbers = score(rows, threshold) if source.gated else destinations(rows, threshold)
        numbers["gated"] = source.gated
        numbers["file"] = str(source.path.relative_to(ROOT))
        numbers["errors"] = [
            {
                "text": p.text,
                "truth": p.truth,
                "predicted": p.intent,
                "top": p.top_intent,
                "confidence": round(p.confidence, 4),
            }
            for p in rows
            if p.intent != p.truth
        ]
        report["sources"][source.name] = numbers

    gated = {name: row for name, row in report["sources"].items() if row["gated"]}
    for source in sources:
        # Rows kept apart for want of an intent, whose intents all exist now: what the gate would
        # say with them, so that leaving them apart never hides a weakness.
        labels = {label for _, label in source.examples}
        partner = partner_of(source.name, gated)
        if not source.gated and partner and labels <= set(intents):
            row = report["sources"][source.name]
            both = predictions[partner] + predictions[source.name]
            row.update(labels_now_in_domain=True, gated_partner=partner)
            row["partner_macro_f1_with_them"] = score(both, threshold)["macro_f1"]
    worst = min(gated, key=lambda name: gated[name]["macro_f1"])
    report["worst_source"] = worst
    report["worst_macro_f1"] = gated[worst]["macro_f1"]

    print(f"\n  External NLU check: {len(gated)} gated sources, fallback threshold {threshold:.2f}")
    print(
        f"    {'source':<24}{'msgs':>5}  {'macro-F1':>8}  {'vs own':>6}  {'OOS rec.':>8}  "
        f"{'in-scope prec.':>14}  {'confident misroutes':>19}"
    )
    print(f"    {'own held-out set':<24}{'':>5}  {own_macro_f1:>8.3f}  {'':>6}  {fmt(own_oos_recall):>8}")
    for name, row in gated.items():
        misroutes = (
            f"{fmt(row['confident_misroutes_of_in_scope'], True)} of in-scope, "
            f"{fmt(row['confident_misroutes_of_misrouted'], True)} of misses"
        )
        print(
            f"    {name:<24}{row['messages']:>5}  {row['macro_f1']:>8.3f}  "
            f"{row['macro_f1'] - own_macro_f1:>+6.3f}  "
            f"{fmt(row['out_of_scope_recall']):>8}  {fmt(row['in_scope_precision']):>14}  {misroutes}"
        )
        weakest = sorted(row["per_label"].items(), key=lambda item: item[1]["f1"])[:4]
        print("      weakest: " + ", ".join(f"{label} {v['f1']:.2f}" for label, v in weakest))
    print(
        f"    issue 16 targets on every source: macro-F1 >= {TARGETS['macro_f1']:.2f} (goal "
        f"{TARGETS['macro_f1_goal']:.2f}), OOS recall >= {TARGETS['out_of_scope_recall']:.2f}, in-scope "
        f"precision >= {TARGETS['in_scope_precision']:.2f}, confident misroutes <= "
        f"{TARGET_CONFIDENT_MISROUTES:.0%} of in-scope (reported; only the floor below is gated)"
    )
    missing = {name: row for name, row in report["sources"].items() if not row["gated"]}
    if missing:
        print("    requests kept apart while the product had no intent for them (reported, not gated)")
        for name, row in missing.items():
            print(
                f"    {name:<24}{row['messages']:>5}  recognised {row['recognised']:.0%}, fallback "
                f"{row['fallback_rate']:.0%}, person {row['to_human_handoff']:.0%}, confidently into "
                f"another flow {row['confidently_into_another_flow']:.0%}"
            )
            for label, where in row["per_label"].items():
                print(f"      {label:<22} -> " + ", ".join(f"{intent} {n}" for intent, n in where.items()))
            if row.get("labels_now_in_domain"):
                print(
                    f"      every label is an intent now: with these rows, {row['gated_partner']} "
                    f"would score {row['partner_macro_f1_with_them']:.3f} (move them: docs/designing.md)"
                )

    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / "report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    chart(report, RESULTS_DIR / "external_check.png")
    verdict = "ok" if report["worst_macro_f1"] >= floor else "BELOW"
    print(
        f"    worst gated source:   {worst} {report['worst_macro_f1']:.3f}  "
        f"(floor >= {floor:.2f}: {verdict}; "
        f"target {TARGETS['macro_f1']:.2f})"
    )
    where = RESULTS_DIR.relative_to(ROOT)
    print(f"    report:               {where}/ (report.json with every error, external_check.png)\n")
    return report
