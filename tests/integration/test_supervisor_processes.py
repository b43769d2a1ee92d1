"""scripts/supervisor.py over real short-lived processes, real signals and the real clock: what
`make run` does when a child dies, and when it is stopped. Each test is bounded to a few seconds."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
if str(SCRIPTS) not in sys.path:
    sys.path.insert(0, str(SCRIPTS))  # as `python scripts/stack.py` has it

from supervisor import Backoff, GroupProcess, ProcessSpec, Supervisor  # noqa: E402

QUICK = Backoff(first_s=0.2, factor=2.0, max_s=1.0, stable_s=30.0)


def python(code: str, log: Path) -> ProcessSpec:
    """A process kind running `code`; every start appends its pid to `log`."""

    def start() -> GroupProcess:
        script = f"import os; open({str(log)!r}, 'a').write(f'{{os.getpid()}}\\n'); {code}"
        return GroupProcess(subprocess.Popen([sys.executable, "-c", script], start_new_session=True))

    return ProcessSpec("short-lived", start)


def test_a_real_process_that_exits_is_restarted_with_a_growing_wait(tmp_path):
    starts = tmp_path / "starts"
    lines: list[str] = []
    supervisor = Supervisor(
        [python("raise SystemExit(3)", starts)], time.monotonic, time.sleep, lines.append, backoff=QUICK
    )
    began = time.monotonic()
    supervisor.start_all()
    try:
        while (
            len(starts.read_text().split() if starts.exists() else []) < 4 and time.monotonic() - began < 20
        ):
            supervisor.tick()
            time.sleep(0.05)
    finally:
        supervisor.stop_all()
    pids = starts.read_text().split()
    assert len(pids) >= 4 and len(set(pids)) == len(pids)  # four processes, each a new one
    exits = [line for line in lines if "exited with code 3" in line]
    assert [line.rsplit("restarting it in ", 1)[1] for line in exits[:3]] == ["0.2 s.", "0.4 s.", "0.8 s."]
    assert sum("restarted (pid" in line for line in lines) >= 3
    # 0.2 + 0.4 + 0.8 s of backoff at least between the first start and the fourth
    assert time.monotonic() - began >= 1.4


def test_stopping_drains_a_process_that_handles_sigterm_and_kills_one_that_ignores_it(tmp_path):
    drained = tmp_path / "drained"
    drains = (
        "import signal, sys, time\n"
        "def stop(*_):\n"
        f"    open({str(drained)!r}, 'w').write('finished the current item'); sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, stop)\n"
        "while True: time.sleep(0.05)\n"
    )
    stubborn = (
        "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nwhile True: time.sleep(0.05)\n"
    )

    def spec(name: str, code: str) -> ProcessSpec:
        def start() -> GroupProcess:
            return GroupProcess(subprocess.Popen([sys.executable, "-c", code], start_new_session=True))

        return ProcessSpec(name, start)

    lines: list[str] = []
    supervisor = Supervisor(
        [spec("worker", drains), spec("stubborn", stubborn)],
        time.monotonic,
        time.sleep,
        lines.append,
        grace_s=1.5,
    )
    supervisor.start_all()
    time.sleep(0.5)  # both have set their handlers
    supervisor.tick()
    began = time.monotonic()
    supervisor.stop_all()
    worker, stubborn_process = (child.process for child in supervisor.children)
    assert worker.poll() == 0 and drained.read_text() == "finished the current item"
    assert stubborn_process.poll() == -9
    assert "stubborn did not stop within 1.5 s; killing it." in lines
    assert time.monotonic() - began < 5
