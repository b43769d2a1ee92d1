"""Notification rules and decisions at fixed moments: send, defer (quiet hours, daily cap) or skip."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from bot.messaging.inbound import Channel
from bot.notifications.decide import Action, decide, local_day_bounds
from bot.notifications.events import EventKind, InvalidEvent, NotificationEvent, parse_event
from bot.notifications.rules import (
    DEFAULT_RULES,
    RulesError,
    load_rules,
    parse_rules,
    render_text,
    template_values,
)

MX = "America/Mexico_City"  # UTC-6, no DST
AR = "America/Argentina/Buenos_Aires"  # UTC-3
UTC = timezone.utc


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def rules(**overrides):
    spec = {"text": "Tu pedido {order_id} salió", "quiet_hours": {"start": "21:00", "end": "08:00"}}
    spec.update(overrides)
    return parse_rules({"kinds": {"order_shipped": spec}}).rule_for(EventKind.ORDER_SHIPPED)


def event(occurred: str = "2026-11-26T10:00:00-06:00", **variables) -> NotificationEvent:
    return NotificationEvent(
        "erp", "ev-1", EventKind.ORDER_SHIPPED, at(occurred), "+525512345678",
        variables=variables or {"order_id": "PED-1001"},
    )  # fmt: skip


def test_a_daytime_event_is_sent_now():
    decision = decide(
        event(), rules(), now=at("2026-11-26T10:00:00-06:00"), zone=MX, opted_out=False, sent_today=0
    )
    assert decision.action is Action.SEND


@pytest.mark.parametrize(
    ("now", "until"),
    [
        ("2026-11-26T21:00:00-06:00", "2026-11-27T08:00:00-06:00"),  # the first quiet minute
        ("2026-11-26T23:59:00-06:00", "2026-11-27T08:00:00-06:00"),
        ("2026-11-27T00:30:00-06:00", "2026-11-27T08:00:00-06:00"),  # after midnight: the same day's 08:00
        ("2026-11-27T07:59:59-06:00", "2026-11-27T08:00:00-06:00"),
    ],
)
def test_quiet_hours_defer_to_their_end_in_the_customers_zone(now, until):
    decision = decide(event(now), rules(), now=at(now), zone=MX, opted_out=False, sent_today=0)
    assert (decision.action, decision.at, decision.reason) == (Action.DEFER, at(until), "quiet_hours")


def test_the_end_of_quiet_hours_is_a_send():
    now = at("2026-11-27T08:00:00-06:00")
    assert decide(event(), rules(), now=now, zone=MX, opted_out=False, sent_today=0).action is Action.SEND


def test_the_same_moment_is_quiet_in_one_zone_and_not_in_another():
    now = at("2026-11-26T22:30:00-03:00")  # 19:30 in Mexico City
    assert decide(event(), rules(), now=now, zone=AR, opted_out=False, sent_today=0).action is Action.DEFER
    assert decide(event(), rules(), now=now, zone=MX, opted_out=False, sent_today=0).action is Action.SEND


def test_quiet_hours_within_one_day_and_none_at_all():
    daytime = rules(quiet_hours={"start": "13:00", "end": "15:00"})
    lunch = at("2026-11-26T14:00:00-06:00")
    decision = decide(event(), daytime, now=lunch, zone=MX, opted_out=False, sent_today=0)
    assert (decision.action, decision.at) == (Action.DEFER, at("2026-11-26T15:00:00-06:00"))
    night = at("2026-11-26T23:00:00-06:00")
    assert (
        decide(event(), rules(quiet_hours=None), now=night, zone=MX, opted_out=False, sent_today=0).action
        is Action.SEND
    )


def test_an_opted_out_number_is_skipped_with_the_reason():
    decision = decide(
        event(), rules(), now=at("2026-11-26T10:00:00-06:00"), zone=MX, opted_out=True, sent_today=0
    )
    assert (decision.action, decision.reason) == (Action.SKIP, "opted_out")


def test_the_daily_cap_defers_to_the_next_local_morning():
    rule = rules(max_per_customer_per_day=2)
    now = at("2026-11-26T10:00:00-06:00")
    assert decide(event(), rule, now=now, zone=MX, opted_out=False, sent_today=1).action is Action.SEND
    decision = decide(event(), rule, now=now, zone=MX, opted_out=False, sent_today=2)
    # midnight is quiet: the next moment allowed is the next day's 08:00
    assert (decision.action, decision.at, decision.reason) == (
        Action.DEFER, at("2026-11-27T08:00:00-06:00"), "daily_cap",
    )  # fmt: skip


def test_news_older_than_its_rule_allows_is_skipped_not_sent_late():
    rule = rules(expires_after_hours=10)
    occurred = "2026-11-26T06:00:00-06:00"
    assert (
        decide(
            event(occurred), rule, now=at("2026-11-26T15:59:00-06:00"), zone=MX, opted_out=False, sent_today=0
        ).action
        is Action.SEND
    )
    decision = decide(
        event(occurred), rule, now=at("2026-11-26T16:00:00-06:00"), zone=MX, opted_out=False, sent_today=0
    )
    assert (decision.action, decision.reason) == (Action.SKIP, "expired")


def test_a_disabled_or_missing_rule_and_missing_variables_are_skipped():
    now = at("2026-11-26T10:00:00-06:00")
    assert decide(event(), None, now=now, zone=MX, opted_out=False, sent_today=0).reason == "no_rule"
    assert (
        decide(event(), rules(enabled=False), now=now, zone=MX, opted_out=False, sent_today=0).reason
        == "disabled"
    )
    decision = decide(event(other="x"), rules(), now=now, zone=MX, opted_out=False, sent_today=0)
    assert (decision.action, decision.reason) == (Action.SKIP, "missing_variables:order_id")


def test_local_day_bounds_follow_the_zone():
    start, end = local_day_bounds(at("2026-11-27T01:00:00+00:00"), MX)  # still the 26th in Mexico City
    assert (start, end) == (at("2026-11-26T00:00:00-06:00"), at("2026-11-27T00:00:00-06:00"))


def test_the_shipped_rules_file_covers_every_kind_and_renders_spanish():
    shipped = load_rules(DEFAULT_RULES)
    assert set(shipped.rules) == set(EventKind)
    rule = shipped.rule_for(EventKind.INVOICE_DUE_SOON)
    text = render_text(
        rule,
        {
            "customer_name": "Mariana",
            "invoice_id": "F-0001",
            "amount": "1500",
            "currency": "MXN",
            "due_date": "2026-11-29",
        },
        "MX",
    )
    assert text.startswith("Hola Mariana, tu factura F-0001 por $1,500.00 vence el domingo 29 de noviembre.")
    assert text.endswith("\n\n1. Pagar ahora")  # quick replies as numbered lines (render_text's default)


def test_template_values_are_the_variables_as_the_text_shows_them():
    values = template_values({"order_id": "PED-1", "delivery_date": "2026-11-27"})
    assert values == {"order_id": "PED-1", "delivery_date": "viernes 27 de noviembre"}


def test_a_rule_repeating_a_template_sid_is_told_to_name_the_template_instead():
    with pytest.raises(RulesError, match=r"kinds.order_shipped.whatsapp_content_sid: .*whatsapp_template"):
        rules(whatsapp_content_sid="HX123", template_variables=["order_id"])


@pytest.mark.parametrize(
    "bad",
    [
        {"kinds": {"order_lost": {"text": "x"}}},
        {"kinds": {"order_shipped": {"text": ""}}},
        {"kinds": {"order_shipped": {"text": "x {"}}},
        {"kinds": {"order_shipped": {"text": "x", "quiet_hours": {"start": "21"}}}},
        {"kinds": {"order_shipped": {"text": "x", "max_per_customer_per_day": 0}}},
        {"kinds": {"order_shipped": {"text": "x", "quick_replies": [{"title": "a" * 21, "payload": "/p"}]}}},
        {"kinds": {"order_shipped": {"text": "x", "channel": "fax"}}},
        ["not", "a", "mapping"],
    ],
)
def test_a_wrong_rules_file_is_refused_with_the_place(bad):
    with pytest.raises(RulesError):
        parse_rules(bad)


def test_an_event_is_parsed_and_its_phone_normalised():
    parsed = parse_event(
        {
            "event_id": "ship-1",
            "kind": "order_shipped",
            "occurred_at": "2026-11-26T10:00:00-06:00",
            "phone": "whatsapp:+5215512345678",
            "channel": "sms",
            "variables": {"order_id": "PED-1001", "count": 2},
        }
    )
    assert (parsed.source, parsed.phone, parsed.channel) == ("crm", "+525512345678", Channel.SMS)
    assert parsed.variables == {"order_id": "PED-1001", "count": "2"}
    assert parsed.occurred_at == at("2026-11-26T16:00:00+00:00")


@pytest.mark.parametrize(
    "bad",
    [
        {"kind": "order_shipped", "occurred_at": "2026-11-26T10:00:00-06:00", "phone": "+525512345678"},
        {
            "event_id": "e",
            "kind": "order_lost",
            "occurred_at": "2026-11-26T10:00:00-06:00",
            "phone": "+525512345678",
        },
        {
            "event_id": "e",
            "kind": "order_shipped",
            "occurred_at": "2026-11-26T10:00:00",
            "phone": "+525512345678",
        },
        {"event_id": "e", "kind": "order_shipped", "occurred_at": "2026-11-26T10:00:00-06:00"},
        {"event_id": "e", "kind": "order_shipped", "occurred_at": "2026-11-26T10:00:00-06:00", "phone": "12"},
        {
            "event_id": "e",
            "kind": "order_shipped",
            "occurred_at": "2026-11-26T10:00:00-06:00",
            "customer_id": "C1",
            "variables": {"a-b": "x"},
        },
        {
            "event_id": "e",
            "kind": "order_shipped",
            "occurred_at": "2026-11-26T10:00:00-06:00",
            "customer_id": "C1",
            "variables": {"a": "x" * 201},
        },
        {
            "event_id": "x" * 121,
            "kind": "order_shipped",
            "occurred_at": "2026-11-26T10:00:00-06:00",
            "customer_id": "C1",
        },
        "a string",
    ],
)
def test_a_malformed_event_is_refused(bad):
    with pytest.raises(InvalidEvent):
        parse_event(bad)


def test_defer_times_are_utc_and_after_now():
    now = at("2026-11-26T22:00:00-06:00")
    decision = decide(event(), rules(), now=now, zone=MX, opted_out=False, sent_today=0)
    assert decision.at.tzinfo is not None and decision.at > now
    assert decision.at - now == timedelta(hours=10)
    assert decision.at.astimezone(ZoneInfo(MX)).hour == 8


def test_the_token_bucket_paces_sends_at_the_configured_rate():
    import asyncio

    from bot.notifications.worker import TokenBucket

    moment = [0.0]
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        moment[0] += seconds

    bucket = TokenBucket(4.0, lambda: moment[0], burst=2, sleep=sleep)

    async def take(times: int) -> None:
        for _ in range(times):
            await bucket.take()

    asyncio.run(take(10))
    # two at once (the burst), then one every quarter second: 8 more take 2 s
    assert moment[0] == pytest.approx(2.0)
    assert len(slept) == 8


def test_the_customers_zone_comes_from_the_crm_then_the_phone_then_the_business():
    from bot.notifications.worker import customer_zone
    from bot.records import Customer

    lima = Customer("C1", "Rosa Quispe", "+51987654321", "PE", timezone="America/Lima")
    assert customer_zone(lima, "+51987654321", MX) == "America/Lima"
    assert customer_zone(None, "+5491123456789", MX) == "America/Buenos_Aires"
    assert customer_zone(None, "+15005550006", MX) == MX  # the US has many zones: the business's


def test_the_pull_job_sees_shipped_tomorrow_due_soon_and_overdue_at_a_fixed_moment():
    from datetime import date
    from decimal import Decimal

    from bot.notifications.pull import pulled_events
    from bot.records import DeliveryWindow, Invoice, InvoiceStatus, Order, OrderState

    now = at("2026-11-26T10:00:00-06:00")
    tomorrow = DeliveryWindow(at("2026-11-27T14:00:00-06:00"), at("2026-11-27T18:00:00-06:00"))
    orders = [
        Order("PED-1", "C1", OrderState.IN_TRANSIT, "x", now, window=tomorrow),
        Order("PED-2", "C1", OrderState.OUT_FOR_DELIVERY, "x", now),
        Order("PED-3", "C2", OrderState.CREATED, "x", now),
    ]
    invoices = [
        Invoice(
            "F-1", "C1", Decimal("1500"), "MXN", date(2026, 11, 1), date(2026, 11, 29), InvoiceStatus.OPEN
        ),
        Invoice(
            "F-2", "C2", Decimal("99.5"), "MXN", date(2026, 10, 1), date(2026, 11, 20), InvoiceStatus.OPEN
        ),
        Invoice("F-3", "C2", Decimal("10"), "MXN", date(2026, 11, 1), date(2026, 11, 30), InvoiceStatus.OPEN),
    ]

    events = {event.event_id: event for event in pulled_events(orders, invoices, now=now, zone=MX)}

    assert set(events) == {
        "order:PED-1:in_transit",
        "order:PED-1:delivery_tomorrow:2026-11-27",
        "order:PED-2:out_for_delivery",
        "invoice:F-1:due_soon:2026-11-29",
        "invoice:F-2:overdue:2026-11-20",
    }
    assert events["order:PED-1:delivery_tomorrow:2026-11-27"].variables == {
        "order_id": "PED-1", "delivery_date": "2026-11-27", "window": "14:00 y 18:00",
    }  # fmt: skip
    assert events["invoice:F-1:due_soon:2026-11-29"].kind is EventKind.INVOICE_DUE_SOON
    assert all(event.customer_id and event.phone is None for event in events.values())


def test_notification_settings_default_to_loopback_and_refuse_nonsense():
    from bot.settings import Settings, SettingsError

    settings = Settings.from_env({})
    assert (settings.notify_host, settings.notify_port, settings.notify_rate_per_s) == (
        "127.0.0.1",
        8070,
        5.0,
    )
    assert (settings.notify_pull_interval_s, settings.notify_webhook_secret, settings.notify_rules) == (
        0,
        None,
        None,
    )
    wrong = [
        ("NOTIFY_RATE_PER_S", "0"),
        ("NOTIFY_RATE_PER_S", "fast"),
        ("NOTIFY_PORT", "99999"),
        ("NOTIFY_LEASE_S", "-1"),
        ("NOTIFY_PULL_INTERVAL_S", "-5"),
        ("NOTIFY_HOST", "not a host!"),
    ]
    for name, value in wrong:
        with pytest.raises(SettingsError, match=name):
            Settings.from_env({name: value})


def test_a_greeting_without_a_customer_name_reads_naturally():
    rule = rules(text="¡Hola {customer_name}! Tu pedido {order_id} salió. Hola {customer_name}, gracias.")
    assert render_text(rule, {"order_id": "PED-1"}) == "¡Hola! Tu pedido PED-1 salió. Hola, gracias."
    assert render_text(rule, {"order_id": "PED-1", "customer_name": "Ana"}).startswith("¡Hola Ana! Tu pedido")
