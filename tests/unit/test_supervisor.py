"""scripts/supervisor.py on fake processes and a clock the test moves: restarts, backoff, readiness, stop."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
if str(SCRIPTS) not in sys.path:
    sys.path.insert(0, str(SCRIPTS))  # as `python scripts/stack.py` has it

from supervisor import Backoff, ProcessSpec, StartupFailed, Supervisor, describe_exit  # noqa: E402


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class FakeProcess:
    """A process that runs until the test ends it, or until it gets a signal it obeys."""

    next_pid = 100

    def __init__(self, obeys_sigterm: bool = True) -> None:
        FakeProcess.next_pid += 1
        self.pid = FakeProcess.next_pid
        self.code: int | None = None
        self.signals: list[str] = []
        self.obeys_sigterm = obeys_sigterm

    def poll(self) -> int | None:
        return self.code

    def terminate(self) -> None:
        self.signals.append("TERM")
        if self.obeys_sigterm:
            self.code = -15

    def kill(self) -> None:
        self.signals.append("KILL")
        self.code = -9


class Kind:
    """One kind of process: every process it started, and whether it answers its readiness check."""

    def __init__(self, name: str, obeys_sigterm: bool = True) -> None:
        self.name, self.obeys_sigterm = name, obeys_sigterm
        self.started: list[FakeProcess] = []
        self.answers = True

    @property
    def current(self) -> FakeProcess:
        return self.started[-1]

    def spec(self) -> ProcessSpec:
        def start() -> FakeProcess:
            self.started.append(FakeProcess(self.obeys_sigterm))
            return self.current

        return ProcessSpec(self.name, start, lambda: self.answers)


def supervisor_of(*kinds: Kind, clock: FakeClock, lines: list[str], **options) -> Supervisor:
    return Supervisor([kind.spec() for kind in kinds], clock, clock.sleep, lines.append, **options)


def test_a_process_that_exits_is_restarted_after_the_backoff_and_the_others_keep_running():
    clock, lines = FakeClock(), []
    rasa, actions = Kind("Rasa server"), Kind("Action server")
    supervisor = supervisor_of(rasa, actions, clock=clock, lines=lines)
    supervisor.start_all()
    supervisor.tick()  # both ready
    first = rasa.current
    clock.now += 5
    first.code = 3
    supervisor.tick()
    assert len(rasa.started) == 1  # not at once: after the backoff
    assert lines[-1] == f"Rasa server (pid {first.pid}) exited with code 3 after 5 s; restarting it in 1 s."
    clock.now += 0.9
    supervisor.tick()
    assert len(rasa.started) == 1
    clock.now += 0.1
    supervisor.tick()
    assert len(rasa.started) == 2 and rasa.current.code is None
    assert f"Rasa server restarted (pid {rasa.current.pid}, restart 1)." in lines
    assert len(actions.started) == 1 and actions.current.signals == []  # untouched
    supervisor.tick()
    assert lines[-1] == f"Rasa server is ready again (pid {rasa.current.pid})."


def test_the_backoff_doubles_while_the_process_keeps_dying_young_and_is_capped():
    clock, lines = FakeClock(), []
    rasa = Kind("Rasa server")
    supervisor = supervisor_of(rasa, clock=clock, lines=lines, backoff=Backoff(max_s=30.0))
    supervisor.start_all()
    supervisor.tick()
    waits = []
    for _ in range(7):
        rasa.current.code = 1
        supervisor.tick()
        died_at = clock.now
        while len(rasa.started) == len(waits) + 1:
            clock.now += 0.5
            supervisor.tick()
        waits.append(clock.now - died_at)
    assert waits == [1, 2, 4, 8, 16, 30, 30]


def test_the_backoff_starts_over_after_the_process_stayed_up_long_enough():
    clock, lines = FakeClock(), []
    rasa = Kind("Rasa server")
    backoff = Backoff(first_s=1.0, max_s=30.0, stable_s=60.0)
    supervisor = supervisor_of(rasa, clock=clock, lines=lines, backoff=backoff)
    supervisor.start_all()
    supervisor.tick()
    for _ in range(3):  # three quick deaths: the next wait would be 8 s
        rasa.current.code = 1
        supervisor.tick()
        clock.now += 10
        supervisor.tick()
    assert lines[-1].endswith("restart 3).")
    clock.now += 60  # up a minute
    rasa.current.code = -9
    supervisor.tick()
    assert lines[-1].endswith("exited with signal SIGKILL after 60 s; restarting it in 1 s.")


def test_readiness_is_reported_once_the_check_answers():
    clock, lines = FakeClock(), []
    rasa, console = Kind("Rasa server"), Kind("Agent console")
    rasa.answers = False
    supervisor = supervisor_of(rasa, console, clock=clock, lines=lines)
    supervisor.start_all()
    supervisor.tick()
    assert not supervisor.all_ready and lines == [f"Agent console is ready (pid {console.current.pid})."]
    rasa.answers = True  # the model is loaded
    assert supervisor.wait_all_ready(timeout_s=10) == []
    assert lines[-1] == f"Rasa server is ready (pid {rasa.current.pid})."


def test_waiting_for_readiness_gives_up_after_the_timeout_and_names_who_is_not_ready():
    clock, lines = FakeClock(), []
    rasa, console = Kind("Rasa server"), Kind("Agent console")
    rasa.answers = False
    supervisor = supervisor_of(rasa, console, clock=clock, lines=lines)
    supervisor.start_all()
    started = clock.now
    assert supervisor.wait_all_ready(timeout_s=30, interval_s=0.5) == ["Rasa server"]
    assert 30 <= clock.now - started <= 30.5


def test_a_process_that_never_gets_ready_and_keeps_dying_is_given_up():
    clock, lines = FakeClock(), []
    rasa = Kind("Rasa server")
    rasa.answers = False
    supervisor = supervisor_of(rasa, clock=clock, lines=lines, startup_attempts=3)
    supervisor.start_all()
    for _ in range(2):
        rasa.current.code = 2
        supervisor.tick()
        clock.now += 5
        supervisor.tick()
    rasa.current.code = 2
    with pytest.raises(
        StartupFailed, match="Rasa server exited with code 2 3 times before it was ever ready"
    ):
        supervisor.tick()


def test_a_process_that_was_ready_once_is_restarted_however_often_it_dies():
    clock, lines = FakeClock(), []
    rasa = Kind("Rasa server")
    supervisor = supervisor_of(rasa, clock=clock, lines=lines, startup_attempts=2)
    supervisor.start_all()
    supervisor.tick()
    for _ in range(5):
        rasa.current.code = 1
        supervisor.tick()
        clock.now += 31
        supervisor.tick()
    assert len(rasa.started) == 6


def test_stopping_terminates_every_process_in_reverse_order_and_kills_one_that_does_not_drain():
    clock, lines = FakeClock(), []
    actions, rasa, console = (
        Kind("Action server"),
        Kind("Rasa server", obeys_sigterm=False),
        Kind("Agent console"),
    )
    supervisor = supervisor_of(actions, rasa, console, clock=clock, lines=lines, grace_s=15.0)
    supervisor.start_all()
    supervisor.tick()
    started = clock.now
    supervisor.stop_all()
    assert [p.signals for p in (console.current, rasa.current, actions.current)] == [
        ["TERM"],
        ["TERM", "KILL"],
        ["TERM"],
    ]
    stops = [line for line in lines if line.startswith("Stopping")]
    assert [line.split(" (")[0] for line in stops] == [
        "Stopping Agent console",
        "Stopping Rasa server",
        "Stopping Action server",
    ]
    assert "Rasa server did not stop within 15 s; killing it." in lines
    assert 15 <= clock.now - started <= 16  # the grace, spent once, on the one that did not drain


def test_a_process_waiting_for_its_restart_is_not_restarted_by_a_stop():
    clock, lines = FakeClock(), []
    rasa = Kind("Rasa server")
    supervisor = supervisor_of(rasa, clock=clock, lines=lines)
    supervisor.start_all()
    supervisor.tick()
    rasa.current.code = 1
    supervisor.tick()
    supervisor.stop_all()
    clock.now += 60
    supervisor.tick()  # a tick after the stop (none should come, but none may restart it)
    assert len(rasa.started) == 1


def test_run_watches_until_told_to_stop():
    clock, lines = FakeClock(), []
    rasa = Kind("Rasa server")
    supervisor = supervisor_of(rasa, clock=clock, lines=lines)
    supervisor.start_all()
    rasa.current.code = 1
    stop_at = clock.now + 5
    supervisor.run(lambda: clock.now >= stop_at, interval_s=0.3)
    assert len(rasa.started) == 2 and stop_at <= clock.now < stop_at + 0.3


@pytest.mark.parametrize(
    ("code", "said"), [(0, "code 0"), (3, "code 3"), (-9, "signal SIGKILL"), (-15, "signal SIGTERM")]
)
def test_an_exit_is_described_as_a_code_or_the_signal_that_ended_it(code, said):
    assert describe_exit(code) == said
