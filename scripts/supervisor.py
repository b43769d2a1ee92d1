"""Keeps each process of `make run` alive on its own: restart with backoff, readiness, graceful stop.

What systemd's `Restart=always` or Kubernetes' restartPolicy does for a deployment, for the one
machine of `make run`: a process that dies (a crash, an out-of-memory kill, a `kill -9`) is
started again on its own, the others keep serving. What Twilio delivered while it was down is
retried by Twilio, and what was accepted is replayed from the inbound journal once Rasa is back.

The logic is pure over what it is given: `start` makes a process, `ready` asks whether it serves,
`clock` says the monotonic time and `sleep` waits. scripts/stack.py gives it real subprocesses,
HTTP readiness checks, `time.monotonic` and `time.sleep`; tests give it fakes and a clock they move.

- A process that dies waits before its restart: `Backoff.first_s` (1 s) the first time, twice as
  long for each death that follows a short life, at most `Backoff.max_s` (30 s); one that had
  stayed up `Backoff.stable_s` (60 s) starts over at 1 s. A broken configuration does not spin.
- A process that has never been ready and dies `startup_attempts` times (3) is a configuration
  that cannot start: the supervisor gives up (`StartupFailed`) rather than retry it forever.
- Readiness: a process counts as ready when its `ready` check answers (scripts/stack.py: the
  readiness URLs of docs/deploy.md); after a restart it is "starting" again until it answers.
- Stopping: SIGTERM to each process (its whole process group) in the reverse order of start
  (the entry points before what they call), each given `grace_s` to drain and exit, then SIGKILL.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol


class Process(Protocol):
    """What the supervisor needs of a running process (`GroupProcess` below is the real one)."""

    pid: int

    def poll(self) -> int | None: ...

    def terminate(self) -> None: ...

    def kill(self) -> None: ...


class GroupProcess:
    """A child started in a session of its own (`start_new_session=True`): signals go to its whole
    process group, so Sanic's and rasa_sdk's workers stop with it. `pid` is the child's own."""

    def __init__(self, popen: subprocess.Popen) -> None:
        self.popen = popen
        self.pid = popen.pid

    def poll(self) -> int | None:
        return self.popen.poll()

    def terminate(self) -> None:
        self._signal(signal.SIGTERM)

    def kill(self) -> None:
        self._signal(signal.SIGKILL)

    def _signal(self, signum: int) -> None:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signum)


class StartupFailed(RuntimeError):
    """A process died again and again before it was ever ready: its configuration cannot start."""


@dataclass(frozen=True)
class Backoff:
    """How long a dead process waits before its restart."""

    first_s: float = 1.0
    factor: float = 2.0
    max_s: float = 30.0
    stable_s: float = 60.0  # up this long: the next death starts the backoff over

    def delay(self, quick_deaths: int) -> float:
        """The wait before restart number `quick_deaths` of a run of short lives (1, 2, …)."""
        return min(self.max_s, self.first_s * self.factor ** max(0, quick_deaths - 1))


@dataclass(frozen=True)
class ProcessSpec:
    """One kind of process: its name in the log, how to start it and how to ask if it serves."""

    name: str
    start: Callable[[], Process]
    ready: Callable[[], bool] = lambda: True


def describe_exit(code: int) -> str:
    """'code 3', or 'signal SIGKILL' for a process a signal ended (Popen's negative codes)."""
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"code {code}"


class Supervised:
    """One process under supervision: its current run, its deaths and its restart."""

    def __init__(self, spec: ProcessSpec, backoff: Backoff, log: Callable[[str], None]) -> None:
        self.spec, self.backoff, self.log = spec, backoff, log
        self.process: Process | None = None
        self.started_at = 0.0
        self.restart_at: float | None = None
        self.quick_deaths = 0
        self.restarts = 0
        self.ready = False
        self.ever_ready = False
        self.deaths_before_ready = 0

    @property
    def name(self) -> str:
        return self.spec.name

    def start(self, now: float) -> None:
        self.process = self.spec.start()
        self.started_at, self.restart_at, self.ready = now, None, False

    def watch(self, now: float, startup_attempts: int) -> None:
        """Notice a death and schedule the restart; restart once its wait is over; notice readiness."""
        if self.restart_at is not None:
            if now >= self.restart_at:
                self.restarts += 1
                self.start(now)
                self.log(f"{self.name} restarted (pid {self.process.pid}, restart {self.restarts}).")
            return
        code = self.process.poll()
        if code is None:
            if not self.ready and self.spec.ready():
                self.ready = True
                again = " again" if self.ever_ready else ""
                self.ever_ready = True
                self.log(f"{self.name} is ready{again} (pid {self.process.pid}).")
            return
        lived = now - self.started_at
        self.ready = False
        if not self.ever_ready:
            self.deaths_before_ready += 1
            if self.deaths_before_ready >= startup_attempts:
                raise StartupFailed(
                    f"{self.name} exited with {describe_exit(code)} {self.deaths_before_ready} times "
                    "before it was ever ready; the lines above say why."
                )
        self.quick_deaths = 1 if lived >= self.backoff.stable_s else self.quick_deaths + 1
        delay = self.backoff.delay(self.quick_deaths)
        self.restart_at = now + delay
        self.log(
            f"{self.name} (pid {self.process.pid}) exited with {describe_exit(code)} after {lived:.0f} s; "
            f"restarting it in {delay:g} s."
        )


class Supervisor:
    """Starts every process, keeps each alive on its own, and stops them all on request."""

    def __init__(
        self,
        specs: Iterable[ProcessSpec],
        clock: Callable[[], float],
        sleep: Callable[[float], None],
        log: Callable[[str], None],
        backoff: Backoff = Backoff(),
        startup_attempts: int = 3,
        grace_s: float = 15.0,
    ) -> None:
        self.children = [Supervised(spec, backoff, log) for spec in specs]
        self.clock, self.sleep, self.log = clock, sleep, log
        self.startup_attempts, self.grace_s = startup_attempts, grace_s
        self.stopped = False

    def start_all(self) -> None:
        for child in self.children:
            child.start(self.clock())

    def tick(self) -> None:
        """One look at every process (raises StartupFailed, see the module docstring)."""
        if self.stopped:
            return
        for child in self.children:
            child.watch(self.clock(), self.startup_attempts)

    @property
    def all_ready(self) -> bool:
        return all(child.ready for child in self.children)

    def wait_all_ready(self, timeout_s: float, interval_s: float = 0.5) -> list[str]:
        """Watch until every process is ready; the names of those that are not when `timeout_s` ends."""
        deadline = self.clock() + timeout_s
        while True:
            self.tick()
            if self.all_ready:
                return []
            if self.clock() >= deadline:
                return [child.name for child in self.children if not child.ready]
            self.sleep(interval_s)

    def run(self, stopping: Callable[[], bool], interval_s: float = 0.3) -> None:
        """Watch until `stopping()` says so (a signal handler sets it)."""
        while not stopping():
            self.tick()
            self.sleep(interval_s)

    def stop_all(self, poll_s: float = 0.1) -> None:
        """SIGTERM each running process in reverse start order, wait up to `grace_s` for it to
        drain and exit, SIGKILL it if it does not. Processes waiting for a restart are not restarted."""
        self.stopped = True
        for child in reversed(self.children):
            process = child.process
            child.restart_at = None
            if process is None or process.poll() is not None:
                continue
            self.log(f"Stopping {child.name} (pid {process.pid})...")
            process.terminate()
            deadline = self.clock() + self.grace_s
            while process.poll() is None and self.clock() < deadline:
                self.sleep(poll_s)
            if process.poll() is None:
                self.log(f"{child.name} did not stop within {self.grace_s:g} s; killing it.")
                process.kill()
                deadline = self.clock() + self.grace_s
                while process.poll() is None and self.clock() < deadline:
                    self.sleep(poll_s)
