"""`make bench MODE=capacity` and `make soak`: their search, slope and gate, and a tiny real run of each.

No figure is asserted against a threshold of time (a timed assert on a shared machine proves
nothing; the README keeps what was measured): the short runs check that each variant's stack
starts, takes open-loop traffic, answers it, and that the reports carry what the issue asks for.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PG_URL, STACK_REDIS_URL

ROOT = Path(__file__).resolve().parents[2]


def load(name: str):
    sys.path.insert(0, str(ROOT / "scripts"))
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


capacity = load("capacity")
soak = load("soak")


def step(rate: float, p95_ms: float, errors: int = 0):
    result = capacity.Step(rate, 10.0, sent=100, answered=100, errors=errors)
    result.e2e_ms = [p95_ms / 2] * 90 + [p95_ms] * 10
    result.cpu_s = {"rasa-1": 5.0, "actions-1": 0.5}
    return result


def test_an_unanswered_message_counts_as_infinitely_late():
    assert capacity.percentile([10.0] * 95 + [math.inf] * 5, 0.95) == 10.0
    assert capacity.percentile([10.0] * 94 + [math.inf] * 6, 0.95) == math.inf
    late = capacity.Step(8.0, 10.0, sent=20, answered=18)
    late.e2e_ms = [50.0] * 18 + [math.inf] * 2
    assert not late.met


def test_capacity_is_the_highest_rate_met_below_every_rate_missed():
    result = capacity.VariantResult("ours-1", "ours")
    result.steps = [step(4, 100), step(8, 200), step(12, 900), step(10, 250), step(11, 310, errors=1)]
    assert result.capacity == 10
    assert result.at_capacity.rasa_cpu_ms_per_message == 50.0  # 5 CPU-seconds over 100 answers
    lucky = capacity.VariantResult("rest", "rest")
    lucky.steps = [step(4, 100), step(8, 400), step(6, 100), step(7, 500), step(12, 200)]
    assert lucky.capacity == 6  # 12 met after 7 and 8 missed: noise, not capacity


def test_the_capacity_report_puts_the_variants_and_the_cpu_ratio_side_by_side(capsys):
    ours = capacity.VariantResult("ours-1", capacity.VARIANTS["ours-1"], [step(4, 100), step(8, 400)])
    ours.peak_rss_mb = {"rasa-1": 1100.0, "actions-1": 80.0}
    peer = capacity.VariantResult("rest", capacity.VARIANTS["rest"], [step(2, 100), step(4, 500)])
    peer.peak_rss_mb = {"rasa-1": 1150.0}
    summary = capacity.report(
        [ours, peer], {"cpu_ms_per_turn": 40.0, "turns": 100}, {"before": "1", "after": "2"}
    )
    printed = capsys.readouterr().out
    assert summary["capacity"] == {"ours-1": 4, "rest": 2} and summary["ours-1_vs_rest"] == 2.0
    assert summary["cpu_ratio"] == pytest.approx(50.0 / 40.0)
    assert "2.00× (target ≥ 2×)" in printed and "1.25× (target ≤ 1.2×)" in printed
    assert "up to 1150 MB" in printed


def test_a_steady_memory_passes_the_soak_gate_and_a_growing_one_fails():
    rng = random.Random(7)
    flat = [(t * 5.0, 1100 + rng.uniform(-3, 3)) for t in range(360)]  # 30 min, ±3 MB of noise
    assert soak.least_squares(flat).lower_bound <= soak.MAX_SLOPE_MB_PER_MIN
    leaking = [(t, 1100 + 0.5 * t / 60 + rng.uniform(-3, 3)) for t, _ in flat]  # 0.5 MB/min
    slope = soak.least_squares(leaking)
    assert slope.mb_per_min == pytest.approx(0.5, abs=0.05)
    assert slope.lower_bound > soak.MAX_SLOPE_MB_PER_MIN


def run_script(name: str, *arguments: str) -> tuple[int, str]:
    """The script in a process of its own (it sets the stack's environment in its own)."""
    run = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / f"{name}.py"), *arguments],
        cwd=ROOT,
        env={
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "BENCH_DATABASE_URL": PG_URL,
            "BENCH_REDIS_URL": STACK_REDIS_URL,
        },
        capture_output=True,
        text=True,
        timeout=900,
    )
    return run.returncode, run.stdout + run.stderr


@pytest.mark.integration
@pytest.mark.own_stack
def test_a_tiny_capacity_run_searches_every_variant_and_writes_its_figures(tmp_path):
    output = tmp_path / "capacity.json"
    code, printed = run_script(
        "capacity", "--variants", "ours-1,ours-2,rest", "--start", "2", "--step", "2", "--max-rate", "4",
        "--refine", "0", "--step-seconds", "3", "--warmup-seconds", "1", "--turns", "5",
        "--output", str(output),
    )  # fmt: skip
    assert code == 0, printed
    assert "CPU per message: channel path" in printed and "Peak RSS per Rasa replica" in printed, printed
    figures = json.loads(output.read_text())
    assert set(figures["variants"]) == {"ours-1", "ours-2", "rest"}
    for name, variant in figures["variants"].items():
        assert variant["steps"], name
        first = variant["steps"][0]
        assert first["rate"] == 2 and first["sent"] == 6 and first["errors"] == 0, (name, first)
        assert first["answered"] == 6 and first["extra_replies"] == 0, (name, first)
        assert all(ms is None or ms > 0 for ms in first["e2e_ms"])
        rasa = [mb for process, mb in variant["peak_rss_mb"].items() if process.startswith("rasa")]
        assert len(rasa) == (2 if name == "ours-2" else 1) and all(300 < mb < 4000 for mb in rasa), variant
        assert first["rasa_cpu_ms_per_message"] > 0
    assert "haproxy" in figures["variants"]["ours-2"]["peak_rss_mb"]
    turn = figures["in_process"]
    assert turn["turns"] == 5 and turn["cpu_ms_per_turn"] > 0 and turn["turns_without_reply"] == 0
    assert figures["summary"]["capacity"].keys() == {"ours-1", "ours-2", "rest"}


@pytest.mark.integration
@pytest.mark.own_stack
def test_a_tiny_soak_samples_every_process_and_fits_a_slope(tmp_path):
    output = tmp_path / "soak.json"
    # The gate is the unit test's above; a 20-second run cannot tell growth from noise.
    code, printed = run_script(
        "soak", "--minutes", "0.34", "--rate", "2", "--sample-seconds", "1", "--max-slope", "1e9",
        "--output", str(output),
    )  # fmt: skip
    assert code == 0, printed
    assert "slope after warm-up" in printed and "MB/min" in printed, printed
    figures = json.loads(output.read_text())
    assert figures["sent"] >= 38 and figures["answered"] == figures["sent"]
    assert set(figures["samples"]) == {"rasa-1", "actions-1", "haproxy"}
    for process, samples in figures["samples"].items():
        assert len(samples) >= 15 and all(mb > 0 for _, mb in samples), process
        assert figures["slopes_mb_per_min"][process]["samples"] >= 5
        assert math.isfinite(figures["slopes_mb_per_min"][process]["slope"])
    assert 300 < figures["peak_rss_mb"]["rasa-1"] < 4000
