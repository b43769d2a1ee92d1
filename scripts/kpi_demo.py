"""Fills the database with a few thousand seeded, realistic conversations for the KPIs (`make kpi-demo`).

A development tool, outside the product. Conversations are written as Rasa events
(scripts/kpi_events.py) into Rasa's SQL event broker table, exactly the rows Rasa writes, and read
by the analytics consumer's own step; handoffs and cases go through the handoff store and the case
book. The simulation walks the last four weeks in six-hour steps: agents end handoffs and the team
closes cases as time passes, and the consumer copies them at each step, so times to resolution
are what the consumer would have seen. The same SEED gives the same data.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import sqlalchemy as sa  # noqa: E402
from kpi_events import Conversation  # noqa: E402

from bot.adapters.sql import SqlCaseBook, SqlStore, cases  # noqa: E402
from bot.analytics.consumer import broker_events, read_sql_broker  # noqa: E402
from bot.analytics.store import AnalyticsStore  # noqa: E402
from bot.clock import FixedClock, SystemClock  # noqa: E402
from bot.consents.store import ConsentBook, ConsentChange  # noqa: E402
from bot.deep_links import NOTIFICATION_KEY  # noqa: E402
from bot.experiments import variant_index  # noqa: E402
from bot.handoff.store import HandoffStore  # noqa: E402
from bot.messaging.inbound import Channel  # noqa: E402
from bot.notifications.events import parse_event  # noqa: E402
from bot.notifications.store import NotificationStore  # noqa: E402
from bot.records import Case, CaseKind  # noqa: E402
from bot.settings import Settings, SettingsError, shown_url  # noqa: E402

STEP = timedelta(hours=6)
DAYS = 28
# intent: (weight, what customers write, the action that answers, case kind opened or None)
INTENTS = {
    "order_status": (
        35,
        ["¿dónde está mi pedido?", "mi pedido no llega", "estado de mi compra"],
        "action_order_status",
        None,
    ),
    "reschedule_delivery": (
        10,
        ["quiero cambiar el día de entrega", "no voy a estar mañana"],
        "action_reschedule",
        None,
    ),
    "check_balance": (10, ["¿cuánto debo?", "mi saldo por favor"], "action_check_balance", None),
    "make_payment": (8, ["quiero pagar mi factura", "mándame el link de pago"], "action_payment_link", None),
    "faq": (10, ["¿hacen envíos a provincia?", "¿cuál es el horario?"], "action_kb_answer", None),
    "cancel_order": (
        6,
        ["cancelen mi pedido", "ya no lo quiero"],
        "action_cancel_order",
        CaseKind.CANCEL_ORDER,
    ),
    "return_request": (
        6,
        ["quiero devolver un producto", "me llegó roto"],
        "action_return",
        CaseKind.RETURN_REQUEST,
    ),
    "order_not_arrived": (4, ["dice entregado pero no llegó"], "action_problem", CaseKind.ORDER_NOT_ARRIVED),
    "payment_problem": (3, ["me cobraron dos veces"], "action_problem", CaseKind.PAYMENT_PROBLEM),
    "update_contact_data": (4, ["cambié de correo", "actualizar mi dirección"], "action_contact_data", None),
    "request_invoice": (4, ["necesito mi factura"], "action_invoice", None),
}
MISUNDERSTOOD = [
    "el cupón no me funciona",
    "¿tienen garantía extendida?",
    "me llegó otro color",
    "¿hay promociones?",
    "mi tarjeta 4111 1111 1111 1111 no pasa",
    "ayuda con la factura electrónica",
    "no entiendo",
    "¿cuánto tarda el envío a provincia?",
    "quiero hablar con el gerente",
    "llámenme al 55 1234 5678",
]
COUNTRIES = [
    ("MX", 50, "+5255{:08d}"),
    ("PE", 20, "+519{:08d}"),
    ("AR", 15, "+54911{:08d}"),
    ("CO", 10, "+5730{:08d}"),
    ("CL", 5, "+569{:08d}"),
]
REASONS = [
    ("customer_request", 50),
    ("not_understood", 25),
    ("amount_over_threshold", 10),
    ("angry_language", 10),
    ("urgent_language", 5),
]
AGENTS = ["ana", "beto", "carla"]


@dataclass
class Pending:
    """Something that happens later in the simulation: a handoff ends, a case closes."""

    due: datetime
    kind: str
    ref: str
    agent: str = ""
    score: int | None = None


FEEDBACK_EXPERIMENT = "pregunta_feedback"  # domain.yml's utter_ask_feedback, in its order
FEEDBACK_VARIANTS = ("te_sirvio", "resolvimos")
FEEDBACK_YES_RATE = {"te_sirvio": 0.85, "resolvimos": 0.75}  # a made-up difference to find


# Notifications (bot/notifications.yml): kind → (weight, the flow its link opens or None, its life).
NOTIFICATION_KINDS = {
    "order_shipped": (30, None, timedelta(hours=48)),
    "out_for_delivery": (20, None, timedelta(hours=10)),
    "delivery_tomorrow": (20, "reschedule_delivery", timedelta(hours=20)),
    "delivery_failed": (5, "reschedule_delivery", timedelta(hours=48)),
    "invoice_due_soon": (15, "make_payment", timedelta(hours=72)),
    "invoice_overdue": (5, "make_payment", timedelta(hours=168)),
    "case_updated": (5, None, timedelta(hours=168)),
}
# What became of them: (status, weight, reason); "held" only on WhatsApp.
NOTIFICATION_OUTCOMES = [
    ("sent", 82, None),
    ("held", 5, "outside_session_window: demo"),
    ("skipped", 4, "no_consent:order_updates/demo"),
    ("skipped", 2, "opted_out"),
    ("failed", 3, "the sender failed (error 30008)"),
    ("skipped", 4, "expired"),
]
NOTIFICATION_OPT_OUT = 0.03  # of those sent, the customer withdraws a consent within 60 hours


def _pick(rng: random.Random, weighted: list[tuple]) -> tuple:
    return rng.choices(weighted, weights=[item[1] for item in weighted])[0]


def conversation(
    rng: random.Random, phone: str, channel: str, start: datetime
) -> tuple[Conversation, str, str | None]:
    """One session: the events, its intent, and 'handoff' / 'case' / None."""
    names = list(INTENTS)
    intent = rng.choices(names, weights=[INTENTS[name][0] for name in names])[0]
    _, texts, action, case_kind = INTENTS[intent]
    talk = Conversation(phone, channel=channel, step=timedelta(seconds=rng.randint(8, 60)))
    talk.session(start)
    if rng.random() < 0.5:
        talk.says(rng.choice(["hola", "buenas", "buenos días"]), "greet").answers(
            "utter_greet", "utter_greet"
        )
    misunderstood = rng.random() < 0.15
    if misunderstood:
        talk.says(rng.choice(MISUNDERSTOOD), "nlu_fallback", rng.uniform(0.2, 0.5))
        if rng.random() < 0.7:
            talk.answers("action_clarify", "utter_clarify", [f"/{intent}", "/faq"])
            talk.says(f"/{intent}", intent, 1.0)
        else:
            talk.answers("action_default_fallback", "utter_default")
            talk.says(rng.choice(texts), intent, rng.uniform(0.7, 0.99))
    else:
        talk.says(rng.choice(texts), intent, rng.uniform(0.7, 0.99))
    talk.answers(action, f"utter_{intent}")
    # "¿Te sirvió?" after a flow the bot resolves by itself, in the customer's A/B variant. Its
    # own random stream, so the rest of the demo (and its figures) stays as it was; an answer
    # takes the place of the customer's "gracias", so the turns stay as they were too.
    feedback = random.Random(f"{phone}|{start.isoformat()}")
    variant = FEEDBACK_VARIANTS[variant_index(phone, FEEDBACK_EXPERIMENT, len(FEEDBACK_VARIANTS))]
    asked = case_kind is None and feedback.random() < 0.8
    if asked:
        talk.asks_feedback(intent, variant, FEEDBACK_EXPERIMENT)
    outcome = None
    if case_kind is not None and rng.random() < 0.7:
        outcome = "case"
    elif rng.random() < (0.25 if misunderstood else 0.08):
        talk.says("/human_handoff", "human_handoff", 1.0).answers("action_handoff", "utter_handoff_waiting")
        talk.pause()
        outcome = "handoff"
    elif rng.random() < 0.05:
        talk.says(rng.choice(MISUNDERSTOOD), "nlu_fallback", 0.3).answers(
            "action_default_fallback", "utter_default"
        )
    elif rng.random() < 0.4:
        if asked and feedback.random() < 0.7:
            talk.answers_feedback("yes" if feedback.random() < FEEDBACK_YES_RATE[variant] else "no")
        else:
            talk.says("gracias", "thank").answers("utter_you_are_welcome", "utter_you_are_welcome")
    return talk, intent, outcome


class DemoNotifications:
    """The notifications of the demo, written as the worker finishes them, on a random stream of
    their own so the conversations (and their figures) stay what they were without them.

    Some of the customers' own reschedule and payment conversations were opened by a
    notification's deep link: the notification is sent a few hours before, and the message that
    opened the flow names it in its metadata, as the channel does for a live link."""

    def __init__(self, store: SqlStore, seed: int, now: datetime) -> None:
        self.book = NotificationStore(store)
        self.store = store
        self.rng = random.Random(f"{seed}|notifications")
        self.now = now
        self.count = 0

    def _write(
        self, phone: str, channel: str, kind: str, finished: datetime, status: str, reason: str | None
    ) -> int:
        _, opens, life = NOTIFICATION_KINDS[kind]
        received = finished - timedelta(minutes=self.rng.uniform(1, 30))
        payload = {
            "source": "demo", "event_id": f"demo-{self.count}", "kind": kind,
            "occurred_at": received.isoformat(), "phone": phone,
            "variables": {"order_id": f"PED-D{self.count}", "invoice_id": f"FAC-D{self.count}"},
        }  # fmt: skip
        self.count += 1
        row_id, _ = self.book.receive(parse_event(payload), received)
        deferred = self.rng.random()
        if deferred < 0.12:
            self.book.defer(row_id, finished, "quiet_hours")
        elif deferred < 0.15:
            self.book.defer(row_id, finished, "daily_cap")
        linked = opens is not None and status in ("sent", "held")
        self.book.finish(
            row_id, status, finished, attempts=1, reason=reason, phone=phone, channel=channel,
            link_expires_at=received + life if linked else None,
        )  # fmt: skip
        if status == "sent" and self.rng.random() < NOTIFICATION_OPT_OUT:
            moment = finished + timedelta(hours=self.rng.uniform(0.5, 60))
            if moment <= self.now:
                change = ConsentChange(
                    phone, "*", Channel(channel), False, via=channel, source="keyword", message_text="BAJA"
                )
                ConsentBook(self.store, FixedClock(moment)).change(change)
        return row_id

    def some(self, customers: list[tuple[str, str]], start: datetime, end: datetime, count: int) -> None:
        """`count` notifications finished in [start, end) that nobody tapped."""
        kinds = list(NOTIFICATION_KINDS)
        for _ in range(count):
            phone, channel = self.rng.choice(customers)
            kind = self.rng.choices(kinds, weights=[NOTIFICATION_KINDS[k][0] for k in kinds])[0]
            status, _, reason = _pick(self.rng, NOTIFICATION_OUTCOMES)
            if status == "held" and channel != "whatsapp":
                status, reason = "sent", None
            finished = start + timedelta(seconds=self.rng.uniform(0, (end - start).total_seconds()))
            self._write(phone, channel, kind, min(finished, self.now), status, reason)

    def opened(self, talk: Conversation, intent: str, moment: datetime) -> None:
        """Half the reschedule and payment conversations came from a notification's link."""
        if intent not in ("reschedule_delivery", "make_payment") or self.rng.random() >= 0.5:
            return
        kinds = [kind for kind, (_, opens, _) in NOTIFICATION_KINDS.items() if opens == intent]
        kind = self.rng.choice(kinds)
        sent_at = moment - timedelta(minutes=self.rng.uniform(5, 8 * 60))
        row_id = self._write(talk.phone, talk.channel, kind, sent_at, "sent", None)
        for event in talk.events:
            if event["event"] == "user" and event["parse_data"]["intent"]["name"] == intent:
                event["metadata"][NOTIFICATION_KEY] = row_id
                break


def generate(settings: Settings, now: datetime, conversations: int, seed: int) -> dict[str, int]:
    rng = random.Random(seed)
    store = SqlStore(settings.database_url)
    with store.connect() as conn:
        broker_events.create(conn, checkfirst=True)
    analytics = AnalyticsStore(store)
    clock = FixedClock(now)
    handoffs, book = HandoffStore(store, clock), SqlCaseBook(store)
    customers = []
    for _ in range(max(1, conversations // 2)):
        _country, _, pattern = _pick(rng, COUNTRIES)
        customers.append(
            (pattern.format(rng.randrange(10**7, 10**8)), "sms" if rng.random() < 0.2 else "whatsapp")
        )
    start = now - timedelta(days=DAYS)
    moments = sorted(start + timedelta(seconds=rng.uniform(0, DAYS * 86400)) for _ in range(conversations))
    pending: list[Pending] = []
    counts = {"conversations": 0, "handoffs": 0, "cases": 0}
    notes = DemoNotifications(store, seed, now)
    step_end, index = start + STEP, 0
    while step_end <= now + STEP:
        rows = []
        while index < len(moments) and moments[index] < step_end:
            moment = moments[index]
            index += 1
            phone, channel = rng.choice(customers)
            talk, intent, outcome = conversation(rng, phone, channel, moment)
            notes.opened(talk, intent, moment)
            rows += [{"sender_id": phone, "data": json.dumps(event)} for event in talk.delivered()]
            counts["conversations"] += 1
            made = talk.now or moment
            if outcome == "handoff":
                handoff_id = f"HO-D{counts['handoffs']:07d}"
                handoffs.create(
                    handoff_id=handoff_id, conversation_id=phone, phone=phone, channel=channel,
                    reason=_pick(rng, REASONS)[0], customer_name=None, packet={"intent": intent},
                    resume_form=None, now=made,
                )  # fmt: skip
                accept = made + timedelta(minutes=rng.uniform(1, 15))
                agent = rng.choice(AGENTS)
                handoffs.accept(handoff_id, agent, now=min(accept, now))
                score = (
                    rng.choices([1, 2, 3, 4, 5], weights=[5, 5, 10, 35, 45])[0]
                    if rng.random() < 0.6
                    else None
                )
                pending.append(
                    Pending(
                        accept + timedelta(minutes=rng.uniform(3, 25)), "handoff", handoff_id, agent, score
                    )
                )
                counts["handoffs"] += 1
            elif outcome == "case":
                case_id = f"GES-D{counts['cases']:07d}"
                kind = INTENTS[intent][3]
                book.add(Case(case_id, kind, phone, phone, {"intent": intent}, made))
                pending.append(Pending(made + timedelta(hours=rng.uniform(2, 96)), "case", case_id))
                counts["cases"] += 1
        if rows:
            with store.connect() as conn:
                conn.execute(broker_events.insert(), rows)
        # About one notification nobody tapped for every conversation.
        notes.some(customers, step_end - STEP, step_end, max(1, conversations * 6 // (DAYS * 24)))
        moment = min(step_end, now)
        for item in [p for p in pending if p.due <= moment]:
            pending.remove(item)
            if item.kind == "handoff":
                handoffs.end(item.ref, "closed", now=item.due)
                if item.score is not None:
                    handoffs.record_satisfaction(item.ref, item.score, now=item.due + timedelta(minutes=1))
            else:
                with store.connect() as conn:
                    conn.execute(cases.update().where(cases.c.id == item.ref).values(status="closed"))
        while read_sql_broker(analytics, moment):
            pass
        analytics.sync_handoffs_and_cases(start - timedelta(days=1), moment)
        step_end += STEP
    store.dispose()
    counts["notifications"] = notes.count
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=19)
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
    except SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    now = SystemClock(settings.clock_shift).now()
    with SqlStore(settings.database_url).connect() as conn:
        if not sa.inspect(conn).has_table("analytics_events"):
            print("error: the analytics tables are missing: run `make migrate` first", file=sys.stderr)
            return 2
    counts = generate(settings, now, args.conversations, args.seed)
    print(
        f"{counts['conversations']} conversations, {counts['handoffs']} handoffs, {counts['cases']} cases "
        f"and {counts['notifications']} notifications "
        f"over the {DAYS} days before {now:%Y-%m-%d %H:%M} UTC "
        f"written to {shown_url(settings.database_url)}; "
        f"now `make report ACTIVE={max(1, args.conversations // 2)}` (the demo's customers, all active)."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
