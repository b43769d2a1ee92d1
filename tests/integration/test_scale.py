"""A short `make scale-test`: two Rasa replicas and two action servers behind HAProxy, sharing
PostgreSQL and Redis; one replica is killed with kill -9 while 40 customers write for 30 s.
Every accepted message is answered once and in order, and no webhook is refused: HAProxy's
health check and its retries carry every delivery to the replica that lives.

No timing is asserted but the refused seconds (0): the run's own duration depends on the machine.
About 3 minutes on 2 busy cores (180 and 194 s with a load average of 5-8), most of it the
two replicas loading their model together."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.conftest import PG_URL, STACK_REDIS_URL
from tests.harness import ROOT

pytestmark = [pytest.mark.integration, pytest.mark.own_stack]


def figure(report: str, label: str) -> str:
    match = re.search(rf"^\s+{re.escape(label)}\s+(.+)$", report, re.MULTILINE)
    assert match, f"no {label!r} line in the report:\n{report}"
    return match.group(1).strip()


def test_a_replica_killed_behind_haproxy_loses_doubles_reorders_and_refuses_nothing():
    run = subprocess.run(
        [
            sys.executable, str(ROOT / "scripts" / "scale_test.py"),
            "--customers", "40", "--seconds", "30", "--rate", "4",
            "--rejoin-timeout", "0",  # the killed replica's return is make scale-test's to show
        ],
        cwd=ROOT,
        env={
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "SCALE_DATABASE_URL": PG_URL,
            "SCALE_REDIS_URL": STACK_REDIS_URL,
        },
        capture_output=True,
        text=True,
        timeout=480,
    )  # fmt: skip
    report = run.stdout + run.stderr
    assert "kill -9 rasa-1" in report, report  # the fault happened, on a replica holding work
    sent, _, accepted = figure(report, "sent / deliveries / accepted").split(" / ")
    assert sent == accepted == "120", report
    assert figure(report, "lost") == "0", report
    assert figure(report, "double replies") == "0", report
    assert figure(report, "out of order") == "0 customers", report
    assert figure(report, "per-customer order") == "100% (40 of 40)", report
    assert figure(report, "refused or failed webhooks").startswith("0 in 0 s"), report
    held, answered = figure(report, "held, answered").split(", ")
    assert int(held) >= 1 and held == answered, report  # its leased rows were taken over and answered
    assert "PASS" in report and run.returncode == 0, report
