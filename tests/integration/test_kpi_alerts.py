"""KPI alerts at fixed moments, on SQLite and PostgreSQL: a containment drop week on week fires,
a steady week does not, an alert fires once per rule and week however often it is checked, the
hand-computed week of tests/analytics_helpers.py breaks the CSAT floor, the fallback ceiling and
the handoff rise as computed by hand, and the webhook gets a body signed with the secret, retried
after a failure, while the checker never waits for it."""

from __future__ import annotations

import asyncio
import json
import threading
from datetime import timedelta

import pytest

from bot.analytics.alert_book import AlertBook
from bot.analytics.alert_webhook import deliver_due_alerts
from bot.analytics.alerts import RuleFile, check_alerts, last_complete_week, load_rules
from bot.analytics.store import AnalyticsStore
from bot.clock import FixedClock
from bot.handoff.desk import verify
from bot.settings import Settings
from connectors.analytics_consumer import alert_round, watch_alerts
from tests.alert_helpers import CHECKED_AT, Webhook, rules_file, two_weeks
from tests.analytics_helpers import NOW, PERIOD_START, ZONE, delivered_events, write_handoffs_and_cases

pytestmark = pytest.mark.integration
SECRET = "clave-del-webhook-de-alertas"
DROP = {"id": "contencion", "kind": "containment_drop", "intent": "each", "points": 10, "min_volume": 5}


def check(store, path, moment=CHECKED_AT, deliver=False):
    return check_alerts(
        AnalyticsStore(store), AlertBook(store), load_rules(path), moment, ZONE, deliver=deliver
    )


def test_the_judged_week_is_the_last_complete_one_in_the_business_zone():
    week, before, name = last_complete_week(CHECKED_AT, ZONE)
    assert name == "2026-W48"
    assert (week.start.day, week.end.day, before.start.day) == (23, 30, 16)
    # Half an hour into Monday in Mexico City W49 has begun; half an hour before, W48 had not ended.
    assert last_complete_week(week.end + timedelta(minutes=30), ZONE)[2] == "2026-W48"
    assert last_complete_week(week.end - timedelta(minutes=30), ZONE)[2] == "2026-W47"


def test_a_containment_drop_fires_with_its_figures(store, tmp_path):
    two_weeks(store, contained_before=5, contained_after=2)  # 100% → 40%: 60 points down
    fired = check(store, rules_file(tmp_path, DROP))
    assert [(a.rule, a.subject, a.week, a.volume) for a in fired] == [
        ("contencion", "order_status", "2026-W48", 5)
    ]
    assert fired[0].value == pytest.approx(0.4) and fired[0].previous == pytest.approx(1.0)
    assert fired[0].status == "unsent"  # no webhook configured: the console only


def test_a_steady_week_or_too_few_sessions_fire_nothing(store, tmp_path):
    two_weeks(store, contained_before=4, contained_after=4)
    assert check(store, rules_file(tmp_path, DROP)) == []
    assert check(store, rules_file(tmp_path, {**DROP, "points": 0})) == []  # no change at all


def test_the_minimum_volume_holds_an_alert_back(store, tmp_path):
    two_weeks(store, contained_before=5, contained_after=2)
    assert check(store, rules_file(tmp_path, {**DROP, "min_volume": 6})) == []
    assert check(store, rules_file(tmp_path, {**DROP, "points": 60})) == []  # exactly 60: not more


def test_an_alert_fires_once_per_rule_and_week(store, tmp_path):
    two_weeks(store, contained_before=5, contained_after=2)
    path = rules_file(tmp_path, DROP, {**DROP, "id": "total", "intent": None})
    assert len(check(store, path)) == 2  # the intent's and all sessions'
    assert check(store, path) == []
    assert check(store, path, CHECKED_AT + timedelta(days=3)) == []  # still judging W48
    assert check(store, path, CHECKED_AT + timedelta(days=7)) == []  # W49 is empty: nothing to judge
    assert [a.subject for a in AlertBook(store).recent(CHECKED_AT - timedelta(days=1))] == [
        "",
        "order_status",
    ]


def test_the_hand_computed_week_breaks_the_floor_ceiling_and_rise_as_computed(store, tmp_path):
    write_handoffs_and_cases(store)
    book = AnalyticsStore(store)
    book.record(delivered_events(), NOW)
    book.sync_handoffs_and_cases(PERIOD_START, NOW)
    path = rules_file(
        tmp_path,
        {"id": "csat", "kind": "csat_below", "floor": 4, "min_volume": 2},  # 3.5 of 2 answers
        {"id": "csat-3", "kind": "csat_below", "floor": 4, "min_volume": 3},  # only 2 answers
        # 2 of 13 turns (the "¿Te sirvió?" answers are turns too): 15.4%
        {"id": "fallback", "kind": "fallback_above", "ceiling": 15, "min_volume": 13},
        {"id": "fallback-20", "kind": "fallback_above", "ceiling": 20, "min_volume": 13},
        {"id": "handoffs", "kind": "handoff_rise", "points": 30, "min_volume": 1},  # 0% (S0) → 40%
        {"id": "handoffs-2", "kind": "handoff_rise", "points": 30, "min_volume": 2},  # W47 had 1
    )
    fired = {a.rule: a for a in check(store, path, NOW)}
    assert sorted(fired) == ["csat", "fallback", "handoffs"]
    assert (fired["csat"].value, fired["csat"].volume) == (pytest.approx(3.5), 2)
    assert (fired["fallback"].value, fired["fallback"].volume) == (pytest.approx(2 / 13), 13)
    assert (fired["handoffs"].value, fired["handoffs"].previous) == (pytest.approx(0.4), pytest.approx(0))


def test_the_webhook_gets_a_signed_body_retried_after_a_failure(store, tmp_path):
    two_weeks(store, contained_before=5, contained_after=2)
    hook = Webhook(statuses=[500, 200])
    try:
        book = AlertBook(store)
        [alert] = check(store, rules_file(tmp_path, DROP), deliver=True)
        assert alert.status == "pending"
        assert deliver_due_alerts(book, hook.url, SECRET, CHECKED_AT) == 0  # the receiver failed
        assert deliver_due_alerts(book, hook.url, SECRET, CHECKED_AT + timedelta(seconds=2)) == 0
        assert len(hook.received) == 1  # the retry waits its backoff
        retry_at = CHECKED_AT + timedelta(seconds=5)
        assert deliver_due_alerts(book, hook.url, SECRET, retry_at) == 1
        assert deliver_due_alerts(book, hook.url, SECRET, retry_at + timedelta(hours=1)) == 0  # sent: done
        assert len(hook.received) == 2
        headers, body = hook.received[-1]
        assert headers["x-alert-id"] == str(alert.id)
        assert headers["x-alert-timestamp"] == str(int(retry_at.timestamp()))
        assert verify(body, headers["x-alert-timestamp"], headers["x-alert-signature"], SECRET, retry_at)
        assert not verify(body, headers["x-alert-timestamp"], headers["x-alert-signature"], "otra", retry_at)
        assert not verify(
            body.replace(b"order_status", b"check_balance"),
            headers["x-alert-timestamp"],
            headers["x-alert-signature"],
            SECRET,
            retry_at,
        )
        sent = json.loads(body)
        assert sent["rule"] == "contencion" and sent["kind"] == "containment_drop"
        assert (sent["intent"], sent["week"], sent["volume"]) == ("order_status", "2026-W48", 5)
        assert sent["value"] == pytest.approx(0.4) and sent["previous"] == pytest.approx(1.0)
        assert sent["period_start"] == "2026-11-23T06:00:00+00:00"
        assert [a.status for a in book.recent(CHECKED_AT)] == ["delivered"]
    finally:
        hook.stop()


def test_a_dead_webhook_does_not_stop_the_check(store, tmp_path):
    two_weeks(store, contained_before=5, contained_after=2)
    settings = Settings.from_env(
        {
            "BOT_ENV": "development",
            "BOT_TIMEZONE": ZONE,
            "ALERT_WEBHOOK_URL": "http://127.0.0.1:9/alerts",  # nothing listens on port 9
            "ALERT_WEBHOOK_SECRET": SECRET,
        }
    )
    book = AlertBook(store)
    rules = RuleFile(rules_file(tmp_path, DROP))
    alert_round(AnalyticsStore(store), book, rules, settings, FixedClock(CHECKED_AT), check=True)
    [alert] = book.recent(CHECKED_AT)
    assert (alert.status, alert.attempts) == ("pending", 1)  # recorded, and retried later


def test_the_consumers_alert_task_checks_on_its_clock_and_posts(store, tmp_path):
    two_weeks(store, contained_before=5, contained_after=2)
    hook = Webhook()
    env = {
        "BOT_ENV": "development",
        "BOT_TIMEZONE": ZONE,
        "ALERT_WEBHOOK_URL": hook.url,
        "ALERT_WEBHOOK_SECRET": SECRET,
        "ALERT_RULES": str(rules_file(tmp_path, DROP)),
    }
    settings = Settings.from_env(env)
    clock = FixedClock(CHECKED_AT)  # the task reads no other time
    try:

        async def run() -> None:
            stop = asyncio.Event()
            task = asyncio.create_task(
                watch_alerts(AnalyticsStore(store), settings, clock, RuleFile(settings.alert_rules), stop)
            )
            for _ in range(100):
                if hook.received:
                    break
                await asyncio.sleep(0.1)
            stop.set()
            await asyncio.wait_for(task, 10)

        runner = threading.Thread(target=asyncio.run, args=(run(),))
        runner.start()
        runner.join(30)
        assert len(hook.received) == 1
        headers, body = hook.received[0]
        stamp = headers["x-alert-timestamp"]
        assert stamp == str(int(CHECKED_AT.timestamp()))
        assert verify(body, stamp, headers["x-alert-signature"], SECRET, CHECKED_AT)
        assert [a.status for a in AlertBook(store).recent(CHECKED_AT)] == ["delivered"]
    finally:
        hook.stop()
