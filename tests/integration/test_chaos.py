"""A short round of `make chaos`: six customers write while the Rasa server is killed with
kill -9 (its supervisor restarts it); every accepted message is answered once and in order."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.harness import ROOT

pytestmark = [pytest.mark.integration, pytest.mark.own_stack]


def test_a_kill_of_rasa_loses_doubles_and_reorders_nothing():
    run = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "chaos.py"), "--customers", "6", "--phases", "rasa"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=360,
    )
    report = run.stdout + run.stderr
    assert "accepted and not yet answered at the kill" in report, report  # the kill landed mid-work
    assert "phase rasa: sent" in report and "lost 0, doubled 0, out-of-order 0" in report, report
    assert run.returncode == 0, report
