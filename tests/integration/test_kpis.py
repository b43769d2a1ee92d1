"""Every KPI of docs/kpis.md on a small week computed by hand (tests/analytics_helpers.py), on
SQLite and PostgreSQL: events recorded as the broker delivers them, handoffs and cases copied
from the assistant's tables, the figures read back.

The week, session by session (times in Mexico City):
- S0 A 20 Nov, before the period: greet.                       (makes A a returning customer)
- S1 A 23 Nov whatsapp MX: greet, order_status, "¿Te sirvió?" → Sí. Contained. Not FCR: S2 repeats
  order_status < 72 h.
- S2 A 24 Nov: order_status, "¿Te sirvió?" ignored, a fallback clarified, /human_handoff → HO ana
  20 min CSAT 5. FCR.
- S3 B 25 Nov sms PE: check_balance, "¿Te sirvió?" → No, a fallback (card number inside) at the
  end: unresolved. FCR.
- S4 C 26 Nov whatsapp MX: cancel_order → case, seen closed 26 h later; then a KB answer about
  opening hours, "¿Te sirvió?" → Sí. FCR.
- S5 B 29 Nov 20:00 (30 Nov in UTC): make_payment → HO beto 10 min CSAT 2; 72 h not over at NOW.
- S6 C 30 Nov: after the period. D: a notification without an answer (no customer turn).
A and B were shown the "¿Te sirvió?" variant "resolvimos", C "te_sirvio" (tests/analytics_helpers.py).
"""

from __future__ import annotations

import csv

import pytest

from bot.analytics.kpis import NO_INTENT, Period, SessionFilter, compute_kpis
from bot.analytics.report import render_text, write_csv
from bot.analytics.store import AnalyticsStore
from tests.analytics_helpers import (
    CASE_SEEN_CLOSED,
    NOW,
    PERIOD_END,
    PERIOD_START,
    ZONE,
    close_case,
    delivered_events,
    write_handoffs_and_cases,
)


@pytest.fixture
def analytics(store) -> AnalyticsStore:
    write_handoffs_and_cases(store)
    book = AnalyticsStore(store)
    book.record(delivered_events(), NOW)
    book.sync_handoffs_and_cases(PERIOD_START, PERIOD_START)  # the case is still open
    close_case(store)
    book.sync_handoffs_and_cases(PERIOD_START, CASE_SEEN_CLOSED)
    book.sync_handoffs_and_cases(PERIOD_START, NOW)  # later syncs keep the first moment seen closed
    return book


def report(book: AnalyticsStore, active: int | None = 6, only: SessionFilter | None = None):
    period = Period(PERIOD_START, PERIOD_END)
    return compute_kpis(
        period, NOW, zone=ZONE, active_customers=active, only=only or SessionFilter(), **book.facts(period)
    )


def test_each_kpi_matches_the_hand_computed_week(analytics):
    kpis = report(analytics)
    overall = kpis.overall
    assert overall.sessions == 5  # S1–S5; S0 and S6 are outside, D has no customer turn
    assert (overall.contained, overall.handed_over, overall.with_case, overall.unresolved) == (1, 2, 1, 1)
    assert overall.containment == pytest.approx(1 / 5)
    assert overall.handoff_rate == pytest.approx(2 / 5)
    # S1 3, S2 3, S3 3, S4 3 (cancel, the question about hours, Sí), S5 1: a "¿Te sirvió?" answer
    # is a customer turn like any other.
    assert (overall.customer_turns, overall.fallback_turns, overall.clarification_turns) == (13, 2, 1)
    assert overall.fallback_rate == pytest.approx(2 / 13)
    assert overall.clarification_rate == pytest.approx(1 / 13)
    assert (overall.fcr_resolved, overall.fcr_judged) == (3, 4)  # S1 repeated; S5 not judged yet
    assert overall.csat_mean == pytest.approx(3.5)  # the 1-5 only: 5 and 2
    # Satisfied: the 5 and two "Sí" (S1, S4) of 2 ratings + 3 answers (S2's question was ignored).
    assert overall.csat_share == pytest.approx(3 / 5)
    assert (overall.feedback_answers, overall.feedback_yes) == (3, 2)
    assert overall.feedback_yes_rate == pytest.approx(2 / 3)
    assert kpis.customers == 3
    assert kpis.adoption == pytest.approx(3 / 6)
    assert kpis.aht_minutes == pytest.approx(15)
    assert [(a.agent, a.handled, a.aht_minutes) for a in kpis.agents] == [("ana", 1, 20), ("beto", 1, 10)]
    assert (kpis.cases_opened, kpis.cases_resolved) == (1, 1)
    assert kpis.case_resolution_hours_mean == pytest.approx(26)
    assert kpis.handoffs_by_intent_reason == [
        ("make_payment", "amount_over_threshold", 1, 1),
        ("order_status", "customer_request", 1, 2),
    ]


def test_the_breakdowns_split_the_same_sessions(analytics):
    breakdown = report(analytics).breakdown
    sessions = {
        dimension: {value: f.sessions for value, f in values.items()}
        for dimension, values in breakdown.items()
    }
    assert sessions["intent"] == {"cancel_order": 1, "check_balance": 1, "make_payment": 1, "order_status": 2}
    assert sessions["channel"] == {"sms": 2, "whatsapp": 3}
    assert sessions["country"] == {"MX": 3, "PE": 2}
    assert sessions["customer"] == {"new": 2, "returning": 3}
    # S5 began on 29 Nov at 20:00 in Mexico City: its day there, though it was 30 Nov in UTC.
    assert sessions["day"] == {
        "2026-11-23": 1,
        "2026-11-24": 1,
        "2026-11-25": 1,
        "2026-11-26": 1,
        "2026-11-29": 1,
    }
    assert sessions["week"] == {"2026-W48": 5}
    assert breakdown["channel"]["whatsapp"].containment == pytest.approx(1 / 3)
    assert breakdown["intent"]["order_status"].fcr == pytest.approx(1 / 2)
    assert breakdown["country"]["PE"].csat_mean == pytest.approx(2)


def test_misunderstood_messages_are_listed_masked(analytics):
    texts = dict(report(analytics).misunderstood)
    # bot/inbox.py's rules: fell back (S3, S2) or came right before a handoff the assistant made (S5).
    assert texts == {"mi tarjeta [tarjeta oculta] no pasa": 1, "xyzzy plugh": 1, "quiero pagar 900000": 1}


def test_recording_the_same_events_again_changes_nothing(analytics):
    before = report(analytics)
    assert analytics.record(delivered_events(), NOW) == 0
    assert analytics.record(list(reversed(delivered_events()))[:7], NOW) == 0
    after = report(analytics)
    assert after.overall == before.overall
    assert after.breakdown == before.breakdown


def test_events_in_any_order_and_batches_build_the_same_sessions(store):
    write_handoffs_and_cases(store)
    book = AnalyticsStore(store)
    events = delivered_events()
    for index in range(0, len(events), 5):
        book.record(list(reversed(events))[index : index + 5], NOW)
    book.sync_handoffs_and_cases(PERIOD_START, NOW)
    kpis = report(book, active=None)
    assert (kpis.overall.sessions, kpis.overall.contained, kpis.overall.fcr_judged) == (5, 1, 4)
    assert kpis.adoption is None


def test_the_report_prints_and_writes_every_table(analytics, tmp_path):
    kpis = report(analytics)
    text = render_text(kpis, ZONE)
    assert "Containment" in text and "20.0%" in text
    written = write_csv(kpis, tmp_path)
    names = sorted(path.name for path in written)
    assert names == [
        "agents.csv",
        "breakdown.csv",
        "experiments.csv",
        "feedback.csv",
        "handoffs.csv",
        "misunderstood.csv",
        "notifications.csv",  # empty here: tests/integration/test_kpi_notifications.py fills it
        "summary.csv",
    ]
    with (tmp_path / "summary.csv").open() as handle:
        summary = {row["kpi"]: row["value"] for row in csv.DictReader(handle)}
    assert float(summary["containment"]) == pytest.approx(0.2)
    assert float(summary["fcr"]) == pytest.approx(0.75)
    assert float(summary["feedback_yes_rate"]) == pytest.approx(2 / 3)
    assert "¿Te sirvió? by rated flow" in text and "pregunta_feedback / resolvimos" in text
    with (tmp_path / "experiments.csv").open() as handle:
        rows = {row["variant"]: row for row in csv.DictReader(handle)}
    assert rows["resolvimos"]["containment_p"] == "" and rows["te_sirvio"]["sessions"] == "1"
    assert float(rows["te_sirvio"]["containment_p"]) == pytest.approx(0.50499, abs=1e-4)


def test_a_channel_filter_gives_the_figures_of_its_sessions(analytics):
    # SMS (and Peru, the same customer B): S3 unresolved, S5 handed over to beto (10 min, CSAT 2).
    for only in (SessionFilter(channel="sms"), SessionFilter(country="PE")):
        kpis = report(analytics, only=only)
        overall = kpis.overall
        assert (overall.sessions, overall.contained, overall.handed_over, overall.unresolved) == (2, 0, 1, 1)
        assert overall.containment == 0
        assert (overall.customer_turns, overall.fallback_turns) == (4, 1)  # S3's "No" is a turn
        assert (overall.fcr_resolved, overall.fcr_judged) == (1, 1)  # S3; S5 not judged yet
        assert overall.csat_mean == pytest.approx(2)
        assert overall.csat_share == 0  # the 2 and S3's "No"
        assert kpis.feedback_by_flow == [("check_balance", 1, 0)]
        assert kpis.aht_minutes == pytest.approx(10)
        assert [a.agent for a in kpis.agents] == ["beto"]
        assert (kpis.customers, kpis.cases_opened) == (1, 0)
        assert dict(kpis.misunderstood) == {
            "mi tarjeta [tarjeta oculta] no pasa": 1,
            "quiero pagar 900000": 1,
        }
        assert kpis.handoffs_by_intent_reason == [("make_payment", "amount_over_threshold", 1, 1)]


def test_an_intent_filter_keeps_each_handoff_with_the_session_it_was_made_in(analytics):
    # order_status: S1 contained (repeated within 72 h), S2 handed over to ana (20 min, CSAT 5).
    kpis = report(analytics, only=SessionFilter(intent="order_status"))
    overall = kpis.overall
    assert (overall.sessions, overall.contained, overall.handed_over) == (2, 1, 1)
    assert overall.containment == pytest.approx(1 / 2)
    assert (overall.customer_turns, overall.fallback_turns, overall.clarification_turns) == (6, 1, 1)
    assert (overall.feedback_answers, overall.feedback_yes) == (1, 1)  # S1's Sí; S2 ignored it
    assert overall.fcr == pytest.approx(1 / 2)
    assert overall.csat_mean == pytest.approx(5)
    assert kpis.aht_minutes == pytest.approx(20)
    assert dict(kpis.misunderstood) == {"xyzzy plugh": 1}
    # check_balance: S3 alone. B's handoff of S5 stays S5's: no AHT, no CSAT here.
    balance = report(analytics, only=SessionFilter(intent="check_balance"))
    assert (balance.overall.sessions, balance.overall.unresolved) == (1, 1)
    assert balance.aht_minutes is None and balance.overall.csat_mean is None
    assert report(analytics, only=SessionFilter(intent=NO_INTENT)).overall.sessions == 0


def test_new_and_returning_customers_split_the_week(analytics):
    new = report(analytics, only=SessionFilter(customer="new"))  # S3 (B's first), S4 (C's first)
    assert (new.overall.sessions, new.overall.with_case, new.overall.unresolved) == (2, 1, 1)
    assert (new.cases_opened, new.cases_resolved) == (1, 1)
    assert new.case_resolution_hours_mean == pytest.approx(26)
    assert new.aht_minutes is None
    returning = report(analytics, only=SessionFilter(customer="returning", channel="whatsapp"))
    assert (returning.overall.sessions, returning.overall.contained, returning.overall.handed_over) == (
        2,
        1,
        1,
    )
    assert returning.customers == 1 and returning.adoption == pytest.approx(1 / 6)


def test_a_case_agents_are_still_working_is_not_resolved_and_a_closed_one_at_its_change(store):
    from bot.adapters.sql import SqlCaseBook
    from bot.case_work import change_status
    from tests.analytics_helpers import at

    write_handoffs_and_cases(store)
    book = SqlCaseBook(store)
    change_status(book, book.case("GES-CCCCCCCC"), "in_progress", "ana", at(26, 16, 1))
    analytics = AnalyticsStore(store)
    analytics.sync_handoffs_and_cases(PERIOD_START, CASE_SEEN_CLOSED)
    assert (report(analytics).cases_opened, report(analytics).cases_resolved) == (1, 0)
    change_status(book, book.case("GES-CCCCCCCC"), "resolved", "ana", at(26, 20, 1))  # 5 h after opening
    analytics.sync_handoffs_and_cases(PERIOD_START, NOW)
    kpis = report(analytics)
    assert kpis.cases_resolved == 1 and kpis.case_resolution_hours_mean == pytest.approx(5)


def test_a_customers_rating_of_a_closed_case_counts_in_csat_with_the_handoffs(store):
    from bot.adapters.sql import SqlCaseBook
    from bot.case_work import change_status, rate_case, record_rating_asked
    from tests.analytics_helpers import C, at

    write_handoffs_and_cases(store)
    book = SqlCaseBook(store)
    change_status(book, book.case("GES-CCCCCCCC"), "closed", "ana", at(26, 20, 1))
    assert record_rating_asked(book, book.case("GES-CCCCCCCC"), "ana", at(26, 20, 1))
    assert rate_case(book, C, 3, at(26, 20, 5)).id == "GES-CCCCCCCC"
    analytics = AnalyticsStore(store)
    analytics.record(delivered_events(), NOW)
    analytics.sync_handoffs_and_cases(PERIOD_START, NOW)
    overall = report(analytics).overall
    # The handoffs' 5 and 2, and the case's 3 (S4, customer C's first session).
    assert overall.csat_answers == 3 and overall.csat_mean == pytest.approx(10 / 3)
    # Satisfied: the 5 and the two "Sí" (S1, S4), of the three ratings and three answers.
    assert overall.csat_share == pytest.approx(3 / 6)
    new = report(analytics, only=SessionFilter(customer="new")).overall
    assert new.csat_answers == 1 and new.csat_mean == pytest.approx(3)


def test_te_sirvio_answers_count_per_rated_flow_and_in_the_breakdowns(analytics):
    kpis = report(analytics)
    # S1 rated order_status (Sí), S3 check_balance (No), S4 the article on opening hours (Sí).
    assert kpis.feedback_by_flow == [("check_balance", 1, 0), ("kb:horarios", 1, 1), ("order_status", 1, 1)]
    by_channel = kpis.breakdown["channel"]
    assert (by_channel["whatsapp"].feedback_answers, by_channel["whatsapp"].feedback_yes) == (2, 2)
    assert by_channel["sms"].feedback_yes_rate == 0
    # S4's intent is cancel_order (its first task), whatever the question rated.
    assert kpis.breakdown["intent"]["cancel_order"].feedback_yes_rate == 1


def test_the_ab_comparison_is_computed_by_hand(analytics):
    """pregunta_feedback over S1–S5: "resolvimos" was shown in S1, S2 (A) and S3 (B), "te_sirvio"
    in S4 (C). S5 (B, handed over) saw no question. "resolvimos" is the reference (first by name).

    Containment: resolvimos 1 of 3 (S1), te_sirvio 0 of 1 (S4 is a case). Pooled p = 1/4,
    SE = √(1/4 · 3/4 · (1/1 + 1/3)) = √(1/4) = 1/2, z = (0 − 1/3) / (1/2) = −2/3,
    p-value = erfc((2/3) / √2) = 0.50499.
    Sí: resolvimos 1 of 2 answers (S1 Sí, S3 No; S2 ignored), te_sirvio 1 of 1. Pooled 2/3,
    SE = √(2/3 · 1/3 · (1 + 1/2)) = √(1/3), z = (1 − 1/2) / √(1/3) = 0.86603, p-value = 0.38648."""
    experiments = report(analytics).experiments
    assert [(v.experiment, v.variant) for v in experiments] == [
        ("pregunta_feedback", "resolvimos"),
        ("pregunta_feedback", "te_sirvio"),
    ]
    reference, other = experiments
    assert (reference.sessions, reference.contained, reference.answers, reference.yes) == (3, 1, 2, 1)
    assert (other.sessions, other.contained, other.answers, other.yes) == (1, 0, 1, 1)
    assert reference.containment_p is None and reference.yes_rate_p is None
    assert other.containment_p == pytest.approx(0.50499, abs=1e-5)
    assert other.yes_rate_p == pytest.approx(0.38648, abs=1e-5)
    # A filter keeps the variants of its sessions only: SMS is B's S3 alone.
    (sms,) = report(analytics, only=SessionFilter(channel="sms")).experiments
    assert (sms.variant, sms.sessions, sms.answers, sms.yes) == ("resolvimos", 1, 1, 0)
