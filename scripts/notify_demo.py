"""`make notify-demo`: POST one signed demo event to the running assistant's notification intake
(as the CRM/ERP would), then show what became of it. Start the assistant with `make run` first."""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.adapters.sql import SqlStore  # noqa: E402
from bot.clock import SystemClock  # noqa: E402
from bot.notifications.signature import signed_headers  # noqa: E402
from bot.notifications.store import NotificationStore  # noqa: E402
from bot.settings import VAR_DIR, Settings  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phone", default="+525512345678", help="the customer (default: Mariana)")
    parser.add_argument("--channel", default="sms", choices=["sms", "whatsapp"])
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    secret_file = VAR_DIR / "notify_webhook_secret"
    secret = settings.notify_webhook_secret or (
        secret_file.read_text().strip() if secret_file.exists() else ""
    )
    if not secret:
        print(
            "No NOTIFY_WEBHOOK_SECRET and no var/notify_webhook_secret: start the assistant with `make run`."
        )
        return 1
    clock = SystemClock(settings.clock_shift)
    now = clock.now()
    event = {
        "source": "demo",
        "event_id": f"demo-{int(now.timestamp())}",
        "kind": "out_for_delivery",
        "occurred_at": now.isoformat(),
        "phone": args.phone,
        "channel": args.channel,
        "variables": {"order_id": "PED-1001"},
    }
    body = json.dumps(event).encode()
    url = f"http://127.0.0.1:{settings.notify_port}/events"
    request = urllib.request.Request(
        url,
        data=body,
        # Signed at the machine's time (the intake checks freshness on it), whatever BOT_NOW says.
        headers={"Content-Type": "application/json", **signed_headers(body, secret, SystemClock().now())},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:  # noqa: S310 (http on loopback)
            print(f"POST {url} → {reply.status} {reply.read().decode()}")
    except urllib.error.HTTPError as error:
        print(f"POST {url} → {error.code} {error.read().decode()}")
        return 1
    except urllib.error.URLError as error:
        print(f"POST {url} failed ({error.reason}): is `make run` running?")
        return 1
    store = NotificationStore(SqlStore(settings.database_url))
    row = store.by_event("demo", event["event_id"])
    for _ in range(30):  # the worker looks every second
        if row is None or row.status != "pending" or row.reason:
            break
        time.sleep(0.5)
        row = store.by_event("demo", event["event_id"])
    if row is None:
        print(
            "The intake answered but the event is not in DATABASE_URL: is `make run` using another database?"
        )
        return 1
    print(f"notification #{row.id}: {row.status}" + (f" ({row.reason})" if row.reason else ""))
    if row.status == "sent":
        print("The message is in the `make run` terminal as [outbox → …] (or at Twilio, with an account).")
    elif row.reason == "quiet_hours":
        print(f"Quiet hours in the customer's zone: it goes out at {row.due_at.isoformat()} (UTC).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
