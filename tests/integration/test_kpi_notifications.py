"""The notifications' figures of docs/kpis.md ("Notifications") on the KPI tests' week, computed
by hand (tests/analytics_helpers.py, `write_notifications`), on SQLite and PostgreSQL: the rows
the worker finished copied by the consumer's sync, the deep links tapped recorded from the
broker's events, the figures read back.

By hand, period 23–30 Nov (Mexico City): N1–N9 finished in it (N10 on 30 Nov is not).
- outcomes: sent 4 (N1, N2, N3, N8), held 1 (N5), refused_consent 1 (N4), opted_out 1 (N7),
  failed 1 (N6), skipped 1 (N9); deferred by quiet hours 1 (N2), by the daily cap 1 (N8).
- opened: of the 4 sent with a link, N2's was tapped within its life (twice: counted once), N1's
  only after it expired: 1 of 4.
- opt-outs after a notification: of the 4 sent, N3 (B refused a topic 22 h later); E's BAJA came
  73 h after N8 and A's before N7: 1 of 4.
- per kind and channel: delivery_tomorrow/whatsapp N1 N2 N5 N8 (sent 3, held 1, opened 1 of 3),
  invoice_due_soon/sms N3 (sent 1, opt-out 1), order_shipped/sms N6 (failed), order_shipped/
  whatsapp N4 N7 N9.
"""

from __future__ import annotations

import csv

import pytest

from bot.analytics.kpis import Period, SessionFilter, compute_kpis
from bot.analytics.report import render_text, write_csv
from bot.analytics.store import AnalyticsStore
from bot.notifications.store import NotificationStore
from tests.analytics_helpers import (
    NOW,
    PERIOD_END,
    PERIOD_START,
    ZONE,
    delivered_events,
    notification_taps,
    write_handoffs_and_cases,
    write_notifications,
)


@pytest.fixture
def analytics(store) -> AnalyticsStore:
    write_handoffs_and_cases(store)
    ids = write_notifications(store)
    book = AnalyticsStore(store)
    book.record(delivered_events() + notification_taps(ids), NOW)
    book.sync_handoffs_and_cases(PERIOD_START, NOW)
    return book


def report(book: AnalyticsStore, only: SessionFilter | None = None):
    period = Period(PERIOD_START, PERIOD_END)
    return compute_kpis(period, NOW, zone=ZONE, only=only or SessionFilter(), **book.facts(period))


def outcomes(figures) -> tuple[int, ...]:
    o = figures.outcomes
    return (o["sent"], o["held"], o["refused_consent"], o["opted_out"], o["failed"], o["skipped"])


def test_the_notifications_figures_match_the_hand_computed_week(analytics):
    total, *rows = report(analytics).notifications
    assert total.total == 9
    assert outcomes(total) == (4, 1, 1, 1, 1, 1)
    assert (total.quiet_hours, total.daily_cap) == (1, 1)
    assert (total.opened, total.with_link) == (1, 4)
    assert total.open_rate == pytest.approx(1 / 4)
    assert (total.opt_outs, total.sent) == (1, 4)
    assert total.opt_out_rate == pytest.approx(1 / 4)
    by_key = {(row.kind, row.channel): row for row in rows}
    assert list(by_key) == [
        ("delivery_tomorrow", "whatsapp"),
        ("invoice_due_soon", "sms"),
        ("order_shipped", "sms"),
        ("order_shipped", "whatsapp"),
    ]
    delivery = by_key[("delivery_tomorrow", "whatsapp")]
    assert outcomes(delivery) == (3, 1, 0, 0, 0, 0)
    assert (delivery.opened, delivery.with_link, delivery.opt_outs) == (1, 3, 0)
    assert (delivery.quiet_hours, delivery.daily_cap) == (1, 1)
    invoice = by_key[("invoice_due_soon", "sms")]
    assert (invoice.sent, invoice.opened, invoice.with_link, invoice.opt_outs) == (1, 0, 1, 1)
    assert outcomes(by_key[("order_shipped", "sms")]) == (0, 0, 0, 0, 1, 0)
    assert outcomes(by_key[("order_shipped", "whatsapp")]) == (0, 0, 1, 1, 0, 1)


def test_a_channel_filter_keeps_the_notifications_sent_on_it(analytics):
    total, *rows = report(analytics, SessionFilter(channel="sms")).notifications
    assert outcomes(total) == (1, 0, 0, 0, 1, 0)  # N3 sent, N6 failed
    assert (total.opened, total.with_link, total.opt_outs) == (0, 1, 1)
    assert [(row.kind, row.channel) for row in rows] == [
        ("invoice_due_soon", "sms"),
        ("order_shipped", "sms"),
    ]


def test_copying_and_recording_again_changes_nothing(analytics, store):
    before = report(analytics).notifications
    written = NotificationStore(store)
    ids = {f"N{number}": written.by_event("erp", f"N{number}").id for number in range(1, 11)}
    analytics.record(notification_taps(ids), NOW)
    analytics.sync_handoffs_and_cases(PERIOD_START, NOW)
    analytics.sync_handoffs_and_cases(PERIOD_START, NOW)
    assert report(analytics).notifications == before


def test_the_report_prints_and_writes_the_notifications(analytics, tmp_path):
    kpis = report(analytics)
    text = render_text(kpis, ZONE)
    assert "Notifications (finished in the period;" in text
    assert "delivery_tomorrow" in text and "invoice_due_soon" in text
    paths = write_csv(kpis, tmp_path)
    assert tmp_path / "notifications.csv" in paths
    with (tmp_path / "notifications.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert rows[0]["kind"] == "(all)" and rows[0]["sent"] == "4" and rows[0]["opened"] == "1"
    assert rows[0]["open_rate"] == "0.25" and rows[0]["opt_out_rate"] == "0.25"
    assert [row["kind"] for row in rows[1:]] == [
        "delivery_tomorrow",
        "invoice_due_soon",
        "order_shipped",
        "order_shipped",
    ]
