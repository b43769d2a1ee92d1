"""connectors/rasa_patches.py's prediction-only model load against Rasa's own, on the trained model.

Rasa builds a loaded TensorFlow model by training it one step (optimizer state, training graph);
the patch builds it by a prediction after restoring the weights. The two must predict exactly the
same: every held-out message's intent ranking, entities and FAQ answer, and the next action after
it (tests/model_load_equivalence.py, in a process of its own). The memory each load adds is
checked only to be smaller, not by how much (the README's Benchmark keeps the figures).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.harness import ROOT

pytestmark = pytest.mark.integration


def test_the_prediction_only_load_predicts_exactly_what_rasas_own_load_does():
    model = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "stack.py"), "model"],
        cwd=ROOT, capture_output=True, text=True, check=True, timeout=1800,
    ).stdout.strip().splitlines()[-1]  # fmt: skip
    run = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "model_load_equivalence.py"), str(ROOT / model), "150"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["compared"] == 150
    assert result["differing"] == [] and result["largest_difference"] <= 1e-5, result
    assert result["rss_growth_mb"]["patched"] < result["rss_growth_mb"]["rasa"], result
