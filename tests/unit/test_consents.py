"""Consent rules without a database: topics and their defaults, the rule that names its topic,
the decision that skips a refused topic, "mis preferencias" options, the CSV export, and the
signed links of a notification's quick replies on a fixed clock."""

from __future__ import annotations

import io
import json
from datetime import datetime, timedelta, timezone

import pytest

from bot.consents import preferences
from bot.consents.export import write_csv
from bot.consents.store import LoggedConsent
from bot.consents.topics import Topics, TopicsError, granted, parse_topics
from bot.deep_links import EXPIRED_PAYLOAD, LINK_METADATA, DeepLinks, Flow, Link, link_token, linked_target
from bot.messaging.inbound import Channel
from bot.notifications.decide import Action, decide
from bot.notifications.events import EventKind, parse_event
from bot.notifications.rules import RulesError, load_rules, parse_rules

NOW = datetime(2026, 11, 26, 16, 0, tzinfo=timezone.utc)  # 10:00 in Mexico City
PHONE = "+525512345678"
TOPICS = parse_topics(
    {
        "order_updates": {"title": "Novedades de pedidos", "default": True},
        "promotions": {"title": "Promociones", "default": False},
    }
)


def test_a_customer_who_never_chose_gets_each_topics_default():
    assert granted(TOPICS, {}, "order_updates", Channel.SMS)
    assert not granted(TOPICS, {}, "promotions", Channel.WHATSAPP)


def test_a_choice_is_per_topic_and_per_channel():
    choices = {("order_updates", "sms"): False, ("promotions", "whatsapp"): True}
    assert not granted(TOPICS, choices, "order_updates", Channel.SMS)
    assert granted(TOPICS, choices, "order_updates", Channel.WHATSAPP)
    assert granted(TOPICS, choices, "promotions", Channel.WHATSAPP)
    assert not granted(TOPICS, choices, "promotions", Channel.SMS)


def test_an_undeclared_topic_is_never_granted():
    assert not granted(TOPICS, {("nope", "sms"): True}, "nope", Channel.SMS)


@pytest.mark.parametrize(
    "raw, says",
    [
        ({"promos": {"default": True}}, "title"),
        ({"promos": {"title": "x" * 21}}, "at most 20"),
        ({"promos": {"title": "Promos", "default": "si"}}, "true or false"),
        ({"*": {"title": "Todo"}}, "topic id"),
        (["promos"], "one entry per topic"),
    ],
)
def test_a_wrong_topic_says_what_to_write(raw, says):
    with pytest.raises(TopicsError, match=says):
        parse_topics(raw)


def rules(kind_spec: dict, topics: dict | None = None):
    raw = {"kinds": {"order_shipped": {"text": "Tu pedido {order_id} salió", **kind_spec}}}
    if topics is not None:
        raw["topics"] = topics
    return parse_rules(raw)


def test_every_rule_names_a_declared_topic_when_topics_are_declared():
    declared = {"order_updates": {"title": "Pedidos"}}
    assert (
        rules({"topic": "order_updates"}, declared).rule_for(EventKind.ORDER_SHIPPED).topic == "order_updates"
    )
    with pytest.raises(RulesError, match="kinds.order_shipped.topic"):
        rules({}, declared)
    with pytest.raises(RulesError, match="kinds.order_shipped.topic"):
        rules({"topic": "promos"}, declared)
    with pytest.raises(RulesError, match="declare the topic"):
        rules({"topic": "order_updates"})


def test_the_shipped_rules_name_a_topic_for_every_kind():
    shipped = load_rules()
    assert set(shipped.topics.ids) == {"order_updates", "payment_reminders", "promotions"}
    assert all(rule.topic in shipped.topics.ids for rule in shipped.rules.values())
    assert shipped.rule_for(EventKind.INVOICE_OVERDUE).topic == "payment_reminders"


def test_a_quick_reply_opens_a_flow_only_for_an_event_that_names_its_target():
    spec = {
        "quick_replies": [
            {"title": "Cambiar fecha", "payload": "/reschedule_delivery", "opens": "reschedule"}
        ]
    }
    [reply] = rules(spec).rule_for(EventKind.ORDER_SHIPPED).quick_replies
    assert reply.opens is Flow.RESCHEDULE
    with pytest.raises(RulesError, match="invoice_id"):
        rules({"quick_replies": [{"title": "Pagar", "payload": "/make_payment", "opens": "pay"}]})
    with pytest.raises(RulesError, match="one of reschedule, pay"):
        rules({"quick_replies": [{"title": "Ir", "payload": "/help", "opens": "menu"}]})


def shipped_event():
    return parse_event(
        {
            "source": "erp", "event_id": "e1", "kind": "order_shipped", "occurred_at": NOW.isoformat(),
            "phone": PHONE, "variables": {"order_id": "PED-1"},
        }
    )  # fmt: skip


def test_a_refused_topic_is_skipped_with_the_topic_and_channel_as_reason():
    rule = rules({"topic": "order_updates", "quiet_hours": "none"}, {"order_updates": {"title": "P"}})
    rule = rule.rule_for(EventKind.ORDER_SHIPPED)
    common = {"now": NOW, "zone": "America/Mexico_City", "opted_out": False, "sent_today": 0}
    refused = decide(shipped_event(), rule, refused_consent="order_updates/sms", **common)
    assert (refused.action, refused.reason) == (Action.SKIP, "no_consent:order_updates/sms")
    assert decide(shipped_event(), rule, **common).action is Action.SEND
    # BAJA wins over everything: the reason stays opted_out.
    baja = decide(shipped_event(), rule, refused_consent="order_updates/sms", **{**common, "opted_out": True})
    assert baja.reason == "opted_out"


def test_preferences_show_what_the_customer_gets_and_each_option_sets_the_other_value():
    shown = preferences.current(TOPICS, {("promotions", "sms"): True}, Channel.SMS)
    assert [(choice.topic.id, choice.granted) for choice in shown] == [
        ("order_updates", True),
        ("promotions", True),
    ]
    payload = preferences.set_payload(TOPICS.get("promotions"), Channel.SMS, False)
    entities = json.loads(payload.removeprefix("/manage_preferences"))
    asked = preferences.requested(entities, TOPICS, Channel.WHATSAPP)
    assert (asked.topic.id, asked.channel, asked.granted) == ("promotions", Channel.SMS, False)


def test_a_look_or_an_unknown_topic_changes_nothing():
    assert preferences.requested({"pref_channel": "sms"}, TOPICS, Channel.WHATSAPP) is None
    assert preferences.requested({"pref_topic": "nope", "pref_granted": "yes"}, TOPICS, Channel.SMS) is None
    assert (
        preferences.requested({"pref_topic": "promotions", "pref_granted": "tal vez"}, TOPICS, Channel.SMS)
        is None
    )
    assert preferences.shown_channel({"pref_channel": "fax"}, Channel.SMS) is Channel.SMS
    assert preferences.other_channel(Channel.SMS) is Channel.WHATSAPP


def test_the_csv_has_one_row_per_change_and_free_text_cannot_run_as_a_formula():
    entry = LoggedConsent(1, NOW, PHONE, "*", "sms", False, "sms", "keyword", "SM1", '=HYPERLINK("http://x")')
    stream = io.StringIO()
    assert write_csv([entry], stream) == 1
    header, row = stream.getvalue().splitlines()
    assert header.startswith("at_utc,phone,topic,channel,granted")
    assert row.startswith("2026-11-26T16:00:00+00:00,+525512345678,*,sms,no,sms,keyword,SM1,")
    assert "'=HYPERLINK" in row


LINKS = DeepLinks("unit-test-secret")
TOMORROW_LINK = Link(PHONE, Flow.RESCHEDULE, "PED-1001", NOW + timedelta(hours=20))


def test_a_link_opens_for_its_number_within_its_life():
    token = LINKS.issue(TOMORROW_LINK)
    assert LINKS.open(token, PHONE, NOW) == TOMORROW_LINK
    assert LINKS.open(token, PHONE, NOW + timedelta(hours=19, minutes=59)) == TOMORROW_LINK


def test_a_link_is_refused_at_its_expiry_for_another_number_or_forged():
    token = LINKS.issue(TOMORROW_LINK)
    assert LINKS.open(token, PHONE, NOW + timedelta(hours=20)) is None
    assert LINKS.open(token, "+51987654321", NOW) is None
    assert DeepLinks("another-secret").open(token, PHONE, NOW) is None
    assert LINKS.open(token[:-2] + ("AA" if not token.endswith("AA") else "BB"), PHONE, NOW) is None
    assert LINKS.open("", PHONE, NOW) is None


def test_a_link_payload_becomes_its_flow_or_the_polite_refusal():
    payload = LINKS.payload(TOMORROW_LINK)
    assert link_token(payload) == LINKS.issue(TOMORROW_LINK)
    assert LINKS.resolve(payload, PHONE, NOW) == '/reschedule_delivery{"order_id": "PED-1001"}'
    assert LINKS.resolve(payload, PHONE, NOW + timedelta(days=1)) == EXPIRED_PAYLOAD
    pay = LINKS.payload(Link(PHONE, Flow.PAY, "FAC-9", NOW + timedelta(hours=1)))
    assert LINKS.resolve(pay, PHONE, NOW) == "/make_payment"
    assert LINKS.resolve('/follow_link{"link_token": 3}', PHONE, NOW) == EXPIRED_PAYLOAD
    assert LINKS.resolve("/follow_link{roto", PHONE, NOW) == EXPIRED_PAYLOAD
    assert LINKS.resolve("hola", PHONE, NOW) == "hola"
    assert LINKS.resolve("/reschedule_delivery", PHONE, NOW) == "/reschedule_delivery"


def test_a_live_link_names_its_target_in_the_metadata_and_a_dead_one_names_nothing():
    pay = LINKS.payload(Link(PHONE, Flow.PAY, "F-2001", NOW + timedelta(hours=1)))
    assert LINKS.follow(pay, PHONE, NOW) == ("/make_payment", {"flow": "pay", "target": "F-2001"})
    assert LINKS.follow(pay, PHONE, NOW + timedelta(hours=1)) == (EXPIRED_PAYLOAD, {})
    assert LINKS.follow(pay, "+51987654321", NOW) == (EXPIRED_PAYLOAD, {})
    assert LINKS.follow("quiero pagar", PHONE, NOW) == ("quiero pagar", {})
    opened = {LINK_METADATA: LINKS.follow(pay, PHONE, NOW)[1]}
    assert linked_target(opened, Flow.PAY) == "F-2001"
    assert linked_target(opened, Flow.RESCHEDULE) is None
    assert linked_target({LINK_METADATA: {"flow": "pay", "target": 7}}, Flow.PAY) is None
    assert linked_target(None, Flow.PAY) is None


def test_a_link_is_the_same_each_time_it_is_issued():
    # A notification retried after a crash offers the same button (its id is the payload's digest).
    assert LINKS.payload(TOMORROW_LINK) == LINKS.payload(TOMORROW_LINK)


def test_a_link_names_the_notification_that_offered_it_and_an_older_link_still_opens():
    # Analytics credits the notification whose live link was tapped (docs/kpis.md, "Notifications").
    offered = Link(PHONE, Flow.RESCHEDULE, "PED-1001", NOW + timedelta(hours=20), notification=42)
    payload = LINKS.payload(offered)
    assert LINKS.opened(payload, PHONE, NOW) == ('/reschedule_delivery{"order_id": "PED-1001"}', offered)
    assert LINKS.opened(payload, PHONE, NOW + timedelta(hours=20)) == (EXPIRED_PAYLOAD, None)
    assert LINKS.opened("hola", PHONE, NOW) == ("hola", None)
    # A link issued before links named their notification (four fields) opens as it did.
    assert LINKS.issue(TOMORROW_LINK) != LINKS.issue(offered)
    assert LINKS.opened(LINKS.payload(TOMORROW_LINK), PHONE, NOW)[1].notification is None


def test_empty_topics_are_allowed_and_grant_nothing():
    assert parse_topics(None) == Topics()
    assert not granted(Topics(), {}, "order_updates", Channel.SMS)
