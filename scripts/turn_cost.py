"""The in-process cost of a turn: CPU per `Agent.handle_message`, no channel in front.

What `make bench MODE=capacity` compares the channel's CPU per message with (scripts/
capacity.py): the same model, loaded with the same endpoints.yml (the project's tracker store on
DATABASE_URL, its lock store on REDIS_URL, the action server on ACTION_PORT), the same Rasa
patches as the server (connectors/rasa_launcher.py), and the same warm-up and gc.freeze() as the
Twilio channel does at start. The turns are the bench's messages from its pattern of senders,
one after the other; what is counted is the whole process's CPU time (Python and TensorFlow's
threads) over them, divided by the turns. The difference from the channel path is the channel:
HTTP, the journal, masking and inbound rules, sending.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import random
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench import MESSAGES  # noqa: E402 (scripts/bench.py)

WARM_UP_TURNS = 10


async def measure(model: Path, turns: int, customers: int) -> dict:
    import rasa.utils.tensorflow.environment as tf_env
    from rasa.core.agent import load_agent
    from rasa.core.channels.channel import CollectingOutputChannel, UserMessage
    from rasa.core.utils import AvailableEndpoints
    from rasa.utils.common import configure_logging_and_warnings
    from rasa.utils.log_utils import configure_structlog

    from connectors.rasa_launcher import apply_patches

    # As `rasa run` starts (rasa/__main__.py): its log level (LOG_LEVEL, INFO by default), not
    # the debug lines a bare import logs, and TensorFlow's threads as the environment says.
    configure_logging_and_warnings(None, None, warn_only_once=True, filter_repeated_logs=True)
    tf_env.setup_tf_environment()
    configure_structlog(None)
    apply_patches()
    agent = await load_agent(
        model_path=str(model), endpoints=AvailableEndpoints.read_endpoints("endpoints.yml")
    )
    base = random.Random(uuid.uuid4().int).randrange(10_000_000, 80_000_000)

    async def turn(index: int, offset: int) -> int:
        phone = f"+5256{base + offset + index % customers:08d}"  # as scripts/capacity.py: fresh numbers
        text = MESSAGES[(index // customers) % len(MESSAGES)]
        output = CollectingOutputChannel()
        await agent.handle_message(UserMessage(text, output, phone))
        return len(output.messages)

    for index in range(WARM_UP_TURNS):
        await turn(index, 500_000)
    gc.collect()
    gc.freeze()
    cpu, wall = time.process_time(), time.perf_counter()
    replies = [await turn(index, 0) for index in range(turns)]
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return {
        "turns": turns,
        "cpu_ms_per_turn": 1000 * cpu / turns,
        "wall_ms_per_turn": 1000 * wall / turns,
        "turns_without_reply": sum(1 for n in replies if n == 0),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="turn_cost.py", description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--messages", type=int, default=150)
    parser.add_argument("--customers", type=int, default=100)
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args(argv)
    result = asyncio.run(measure(args.model, args.messages, args.customers))
    args.output.write_text(json.dumps(result, indent=2))
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
