"""The Twilio channel's own cost per message, without Rasa: database round trips, Python calls, CPU.

The path after the signature check, as the webhook and the journal's worker run it
(connectors/twilio_channel.py): the journal row stored, leased, the inbound rules' facts read,
a stand-in for Rasa that answers once through the channel's output (the one MessageSender:
contact, outbound record, the fake Twilio's Messages API), the row finished. On PostgreSQL
(TEST_DATABASE_URL; tables created if missing, nothing dropped: never on a database a running
stack uses, whose journal worker would take these rows and this one the stack's), Redis (TEST_REDIS_URL) and
tests/fake_twilio.py. What it prints per message:

- SQL statements by kind, and connection checkouts (each a transaction: BEGIN … COMMIT; a
  pool ping, when there is one, is a round trip more, not counted);
- with --calls, Python function calls in every thread (cProfile): a count that does not move
  with the machine's load, unlike CPU time;
- the process's CPU time, and per thread (the worker's loop, the threads its blocking calls run
  on, the main thread that accepts): on a busy machine these move by ±15% from run to run.

`scripts/capacity.py` measures the channel with Rasa in it; this isolates what the channel adds.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import cProfile
import os
import pstats
import sys
import threading
import time
import types
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

from bot.adapters.sql import SqlStore  # noqa: E402
from bot.clock import FixedClock  # noqa: E402
from bot.handoff.service import build_services  # noqa: E402
from bot.messaging.inbound import Channel, InboundMessage  # noqa: E402
from bot.messaging.journal import InboundJournal  # noqa: E402
from bot.messaging.memory import memory_for  # noqa: E402
from bot.messaging.sender import MessageSender, TwilioTransport  # noqa: E402
from bot.messaging.store import MessagingStore  # noqa: E402
from bot.migrations import target_metadata  # noqa: E402
from connectors.twilio_channel import TwilioInput  # noqa: E402
from tests.conftest import NOW  # noqa: E402
from tests.fake_twilio import FakeTwilio  # noqa: E402
from tests.notification_helpers import twilio_settings  # noqa: E402

TEXT = "donde esta mi pedido"


def thread_cpu() -> dict[int, tuple[str, float]]:
    """CPU seconds of each live thread of this process, with its Python name."""
    names = {t.native_id: t.name for t in threading.enumerate()}
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for tid in os.listdir("/proc/self/task"):
        fields = Path(f"/proc/self/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
        out[int(tid)] = (names.get(int(tid), "other"), (int(fields[11]) + int(fields[12])) / tick)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="channel_cost.py", description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--customers", type=int, default=50)
    parser.add_argument("--calls", action="store_true", help="count Python calls (cProfile; slower)")
    args = parser.parse_args(argv)

    url = os.environ.get("TEST_DATABASE_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")
    store = SqlStore(url)
    with store.connect() as conn:
        for tables in target_metadata():
            tables.create_all(conn)
    fake = FakeTwilio().start()
    settings = twilio_settings(fake)
    clock = FixedClock(NOW)
    messaging = MessagingStore(store, clock)
    transport = TwilioTransport(settings.twilio_account_sid, settings.twilio_auth_token, fake.url)
    channel = TwilioInput(
        settings, store=messaging, handoff=build_services(settings, store, clock), clock=clock,
        sender=MessageSender(settings, messaging, transport, (0.01,), clock=clock),
        memory=memory_for(os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")),
        journal=InboundJournal(store, clock),
    )  # fmt: skip
    statements: collections.Counter[str] = collections.Counter()
    checkouts = [0]
    sa.event.listen(store.engine, "before_cursor_execute", lambda *a: statements.update([a[2].split()[0]]))
    sa.event.listen(store.engine, "checkout", lambda *a: checkouts.__setitem__(0, checkouts[0] + 1))
    answered: list[str] = []

    async def stand_in_for_rasa(message) -> None:
        await message.output_channel.send_text_message(message.sender_id, f"respuesta a {message.text}")
        answered.append(message.message_id)

    agent = types.SimpleNamespace(is_ready=lambda: True, tracker_store=None)
    channel.start_processing(types.SimpleNamespace(ctx=types.SimpleNamespace(agent=agent)), stand_in_for_rasa)
    base = uuid.uuid4().int % 10**7

    def send(index: int) -> None:  # what the webhook does once the signature is checked
        phone = f"+52156{base + index % args.customers:08d}"
        message = InboundMessage(
            sid=f"SM{uuid.uuid4().hex}", phone=phone, channel=Channel.WHATSAPP, text=TEXT, profile_name="X"
        )
        channel.journal.accept(message, f"whatsapp:{phone}")
        channel.dispatch(phone)

    def run(count: int) -> None:
        answered.clear()
        for index in range(count):
            send(index)
            time.sleep(0.01)
        while len(answered) < count:
            time.sleep(0.01)

    run(20)  # warm-up: connections, the Twilio client, caches
    statements.clear()
    checkouts[0] = 0
    profiles: list[cProfile.Profile] = []
    if args.calls:
        local = threading.local()
        real_to_thread = asyncio.to_thread

        async def profiled_to_thread(func, *a, **k):
            def call():
                if not hasattr(local, "profile"):
                    local.profile = cProfile.Profile()
                    profiles.append(local.profile)
                local.profile.enable()
                try:
                    return func(*a, **k)
                finally:
                    local.profile.disable()

            return await real_to_thread(call)

        asyncio.to_thread = profiled_to_thread
        for _ in range(2):  # the worker's loop, then this thread
            profiles.append(cProfile.Profile())
        channel._worker.loop.call_soon_threadsafe(profiles[0].enable)
        profiles[1].enable()
    before, cpu = thread_cpu(), time.process_time()
    run(args.messages)
    cpu = time.process_time() - cpu
    if args.calls:
        profiles[1].disable()
        channel._worker.loop.call_soon_threadsafe(profiles[0].disable)
        time.sleep(0.2)
    per_thread: collections.Counter[str] = collections.Counter()
    for tid, (name, seconds) in thread_cpu().items():
        per_thread[name.split(" (")[0].rstrip("_0123456789-")] += seconds - before.get(tid, (name, 0.0))[1]
    n = args.messages
    print(f"{n} messages, {args.customers} customers, the channel's path without Rasa, per message:")
    kinds = ", ".join(f"{kind} {count / n:.2f}" for kind, count in statements.most_common())
    print(
        f"  SQL statements {sum(statements.values()) / n:.2f} ({kinds}), transactions {checkouts[0] / n:.2f}"
    )
    if profiles:
        print(f"  Python function calls {sum(pstats.Stats(p).total_calls for p in profiles) / n:.0f}")
    print(
        f"  CPU {1000 * cpu / n:.2f} ms; by thread: "
        + ", ".join(f"{k} {1000 * v / n:.2f}" for k, v in per_thread.most_common() if v > 0)
    )
    channel._worker.stop()
    fake.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
