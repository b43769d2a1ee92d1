"""Run by tests/integration/test_rasa_patches_model.py in a process of its own: the trained model
loaded Rasa's way and loaded by connectors/rasa_patches.py's prediction-only load must predict
the same thing for every held-out message (intent ranking, entities, FAQ answer) and the same
next action. Prints one JSON line: how many were compared, the largest difference of any
confidence, the messages that differ, and each load's resident memory.

Usage: python tests/model_load_equivalence.py MODEL [LIMIT]
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def held_out_messages(limit: int) -> list[str]:
    """The examples of tests/nlu_holdout.yml, entity annotations removed."""
    import re

    texts = []
    for block in yaml.safe_load((ROOT / "tests" / "nlu_holdout.yml").read_text())["nlu"]:
        for line in str(block.get("examples", "")).splitlines():
            text = line.strip().removeprefix("- ").strip()
            text = re.sub(
                r"\[([^\]]+)\]\([^)]*\)|\[([^\]]+)\]\{[^}]*\}", lambda m: m.group(1) or m.group(2), text
            )
            if text:
                texts.append(text)
    return texts[:limit]


def confidences(value: object, path: str = "") -> dict[str, float]:
    """Every float in a parse or prediction, by where it is, to compare with a tolerance."""
    found: dict[str, float] = {}
    if isinstance(value, float):
        found[path] = value
    elif isinstance(value, dict):
        for key, inner in value.items():
            found.update(confidences(inner, f"{path}/{key}"))
    elif isinstance(value, (list, tuple)):
        for index, inner in enumerate(value):
            found.update(confidences(inner, f"{path}/{index}"))
    return found


def without_floats(value: object) -> object:
    if isinstance(value, float):
        return None
    if isinstance(value, dict):
        return {key: without_floats(inner) for key, inner in value.items()}
    if isinstance(value, (list, tuple)):
        return [without_floats(inner) for inner in value]
    return value


async def predictions(agent, texts: list[str]) -> list[dict]:
    from rasa.shared.core.events import ActionExecuted, SessionStarted, UserUttered
    from rasa.shared.core.trackers import DialogueStateTracker

    results = []
    for text in texts:
        parse = await agent.parse_message(text)
        tracker = DialogueStateTracker.from_events(
            "equivalence",
            [ActionExecuted("action_session_start"), SessionStarted(), ActionExecuted("action_listen"),
             UserUttered(text, parse.get("intent"), parse.get("entities"), parse)],
            agent.domain.slots,
        )  # fmt: skip
        prediction = agent.predict_next_with_tracker(tracker)
        results.append({"parse": parse, "next": {k: v for k, v in prediction.items() if k != "tracker"}})
    return results


async def main(model: str, limit: int) -> dict:
    from rasa.core.agent import load_agent
    from rasa.utils.common import configure_logging_and_warnings
    from rasa.utils.log_utils import configure_structlog
    from rasa.utils.tensorflow.models import RasaModel

    from connectors import rasa_patches

    configure_logging_and_warnings(logging.WARNING, None, warn_only_once=True, filter_repeated_logs=True)
    configure_structlog(logging.WARNING)  # not a debug line per prediction
    rasa_patches.apply()
    texts = held_out_messages(limit)
    before = rss_mb()
    patched = await load_agent(model_path=model)
    patched_mb = rss_mb() - before
    ours = await predictions(patched, texts)
    del patched
    RasaModel.load = vars(RasaModel)["load"].__func__.__wrapped__  # Rasa's own classmethod
    before = rss_mb()
    original = await load_agent(model_path=model)
    original_mb = rss_mb() - before
    rasas = await predictions(original, texts)
    largest, differing = 0.0, []
    for text, a, b in zip(texts, ours, rasas, strict=True):
        ca, cb = confidences(a), confidences(b)
        gap = max((abs(ca[k] - cb[k]) for k in ca if k in cb), default=0.0)
        largest = max(largest, gap)
        if ca.keys() != cb.keys() or without_floats(a) != without_floats(b) or gap > 1e-5:
            differing.append(text)
    return {
        "compared": len(texts),
        "largest_difference": largest,
        "differing": differing,
        "rss_growth_mb": {"patched": patched_mb, "rasa": original_mb},
    }


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    print(
        json.dumps(asyncio.run(main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 400))), flush=True
    )
