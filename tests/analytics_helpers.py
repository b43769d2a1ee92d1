"""The KPI tests' fixture: a week of five conversations whose every KPI docs/kpis.md lets one
compute by hand (the expected values are written out in tests/integration/test_kpis.py).

Built from Rasa events (scripts/kpi_events.py), the handoff store and the case book, the way the
product writes them.
"""

from __future__ import annotations

import importlib.util
import sys
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from bot.adapters.sql import SqlCaseBook, SqlStore
from bot.clock import FixedClock
from bot.handoff.store import HandoffStore
from bot.records import Case, CaseKind

ROOT = Path(__file__).resolve().parent.parent


def _load(name: str):
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


kpi_events = _load("kpi_events")
Conversation = kpi_events.Conversation

ZONE = "America/Mexico_City"
MX = ZoneInfo(ZONE)
A, B, C, D = "+525511111111", "+51987654321", "+525522222222", "+525533333333"
PERIOD_START = datetime(2026, 11, 23, tzinfo=MX)  # a Monday: ISO week 2026-W48
PERIOD_END = datetime(2026, 11, 30, tzinfo=MX)
NOW = datetime(2026, 12, 2, 12, 0, tzinfo=MX)
CASE_SEEN_CLOSED = datetime(2026, 11, 27, 17, 1, tzinfo=MX)  # 26 h after the case was opened


# The variant of the "¿Te sirvió?" experiment each customer is assigned (bot.experiments): the
# first 8 bytes of SHA-256("pregunta_feedback:<phone>") modulo 2, over ("te_sirvio", "resolvimos")
# as domain.yml lists them: A 0x0defe466a160e41f and B 0x9c43b28a36ac790d are odd, C
# 0xb4f25879cfc90f9c is even.
A_VARIANT, B_VARIANT, C_VARIANT = "resolvimos", "resolvimos", "te_sirvio"


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=MX)


def week_conversations() -> list[Conversation]:
    """S0 (before the period), S1–S5 (in it), S6 (after it) and a notification nobody answered."""
    a = Conversation(A)
    a.session(at(20, 9)).says("hola", "greet").answers("utter_greet", "utter_greet")  # S0
    a.session(at(23, 10)).says("hola", "greet").answers("utter_greet", "utter_greet")  # S1
    a.says("¿dónde está mi pedido?", "order_status").answers("action_order_status", "utter_order_status")
    a.asks_feedback("order_status", A_VARIANT).answers_feedback("yes")  # S1: Sí
    a.session(at(24, 10)).says("mi pedido no llega", "order_status").answers("action_order_status", "u")  # S2
    a.asks_feedback("order_status", A_VARIANT)  # ignored: the next message is something else
    a.says("xyzzy plugh", "nlu_fallback", 0.31).answers(
        "action_clarify", "utter_clarify", ["/order_status", "/check_balance"]
    )
    a.says("/human_handoff", "human_handoff", 1.0).answers("action_handoff", "utter_handoff_waiting")
    a.pause().resume()

    b = Conversation(B, channel="sms")
    b.session(at(25, 9)).says("¿cuánto debo?", "check_balance").answers("action_check_balance", "u")  # S3
    b.asks_feedback("check_balance", B_VARIANT).answers_feedback("no")  # S3: No
    b.says("mi tarjeta 4111 1111 1111 1111 no pasa", "nlu_fallback", 0.2).answers(
        "action_default_fallback", "utter_default"
    )
    b.session(at(29, 20)).says("quiero pagar 900000", "make_payment").answers("action_handoff", "u")  # S5
    b.pause()

    c = Conversation(C)
    c.session(at(26, 15)).says("cancelen mi pedido", "cancel_order").answers("action_cancel_order", "u")  # S4
    c.says("¿a qué hora abren?", "faq").answers("action_kb_answer", "utter_kb_answer")
    c.asks_feedback("kb:horarios", C_VARIANT).answers_feedback("yes")  # S4: Sí, about the article
    c.session(at(30, 10)).says("¿dónde está mi pedido?", "order_status").answers("action_order_status", "u")

    d = Conversation(D)
    d.session(at(27, 8))
    d.events.append({"event": "bot", "timestamp": at(27, 8).timestamp(), "text": "Tu pedido llega hoy"})
    return [a, b, c, d]


def delivered_events() -> list[dict]:
    return [event for conversation in week_conversations() for event in conversation.delivered()]


def write_handoffs_and_cases(store: SqlStore) -> None:
    """S2's handoff (ana, 20 min, CSAT 5), S5's (beto, 10 min, CSAT 2) and S4's case, closed."""
    clock = FixedClock(at(24, 10, 1))
    handoffs = HandoffStore(store, clock)
    for handoff_id, phone, reason, created, agent, minutes, score in (
        ("HO-AAAAAAAA", A, "customer_request", at(24, 10, 1), "ana", 20, 5),
        ("HO-BBBBBBBB", B, "amount_over_threshold", at(29, 20, 1), "beto", 10, 2),
    ):
        handoffs.create(
            handoff_id=handoff_id, conversation_id=phone, phone=phone, channel="whatsapp", reason=reason,
            customer_name=None, packet={}, resume_form=None, now=created,
        )  # fmt: skip
        accepted = created + timedelta(minutes=5)
        handoffs.accept(handoff_id, agent, now=accepted)
        handoffs.end(handoff_id, "closed", now=accepted + timedelta(minutes=minutes))
        handoffs.record_satisfaction(handoff_id, score, now=accepted + timedelta(minutes=minutes + 1))
    book = SqlCaseBook(store)
    book.add(Case("GES-CCCCCCCC", CaseKind.CANCEL_ORDER, C, C, {"order_id": "PED-1"}, at(26, 15, 1)))


def close_case(store: SqlStore, case_id: str = "GES-CCCCCCCC") -> None:
    """The team closes a case (in the case book; the assistant itself never does)."""
    from bot.adapters.sql import cases

    with store.connect() as conn:
        conn.execute(cases.update().where(cases.c.id == case_id).values(status="closed"))


# --- notifications of the week (docs/kpis.md, "Notifications"; tests/integration/test_kpi_notifications.py)
E = "+525566666666"
LINK_LIFE = timedelta(hours=20)  # delivery_tomorrow's news expires after 20 hours


def write_notifications(store: SqlStore) -> dict[str, int]:
    """Ten notifications finished by the worker, nine in the period, as the worker records them
    (received, maybe deferred, finished); their ids by name. Times in Mexico City:

    Each was received an hour before it finished; a link lives 20 hours from then.

    - N1 D delivery_tomorrow whatsapp, sent 27 Nov 08:00 with a link (to 28 Nov 03:00); a tap of
      it at 05:00 is after it expired (the channel would have refused it): not counted.
    - N2 E delivery_tomorrow whatsapp, deferred by quiet hours, sent 24 Nov 09:00 with a link;
      tapped at 09:30 and again at 09:40: opened (once).
    - N3 B invoice_due_soon sms, sent 25 Nov 12:00 with a link; B refuses the invoices topic on
      26 Nov 10:00 (22 h later): an opt-out after it.
    - N4 C order_shipped whatsapp, refused: C said no to the topic (no_consent).
    - N5 A delivery_tomorrow whatsapp, held 27 Nov (outside WhatsApp's window).
    - N6 E order_shipped sms, failed 28 Nov.
    - N7 A order_shipped whatsapp, skipped 28 Nov: A opted out on 20 Nov (BAJA, before it).
    - N8 E delivery_tomorrow whatsapp, deferred by the daily cap, sent 29 Nov 10:00 with a link,
      never tapped; E sends BAJA on 2 Dec 11:00, 73 h later: not after it.
    - N9 C order_shipped whatsapp, skipped 28 Nov: expired.
    - N10 D delivery_tomorrow whatsapp, sent 30 Nov 09:00: after the period.
    """
    from bot.consents.store import ConsentBook, ConsentChange
    from bot.messaging.inbound import Channel
    from bot.notifications.events import parse_event
    from bot.notifications.store import NotificationStore

    book = NotificationStore(store)
    ids: dict[str, int] = {}
    plan = [
        ("N1", D, "delivery_tomorrow", "whatsapp", at(27, 8), "sent", None, True, None),
        ("N2", E, "delivery_tomorrow", "whatsapp", at(24, 9), "sent", None, True, "quiet_hours"),
        ("N3", B, "invoice_due_soon", "sms", at(25, 12), "sent", None, True, None),
        ("N4", C, "order_shipped", "whatsapp", at(26, 9), "skipped", "no_consent:shipping/wa", False, None),
        ("N5", A, "delivery_tomorrow", "whatsapp", at(27, 9), "held", "outside_session_window", True, None),
        ("N6", E, "order_shipped", "sms", at(28, 9), "failed", "sender failed (30008)", False, None),
        ("N7", A, "order_shipped", "whatsapp", at(28, 10), "skipped", "opted_out", False, None),
        ("N8", E, "delivery_tomorrow", "whatsapp", at(29, 10), "sent", None, True, "daily_cap"),
        ("N9", C, "order_shipped", "whatsapp", at(28, 11), "skipped", "expired", False, None),
        ("N10", D, "delivery_tomorrow", "whatsapp", at(30, 9), "sent", None, True, None),
    ]
    for name, phone, kind, channel, finished, status, reason, linked, deferred in plan:
        received = finished - timedelta(hours=1)
        payload = {
            "source": "erp", "event_id": name, "kind": kind, "occurred_at": received.isoformat(),
            "phone": phone, "variables": {"order_id": f"PED-{name}", "invoice_id": f"FAC-{name}"},
        }  # fmt: skip
        row_id, _ = book.receive(parse_event(payload), received)
        if deferred:
            book.defer(row_id, finished, deferred)
        book.finish(
            row_id, status, finished, attempts=1, reason=reason, phone=phone, channel=channel,
            link_expires_at=received + LINK_LIFE if linked else None,
        )  # fmt: skip
        ids[name] = row_id
    for phone, topic, channel, moment in (
        (A, "*", Channel.WHATSAPP, at(20, 12)),  # BAJA before any notification
        (B, "invoices", Channel.SMS, at(26, 10)),  # 22 h after N3
        (E, "*", Channel.WHATSAPP, datetime(2026, 12, 2, 11, 0, tzinfo=MX)),  # 73 h after N8
    ):
        refusal = ConsentChange(phone, topic, channel, False, via=channel.value, source="keyword")
        ConsentBook(store, FixedClock(moment)).change(refusal)
    return ids


def notification_taps(ids: dict[str, int]) -> list[dict]:
    """The deep links tapped: E opens N2's twice, D opens N1's an hour after it expired."""
    e = Conversation(E)
    e.session(at(24, 9, 30)).says('/reschedule_delivery{"order_id": "PED-N2"}', "reschedule_delivery", 1.0)
    e.events[-1]["metadata"]["notification"] = ids["N2"]
    e.says('/reschedule_delivery{"order_id": "PED-N2"}', "reschedule_delivery", 1.0, at=at(24, 9, 40))
    e.events[-1]["metadata"]["notification"] = ids["N2"]
    d = Conversation(D)
    d.session(at(28, 5)).says('/reschedule_delivery{"order_id": "PED-N1"}', "reschedule_delivery", 1.0)
    d.events[-1]["metadata"]["notification"] = ids["N1"]
    return [event for conversation in (e, d) for event in conversation.delivered()]
