"""`make bench`: our Twilio channel against Rasa's built-in one, same model, same load, one run.

Each variant gets a fresh stack (Rasa + action server, SQLite tracker store, in-process locks,
the demo data) and a local endpoint speaking Twilio's Messages API with a realistic API latency.
N simulated WhatsApp customers, starting at random moments over a ramp-up (one mean think
time unless told), write signed webhooks in a closed loop (write, wait for the reply, think,
write again); a share of messages is delivered twice with the same MessageSid, as Twilio does
when it retries. Reported per variant: acknowledgement latency (webhook POST →
HTTP answer), end-to-end latency (webhook POST → the reply's Messages API request arrives),
messages per second, lost, duplicated, errors, and each process's peak memory (VmHWM).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import stack  # noqa: E402 (scripts/stack.py, beside this file)

from bot.phone import normalize_phone  # noqa: E402
from tests.fake_twilio import FakeTwilio, inbound_form  # noqa: E402
from tests.harness import free_port  # noqa: E402

# What customers write; each message gets exactly one reply from the assistant.
MESSAGES = ["hola", "donde esta mi pedido?", "gracias!", "sos un bot?", "buenas, como va mi compra"]
WHATSAPP_NUMBER = "+14155238886"
REPLY_TIMEOUT_S = 15


@dataclass
class Outcome:
    variant: str
    customers: int
    seconds: float
    ack_ms: list[float] = field(default_factory=list)
    e2e_ms: list[float] = field(default_factory=list)
    e2e_ms_by_text: dict[str, list[float]] = field(default_factory=dict)
    sent: int = 0
    replays: int = 0
    answered: int = 0
    lost: int = 0
    duplicated: int = 0
    errors: int = 0
    peak_memory_mb: dict[str, float] = field(default_factory=dict)
    cpu_s: dict[str, float] = field(default_factory=dict)

    @property
    def per_second(self) -> float:
        return self.answered / self.seconds if self.seconds else 0.0

    def percentiles(self, values: list[float]) -> tuple[float, float, float]:
        if len(values) < 2:
            return (values[0],) * 3 if values else (float("nan"),) * 3
        cuts = statistics.quantiles(values, n=100, method="inclusive")
        return cuts[49], cuts[94], cuts[98]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def memory_mb(pid: int, field: str = "VmHWM") -> float:
    """A memory figure of /proc/<pid>/status in MB: VmHWM, the peak resident size; VmRSS, now."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def peak_memory_mb(pid: int) -> float:
    return memory_mb(pid, "VmHWM")


class Variant:
    def __init__(self, name: str, label: str, builtin: bool) -> None:
        self.name, self.label, self.builtin = name, label, builtin

    def start(self, model: Path, fake: FakeTwilio, workdir: Path) -> dict:
        rasa_port, action_port = free_port(), free_port()
        public_url = f"http://127.0.0.1:{rasa_port}"
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "DATABASE_URL": f"sqlite:///{workdir / 'bot.db'}",
            "DEMO_DATA": str(ROOT / "data" / "demo" / "fixture.yml"),
            "RASA_PORT": str(rasa_port),
            "ACTION_PORT": str(action_port),
            "RASA_TOKEN": uuid.uuid4().hex,
            "ACTION_SERVER_TOKEN": uuid.uuid4().hex,
            "BOT_ENV": "development",
            "TWILIO_ACCOUNT_SID": fake.account_sid,
            "TWILIO_AUTH_TOKEN": fake.auth_token,
            "TWILIO_API_BASE": fake.url,
            "BENCH_TWILIO_API_BASE": fake.url,
            "TWILIO_WHATSAPP_NUMBER": WHATSAPP_NUMBER,
            "PUBLIC_URL": public_url,
            "SQLALCHEMY_SILENCE_UBER_WARNING": "1",
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "RASA_TELEMETRY_ENABLED": "false",
            **stack.rasa_thread_env(),
        }
        env.pop("REDIS_URL", None)
        credentials = workdir / "credentials.yml"
        if self.builtin:
            credentials.write_text(
                f"twilio:\n  account_sid: {fake.account_sid}\n  auth_token: {fake.auth_token}\n"
                f'  twilio_number: "whatsapp:{WHATSAPP_NUMBER}"\n'
            )
            rasa = [sys.executable, str(ROOT / "scripts" / "builtin_twilio_rasa.py")]
        else:
            credentials.write_text("connectors.twilio_channel.TwilioInput:\n")
            rasa = stack.SERVING_RASA
        log = (workdir / "servers.log").open("w")
        subprocess.run([sys.executable, "-m", "bot.demo"], cwd=ROOT, env=env, check=True, stdout=log)
        actions = subprocess.Popen(
            [sys.executable, "-m", "connectors.action_server"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        server = subprocess.Popen(
            [*rasa, "run", "--model", str(model), "--endpoints", "endpoints.yml",
             "--credentials", str(credentials), "--interface", "127.0.0.1", "--port", str(rasa_port)],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        processes = [actions, server]
        deadline = time.monotonic() + stack.STARTUP_TIMEOUT_S
        for url in (f"http://127.0.0.1:{action_port}/health", f"http://127.0.0.1:{rasa_port}/"):
            while not stack.answers(url):
                if time.monotonic() > deadline or any(p.poll() is not None for p in processes):
                    stack.stop(processes)
                    raise SystemExit(f"error: {self.label} did not start; see {workdir / 'servers.log'}")
                time.sleep(0.3)
        return {"processes": processes, "public_url": public_url, "rasa_port": rasa_port}


def drive(variant: Variant, running: dict, fake: FakeTwilio, customers: int, seconds: float,
          think_s: float, replay_share: float, ramp_up_s: float) -> Outcome:  # fmt: skip
    """The load: one asyncio client for all customers, so the generator takes little CPU from
    the 2-core machine it shares with the system under test."""
    return asyncio.run(
        _drive(running, fake, Outcome(variant.name, customers, seconds), think_s, replay_share, ramp_up_s)
    )


async def _drive(
    running: dict, fake: FakeTwilio, outcome: Outcome, think_s: float, replay_share: float, ramp_up_s: float
) -> Outcome:
    loop = asyncio.get_running_loop()
    webhook = f"http://127.0.0.1:{running['rasa_port']}/webhooks/twilio/webhook"
    signed_url = f"{running['public_url']}/webhooks/twilio/webhook"
    inboxes: dict[str, asyncio.Queue] = defaultdict(asyncio.Queue)
    sent_per_phone: dict[str, int] = defaultdict(int)

    def arrived(message) -> None:  # in the fake's thread
        loop.call_soon_threadsafe(inboxes[normalize_phone(message.to)].put_nowait, message)

    fake.on_message = arrived

    async def customer(session: aiohttp.ClientSession, index: int, until: float, measure: bool) -> None:
        phone = f"+5255{90000000 + index * 7919 + (0 if measure else 5000000):08d}"
        rng = random.Random(index)
        inbox = inboxes[phone]
        # Customers start at random moments over the ramp-up, as people do; --ramp-up 0 starts
        # them all at the same millisecond (a burst of N first messages).
        await asyncio.sleep(rng.uniform(0, ramp_up_s))
        while time.perf_counter() < until:
            text = rng.choice(MESSAGES)
            form = inbound_form(phone, text)
            headers = {"X-Twilio-Signature": fake.sign(signed_url, form)}
            while not inbox.empty():  # late replies belong to earlier messages
                inbox.get_nowait()
            started = time.perf_counter()
            try:
                async with session.post(webhook, data=form, headers=headers) as answer:
                    await answer.read()
                    status = answer.status
                acked = time.perf_counter()
                if rng.random() < replay_share:  # Twilio retrying the same MessageSid
                    async with session.post(webhook, data=form, headers=headers) as again:
                        await again.read()
                    outcome.replays += measure
            except (aiohttp.ClientError, asyncio.TimeoutError):
                outcome.errors += measure
                continue
            if status >= 300:
                outcome.errors += measure
                continue
            try:
                reply = await asyncio.wait_for(inbox.get(), REPLY_TIMEOUT_S)
            except asyncio.TimeoutError:
                reply = None
            if measure:
                outcome.sent += 1
                sent_per_phone[phone] += 1
                outcome.ack_ms.append((acked - started) * 1000)
                if reply is not None:
                    outcome.e2e_ms.append((reply.received_at - started) * 1000)
                    outcome.e2e_ms_by_text.setdefault(text, []).append(outcome.e2e_ms[-1])
            await asyncio.sleep(rng.uniform(0.5, 1.5) * think_s)

    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=0)) as session:
        warm_until = time.perf_counter() + 5  # warm-up: models loaded, caches filled
        await asyncio.gather(
            *(customer(session, i, warm_until, False) for i in range(min(outcome.customers, 4)))
        )
        started = time.perf_counter()
        until = started + outcome.seconds
        await asyncio.gather(*(customer(session, i, until, True) for i in range(outcome.customers)))
        outcome.seconds = time.perf_counter() - started
    await asyncio.sleep(3)  # late replies and duplicates arrive
    fake.on_message = None
    for phone, sent in sent_per_phone.items():
        replies = len(fake.messages_to(phone))
        outcome.answered += min(sent, replies)
        outcome.lost += max(0, sent - replies)
        outcome.duplicated += max(0, replies - sent)
    return outcome


def report(ours: Outcome, builtin: Outcome, settings: dict) -> bool:
    def row(label: str, a: str, b: str, ratio: str = "") -> None:
        print(f"  {label:<30} {a:>24} {b:>24} {ratio:>8}")

    def triple(values: tuple[float, float, float]) -> str:
        return " / ".join(f"{v:.0f}" for v in values)

    print(
        f"\nBenchmark: {settings['customers']} WhatsApp customers × {settings['seconds']:.0f} s, "
        f"starting over {settings['ramp_up_s']:.1f} s, "
        f"think time {settings['think_s'] * 0.5:.1f}–{settings['think_s'] * 1.5:.1f} s, "
        f"{settings['replay_share']:.0%} of messages delivered twice, "
        f"Twilio API latency {settings['api_latency_ms']:.0f} ms, model {settings['model']}\n"
    )
    row("", "ours (connectors/)", "Rasa built-in twilio", "ratio")
    a_ack, b_ack = ours.percentiles(ours.ack_ms), builtin.percentiles(builtin.ack_ms)
    a_e2e, b_e2e = ours.percentiles(ours.e2e_ms), builtin.percentiles(builtin.e2e_ms)
    row("ack latency p50/p95/p99 ms", triple(a_ack), triple(b_ack), f"{b_ack[2] / max(a_ack[2], 1e-9):.0f}×")
    row("end-to-end p50/p95/p99 ms", triple(a_e2e), triple(b_e2e), f"{b_e2e[1] / max(a_e2e[1], 1e-9):.1f}×")
    speedup = ours.per_second / builtin.per_second if builtin.per_second else float("inf")
    row("messages per second", f"{ours.per_second:.1f}", f"{builtin.per_second:.1f}", f"{speedup:.1f}×")
    for label, attribute in (
        ("messages answered", "answered"),
        ("sent twice (same sid)", "replays"),
        ("lost", "lost"),
        ("duplicated replies", "duplicated"),
        ("errors", "errors"),
    ):
        row(label, str(getattr(ours, attribute)), str(getattr(builtin, attribute)))
    for process in ("rasa", "actions"):
        a, b = ours.peak_memory_mb[process], builtin.peak_memory_mb[process]
        row(f"peak memory {process} MB", f"{a:.0f}", f"{b:.0f}")
    for process in ("rasa", "actions"):
        a, b = ours.cpu_s[process], builtin.cpu_s[process]
        row(f"CPU seconds {process}", f"{a:.0f}", f"{b:.0f}")

    targets = [
        ("acknowledgement p99 ≤ 50 ms", a_ack[2] <= 50),
        ("end-to-end p95 ≤ 300 ms", a_e2e[1] <= 300),
        ("throughput ≥ 2× built-in", speedup >= 2),
        ("0 lost", ours.lost == 0),
        ("0 duplicated", ours.duplicated == 0),
    ]
    print("\n  Targets (ours): " + ", ".join(f"{name} {'✔' if met else '✘'}" for name, met in targets))
    return all(met for _, met in targets)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=int(os.environ.get("BENCH_CUSTOMERS", 20)))
    parser.add_argument("--seconds", type=float, default=float(os.environ.get("BENCH_SECONDS", 60)))
    parser.add_argument(
        "--think",
        type=float,
        default=float(os.environ.get("BENCH_THINK_S", 1.0)),
        help="mean seconds a customer takes to read and answer (uniform ±50%%)",
    )
    parser.add_argument(
        "--api-latency-ms",
        type=float,
        default=float(os.environ.get("BENCH_API_LATENCY_MS", 150)),
        help="how long the Messages API takes to answer each request",
    )
    parser.add_argument(
        "--ramp-up",
        type=float,
        default=None,
        help="customers start at random moments over this many seconds (default: the mean think "
        "time; 0: all at once)",
    )
    parser.add_argument(
        "--replay-share", type=float, default=0.1, help="share of webhooks Twilio delivers twice"
    )
    parser.add_argument("--only", choices=["ours", "builtin"], help="run one variant")
    parser.add_argument(
        "--output", type=Path, default=ROOT / "results" / "bench.json", help="where the raw figures go"
    )
    args = parser.parse_args(argv)
    if args.ramp_up is None:
        args.ramp_up = args.think

    settings = stack.load_settings()
    model = stack.ensure_model(settings)
    fake = FakeTwilio().start()
    fake.slow_down(args.api_latency_ms / 1000)
    variants = [
        Variant("ours", "our Twilio channel", builtin=False),
        Variant("builtin", "Rasa's built-in twilio channel", builtin=True),
    ]
    outcomes: dict[str, Outcome] = {}
    for variant in variants:
        if args.only and variant.name != args.only:
            continue
        fake.reset()
        fake.slow_down(args.api_latency_ms / 1000)
        with tempfile.TemporaryDirectory(prefix=f"bench-{variant.name}-") as workdir:
            stack.say(f"{variant.label}: starting a fresh stack...")
            running = variant.start(model, fake, Path(workdir))
            try:
                stack.say(f"{variant.label}: {args.customers} customers for {args.seconds:.0f} s...")
                outcome = drive(
                    variant,
                    running,
                    fake,
                    args.customers,
                    args.seconds,
                    args.think,
                    args.replay_share,
                    args.ramp_up,
                )
                actions, server = running["processes"]
                pids = {"rasa": server.pid, "actions": actions.pid}
                outcome.peak_memory_mb = {name: peak_memory_mb(pid) for name, pid in pids.items()}
                outcome.cpu_s = {name: cpu_seconds(pid) for name, pid in pids.items()}
            finally:
                stack.stop(running["processes"])
        outcomes[variant.name] = outcome
        stack.say(f"{variant.label}: {outcome.answered} answered, {outcome.per_second:.1f} msg/s.")
    fake.stop()

    args.output.parent.mkdir(parents=True, exist_ok=True)
    summary = {
        "settings": vars(args) | {"model": model.name},
        "outcomes": {name: asdict(outcome) for name, outcome in outcomes.items()},
    }
    args.output.write_text(json.dumps(summary, indent=2, default=str))
    if len(outcomes) < 2:
        return 0
    met = report(
        outcomes["ours"],
        outcomes["builtin"],
        {"customers": args.customers, "seconds": args.seconds, "think_s": args.think,
         "ramp_up_s": args.ramp_up, "replay_share": args.replay_share,
         "api_latency_ms": args.api_latency_ms, "model": model.name},
    )  # fmt: skip
    print(f"\n  Raw figures: {args.output}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
