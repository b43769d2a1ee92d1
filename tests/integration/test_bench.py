"""`make bench` itself: its report, and a short real run of our channel through it.

The figures are not asserted (a timed assert on a shared machine proves nothing; the README
keeps what `make bench` measured); what is checked is that the benchmark drives the stack,
counts every reply once and reports what the issue asks for.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def load_bench():
    sys.path.insert(0, str(ROOT / "scripts"))
    spec = importlib.util.spec_from_file_location("bench", ROOT / "scripts" / "bench.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench"] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


bench = load_bench()


def outcome(name: str, ack: list[float], e2e: list[float], answered: int, duplicated: int = 0):
    result = bench.Outcome(name, customers=20, seconds=10.0, ack_ms=ack, e2e_ms=e2e)
    result.sent, result.answered, result.duplicated = answered, answered, duplicated
    result.peak_memory_mb = {"rasa": 1500.0, "actions": 80.0}
    result.cpu_s = {"rasa": 80.0, "actions": 3.0}
    return result


SETTINGS = {
    "customers": 20,
    "seconds": 10,
    "think_s": 1.0,
    "ramp_up_s": 1.0,
    "replay_share": 0.1,
    "api_latency_ms": 150,
    "model": "m.tar.gz",
}


def test_the_report_puts_both_variants_side_by_side_with_the_targets(capsys):
    ours = outcome("ours", [2.0] * 99 + [40.0], [100.0] * 95 + [250.0] * 5, answered=180)
    builtin = outcome("builtin", [1800.0] * 100, [1600.0] * 100, answered=50, duplicated=28)
    assert bench.report(ours, builtin, SETTINGS)
    printed = capsys.readouterr().out
    assert "starting over 1.0 s" in printed and "think time 0.5–1.5 s" in printed
    assert "Rasa built-in twilio" in printed and "3.6×" in printed  # 18.0 vs 5.0 messages a second
    for row in ("ack latency p50/p95/p99", "end-to-end p50/p95/p99", "lost", "duplicated replies"):
        assert row in printed
    assert "end-to-end p95 ≤ 300 ms ✔" in printed


def test_a_missed_target_fails_the_run(capsys):
    ours = outcome("ours", [2.0] * 100, [400.0] * 100, answered=180)
    builtin = outcome("builtin", [1800.0] * 100, [1600.0] * 100, answered=50)
    assert not bench.report(ours, builtin, SETTINGS)
    assert "end-to-end p95 ≤ 300 ms ✘" in capsys.readouterr().out


@pytest.mark.integration
@pytest.mark.own_stack
def test_a_short_run_of_our_channel_answers_every_message_once(tmp_path):
    output = tmp_path / "bench.json"
    code = bench.main(["--only", "ours", "--customers", "3", "--seconds", "4", "--output", str(output)])
    assert code == 0
    ours = json.loads(output.read_text())["outcomes"]["ours"]
    assert ours["sent"] > 3 and ours["answered"] == ours["sent"]
    assert (ours["lost"], ours["duplicated"], ours["errors"]) == (0, 0, 0)
    assert len(ours["e2e_ms"]) == ours["sent"] and ours["peak_memory_mb"]["rasa"] > 0
