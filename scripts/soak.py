"""`make soak`: our channel at a fixed rate for a long time, every process's memory sampled; fails on growth.

One Rasa replica (REPLICAS=2: two) and its action server behind HAProxy on PostgreSQL and Redis
(not while another soak or capacity run uses the same database: their replicas would share its
journal), as `make bench MODE=capacity`'s ours-1 (scripts/capacity.py's launch and open-loop
generator): RATE messages a second (15) for MINUTES (30), in one-minute slices that each write
from 100 new numbers, so the conversations keep coming as they do in production (a cache bounded
by conversations, not by time, shows up as growth). Every SAMPLE_S (5) seconds each process's
resident memory (VmRSS) is read. After the warm-up (half the run, at most 12 minutes: the
model's first calls, and the caches bounded by conversations filling: connectors/stores.py keeps
500 conversations and connectors/rasa_patches.py the policies' states of about 250 (1,000
entries), full after 5 and 3 minutes of 100 new conversations a minute), the least-squares slope
of RSS over time is printed per process in MB a minute, with its standard error, and written to
results/soak.json with every sample.

The gate: a process fails when its slope's lower 95% bound (slope − 2 × standard error) is above
MAX_SLOPE (0.1 MB/min), i.e. when growth beyond it is shown, not merely not excluded by a short
run's noise. Why 0.1 MB/min: it is 144 MB a day, 1 GB a week; a Rasa replica peaks at about
0.9 GB (README, "Benchmark") under deploy/helm/rasa-values.yaml's 2 GiB limit, so it has about
1.1 GB to spare: slower growth outlives a weekly deploy, faster growth would have Kubernetes
kill the replica within the week. The 18 minutes fitted of a 30-minute run resolve a slope to
a few hundredths of a MB/min; a 2-minute run to about ±1 MB/min, enough to prove the plumbing,
not the absence of a leak. Each slice's p50 / p95 and losses are
printed as it ends, so a soak that falls behind is seen too (exit 1 if a message is refused or
not answered within 30 s of its slice's end).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import capacity  # noqa: E402 (scripts/capacity.py)
import stack  # noqa: E402 (scripts/stack.py)
from bench import memory_mb  # noqa: E402 (scripts/bench.py)

from tests.fake_twilio import FakeTwilio  # noqa: E402

OUTPUT = ROOT / "results" / "soak.json"
KEPT_LOGS = ROOT / "var" / "soak"  # the processes' logs of the last run
MAX_SLOPE_MB_PER_MIN = 0.1
SLICE_S = 60.0


@dataclass(frozen=True)
class Slope:
    mb_per_min: float
    stderr: float
    samples: int

    @property
    def lower_bound(self) -> float:
        return self.mb_per_min - 2 * self.stderr


def least_squares(points: list[tuple[float, float]]) -> Slope:
    """Slope (MB per minute) of (seconds, MB) points, and its standard error."""
    points = [(t, v) for t, v in points if not math.isnan(v)]
    n = len(points)
    if n < 3:
        return Slope(float("nan"), float("nan"), n)
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    sxx = sum((t - mean_t) ** 2 for t, _ in points)
    if sxx == 0:
        return Slope(float("nan"), float("nan"), n)
    slope = sum((t - mean_t) * (v - mean_v) for t, v in points) / sxx
    residuals = sum((v - mean_v - slope * (t - mean_t)) ** 2 for t, v in points)
    stderr = math.sqrt(residuals / (n - 2) / sxx)
    return Slope(slope * 60, stderr * 60, n)


class Sampler:
    """Every process's VmRSS every `interval` seconds, on a thread of its own."""

    def __init__(self, pids: dict[str, int], interval: float) -> None:
        self.pids, self.interval = pids, interval
        self.samples: dict[str, list[tuple[float, float]]] = {name: [] for name in pids}
        self.started = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Sampler:
        self.started = time.monotonic()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            at = time.monotonic() - self.started
            for name, pid in self.pids.items():
                self.samples[name].append((at, memory_mb(pid, "VmRSS")))
            self._stop.wait(self.interval)

    def slopes(self, after_s: float) -> dict[str, Slope]:
        return {
            name: least_squares([p for p in points if p[0] >= after_s])
            for name, points in self.samples.items()
        }


def run(loop: capacity.OpenLoop, sampler: Sampler, rate: float, seconds: float) -> list[capacity.Step]:
    async def slices() -> list[capacity.Step]:
        done: list[capacity.Step] = []
        remaining = seconds
        while remaining > 0.5:
            step = await loop.run(rate, min(SLICE_S, remaining))
            remaining -= step.seconds
            done.append(step)
            rss = ", ".join(
                f"{name} {points[-1][1]:.0f}" for name, points in sampler.samples.items() if points
            )
            capacity.log(
                f"  t={time.monotonic() - sampler.started:5.0f} s: {step.sent} sent, "
                f"{step.answered} answered, {step.errors} refused, "
                f"p50 / p95 {capacity.percentile(step.e2e_ms, 0.5):.0f} / {step.p95:.0f} ms; RSS MB {rss}"
            )
        return done

    return asyncio.run(slices())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="soak.py", description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--rate", type=float, default=15.0, help="messages a second")
    parser.add_argument("--sample-seconds", type=float, default=5.0)
    parser.add_argument(
        "--max-slope", type=float, default=MAX_SLOPE_MB_PER_MIN, help="MB/min, see the docstring"
    )
    parser.add_argument("--customers", type=int, default=100, help="new senders per one-minute slice")
    parser.add_argument(
        "--replicas", type=int, choices=(1, 2), default=1, help="Rasa replicas behind HAProxy"
    )
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)

    load_before = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    database_url, redis_url = capacity.store_urls()
    fake = FakeTwilio().start()
    fake.slow_down(0.15)
    capacity.bench_environment(database_url, redis_url, fake)
    settings = stack.load_settings()
    model = stack.ensure_model(settings)
    stack.migrate(settings)
    stack.load_demo(settings)
    seconds = args.minutes * 60
    warm_up = min(720.0, seconds / 2)
    try:
        with tempfile.TemporaryDirectory(prefix="soak-") as directory:
            capacity.log(f"starting {args.replicas} Rasa replica(s), action server(s) and HAProxy (20-90 s)…")
            running = capacity.launch(f"ours-{args.replicas}", model, Path(directory))
            try:
                loop = capacity.OpenLoop(running, fake, args.customers, grace_s=3.0, drain_s=30.0)
                sampler = Sampler(running.pids(), args.sample_seconds).start()
                capacity.log(
                    f"{args.rate:g} msg/s for {args.minutes:g} min, RSS every {args.sample_seconds:g} s; "
                    f"the slope is fitted after {warm_up:.0f} s"
                )
                try:
                    steps = run(loop, sampler, args.rate, seconds)
                finally:
                    sampler.stop()
                peaks = {name: capacity.peak_memory_mb(pid) for name, pid in running.pids().items()}
            finally:
                running.stop()
                KEPT_LOGS.mkdir(parents=True, exist_ok=True)
                for path in Path(directory).glob("*.log"):
                    path.replace(KEPT_LOGS / path.name)
    finally:
        fake.stop()
    load_after = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    slopes = sampler.slopes(warm_up)
    sent = sum(s.sent for s in steps)
    answered = sum(s.answered for s in steps)
    every = [v for s in steps for v in s.e2e_ms]
    grown = [name for name, slope in slopes.items() if slope.lower_bound > args.max_slope]
    print(
        f"\n  make soak: {args.rate:g} msg/s for {args.minutes:g} min (load average {load_before} before, "
        f"{load_after} after); {sent} sent, {answered} answered, end-to-end p50 / p95 "
        f"{capacity.percentile(every, 0.5):.0f} / {capacity.percentile(every, 0.95):.0f} ms\n"
    )
    print(f"  {'process':<12} {'peak RSS':>10} {'last RSS':>10} {'slope after warm-up':>28}")
    for name, slope in slopes.items():
        last = sampler.samples[name][-1][1] if sampler.samples[name] else float("nan")
        flag = "GROWS" if name in grown else "ok"
        print(
            f"  {name:<12} {peaks[name]:>7.0f} MB {last:>7.0f} MB "
            f"{slope.mb_per_min:>+9.2f} ± {slope.stderr:.2f} MB/min  {flag}"
        )
    print(
        f"\n  Gate: fail when slope − 2 × its standard error > {args.max_slope:g} MB/min "
        "(scripts/soak.py says why)"
    )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(
        json.dumps(
            {
                "settings": vars(args) | {"model": model.name, "output": str(args.output)},
                "load_average": {"before": load_before, "after": load_after},
                "warm_up_s": warm_up,
                "sent": sent,
                "answered": answered,
                "p50_ms": capacity.finite(capacity.percentile(every, 0.5)),
                "p95_ms": capacity.finite(capacity.percentile(every, 0.95)),
                "peak_rss_mb": peaks,
                "slopes_mb_per_min": {
                    name: {"slope": s.mb_per_min, "stderr": s.stderr, "samples": s.samples}
                    for name, s in slopes.items()
                },
                "max_slope_mb_per_min": args.max_slope,
                "grown": grown,
                "samples": sampler.samples,
            },
            indent=1,
        )
    )
    print(f"  Raw figures and every sample: {args.output}; logs: {KEPT_LOGS}/\n", flush=True)
    if answered < sent:
        print(f"  FAIL: {sent - answered} messages not answered within 30 s of their slice's end", flush=True)
    if grown:
        print(f"  FAIL: memory grows in {', '.join(grown)}", flush=True)
    return 1 if grown or answered < sent else 0


if __name__ == "__main__":
    sys.exit(main())
