"""What a model's NLU costs to serve, next to another: CPU per parsed message and a Rasa server's
memory. A benchmark, not a test (docs/designing.md, "What changed the external numbers").

    python scripts/nlu_cost.py MODEL [--baseline OTHER_MODEL] [--messages 300] [--rss]

CPU: both models loaded in this one process (TensorFlow on one thread each way, as a replica
runs, scripts/stack.py RASA_THREAD_ENV), then each message parsed by one model and then by the
other, so a busy machine slows both alike; CPU time (time.process_time) per message, mean and
median. The messages are distinct training examples (each parsed once: the e5 featurizer's cache
of repeated questions does not help), in a fixed shuffled order. With the e5 featurizer in MODEL,
its own share is timed too: the sentence vector alone, with its cache emptied.

--rss: for each model a Rasa server of its own (connectors.rasa_launcher, the HTTP API only, an
in-memory tracker store), 50 messages through POST /model/parse, then its resident memory now
(VmRSS) and at its peak (VmHWM). The same server for both models, so the difference is the model's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import stack  # noqa: E402 (scripts/stack.py)
from bench import memory_mb  # noqa: E402 (scripts/bench.py)

from bot.settings import Settings  # noqa: E402

for _name, _value in stack.rasa_thread_env().items():
    os.environ.setdefault(_name, _value)  # before TensorFlow starts
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def training_texts(count: int, skip: int = 0) -> list[str]:
    """`count` distinct example texts of data/nlu/, in a fixed shuffled order, after `skip`."""
    from rasa.shared.nlu.training_data.loading import load_data

    texts = sorted({example.get("text") for example in load_data(str(ROOT / "data" / "nlu")).intent_examples})
    random.Random(20261201).shuffle(texts)
    return texts[skip : skip + count]


def parse_cpu(models: dict[str, Path], messages: list[str], warm_up: list[str]) -> dict[str, list[float]]:
    """CPU seconds of each model's parse of each message, the models taking turns."""
    from rasa.core.agent import Agent
    from rasa.utils.log_utils import configure_structlog

    configure_structlog(logging.WARNING)  # not a debug line per parse, which would cost CPU too
    agents = {label: Agent.load(str(path)) for label, path in models.items()}
    loop = asyncio.new_event_loop()
    for text in warm_up:
        for agent in agents.values():
            loop.run_until_complete(agent.parse_message(text))
    spent: dict[str, list[float]] = {label: [] for label in agents}
    for text in messages:
        for label, agent in agents.items():
            started = time.process_time()
            loop.run_until_complete(agent.parse_message(text))
            spent[label].append(time.process_time() - started)
    return spent


def featurizer_cpu(messages: list[str]) -> list[float]:
    """CPU seconds of the e5 sentence vector alone, per message, its question cache emptied."""
    from connectors.e5_featurizer import sentence_model

    model = sentence_model()
    model.forget_questions()
    spent = []
    for text in messages:
        started = time.process_time()
        model.embed_query(text)
        spent.append(time.process_time() - started)
    return spent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def server_memory(model: Path, messages: list[str], timeout: float = 900.0) -> dict[str, float]:
    """A Rasa server's VmRSS and VmHWM in MB after loading `model` and parsing `messages`."""
    token, port = secrets.token_urlsafe(24), free_port()
    with tempfile.TemporaryDirectory() as workdir:
        endpoints = Path(workdir) / "endpoints.yml"
        endpoints.write_text("{}\n")
        command = [
            *stack.SERVING_RASA, "run", "--model", str(model), "--endpoints", str(endpoints),
            "--interface", "127.0.0.1", "--port", str(port), "--enable-api", f"--auth-token={token}",
        ]  # fmt: skip
        # The environment `make run` gives its Rasa server (its doors' tokens), one thread a pool.
        env = {**stack.child_env(Settings.from_env(), stack.RASA_SERVER_DOORS), **stack.rasa_thread_env()}
        log = (Path(workdir) / "rasa.log").open("w")
        server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + timeout
            while not _parse(port, token, "hola"):
                if server.poll() is not None or time.monotonic() > deadline:
                    tail = (Path(workdir) / "rasa.log").read_text()[-3000:]
                    raise SystemExit(f"the Rasa server did not answer:\n{tail}")
                time.sleep(2)
            for text in messages:
                _parse(port, token, text)
            return {"rss_mb": memory_mb(server.pid, "VmRSS"), "peak_mb": memory_mb(server.pid, "VmHWM")}
        finally:
            server.terminate()
            server.wait(timeout=60)
            log.close()


def _parse(port: int, token: str, text: str) -> dict | None:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/model/parse?token={token}",
        data=json.dumps({"text": text}).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:  # noqa: S310 (http://127.0.0.1 only)
            return json.load(answer)
    except OSError:
        return None


def summary(spent: list[float]) -> str:
    return f"mean {1000 * statistics.mean(spent):.1f} ms, median {1000 * statistics.median(spent):.1f} ms CPU"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("model", type=Path)
    parser.add_argument("--baseline", type=Path)
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--rss", action="store_true", help="also a Rasa server per model: its memory")
    args = parser.parse_args()
    models = {"model": args.model, **({"baseline": args.baseline} if args.baseline else {})}
    messages, warm_up = training_texts(args.messages), training_texts(20, skip=args.messages)
    print(f"{len(messages)} messages, each parsed once by {' and '.join(models)} ({len(warm_up)} to warm up)")
    spent = parse_cpu(models, messages, warm_up)
    for label, path in models.items():
        print(f"  {label:<9} {path.name}: {summary(spent[label])} per parse_message")
    if "baseline" in spent:
        extra = [a - b for a, b in zip(spent["model"], spent["baseline"], strict=True)]
        print(f"  extra CPU per message (model - baseline): mean {1000 * statistics.mean(extra):.1f} ms")
    if "E5SentenceFeaturizer" in _pipeline_names(args.model):
        print(f"  the e5 sentence vector alone: {summary(featurizer_cpu(messages))}")
    if args.rss:
        for label, path in models.items():
            memory = server_memory(path, training_texts(50, skip=args.messages + 20))
            print(f"  Rasa server, {label}: VmRSS {memory['rss_mb']:.0f} MB, peak {memory['peak_mb']:.0f} MB")


def _pipeline_names(model: Path) -> str:
    """The names in the model's stored config (a .tar.gz with metadata.json), as one string."""
    import tarfile

    with tarfile.open(model) as archive:
        member = next(m for m in archive.getmembers() if m.name.endswith("metadata.json"))
        return archive.extractfile(member).read().decode()


if __name__ == "__main__":
    main()
