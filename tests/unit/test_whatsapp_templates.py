"""The WhatsApp templates file: the shipped one checks out with the notification rules, and a wrong
one stops a sending process's start with the file and the key that are wrong."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bot.clock import FixedClock
from bot.deep_links import Flow
from bot.messaging.templates import DEFAULT_TEMPLATES, TemplatesError, load_templates, parse_templates
from bot.notifications.rules import DEFAULT_RULES, check_templates, load_rules, parse_rules
from bot.settings import Settings
from bot.wiring import build_wiring
from connectors.notification_worker import build_worker as build_notification_worker
from tests.conftest import NOW

SID = "HX" + "ab" * 16
RESPONSES = {
    "utter_done_later": [
        {"text": "Listo {order_id} (gestión {management_id})"},
        {"text": "Hecho: gestión {management_id}"},
    ]
}


def catalog(**templates):
    spec = {
        "generic": "novedades",
        "templates": {
            "novedades": {"content_sid": SID, "language": "es", "text": "Tienes novedades."},
            **templates,
        },
    }
    return spec


def test_the_shipped_templates_and_notification_rules_check_out():
    templates = load_templates()
    check_templates(load_rules(), templates, str(DEFAULT_RULES))
    assert templates.fallback.variables == () and not templates.fallback.complete
    # The outbox worker's confirmations and the console have their own; a bot reply has none.
    assert templates.meant_for("utter_reschedule_confirmed_later") == "gestion_novedades"
    assert templates.meant_for("console_reply") == "respuesta_asesor"
    assert templates.meant_for("utter_greet") is None


def test_content_variables_follow_the_declared_order():
    raw = catalog(
        entrega={
            "content_sid": SID, "language": "es", "text": "Hola {{1}}, tu pedido {{2}} llega",
            "variables": ["customer_name", "order_id"],
        }
    )  # fmt: skip
    template = parse_templates(raw, "t.yml", RESPONSES).get("entrega")
    assert template.content_variables({"order_id": "PED-1", "customer_name": "Ana"}) == {
        "1": "Ana",
        "2": "PED-1",
    }
    assert (
        template.rendered({"order_id": "PED-1", "customer_name": "Ana"}) == "Hola Ana, tu pedido PED-1 llega"
    )


@pytest.mark.parametrize(
    ("variables", "text"),
    [
        (["order_id"], "Tu pedido {{1}} y {{2}}"),  # the text uses more than are listed
        (["order_id", "window"], "Tu pedido {{1}}"),  # more are listed than the text uses
        (["order_id"], "Tu pedido {{2}}"),  # numbered from 2
    ],
)
def test_a_template_whose_variables_do_not_match_its_text_is_refused(variables, text):
    raw = catalog(pedido={"content_sid": SID, "language": "es", "text": text, "variables": variables})
    with pytest.raises(TemplatesError, match=r"^t\.yml: templates\.pedido\.variables: .*must match"):
        parse_templates(raw, "t.yml", RESPONSES)


def test_a_response_template_needing_a_value_the_response_lacks_is_refused():
    # {order_id} is in one variation only: the other one's sender has no order to fill it with.
    raw = catalog(
        hecho={"content_sid": SID, "language": "es", "text": "Pedido {{1}}", "variables": ["order_id"]}
    )
    raw["uses"] = {"utter_done_later": "hecho"}
    with pytest.raises(
        TemplatesError, match=r"t\.yml: uses\.utter_done_later: template 'hecho' .*needs order_id"
    ):
        parse_templates(raw, "t.yml", RESPONSES)
    raw["templates"]["hecho"].update(text="Gestión {{1}}", variables=["management_id"])
    assert parse_templates(raw, "t.yml", RESPONSES).meant_for("utter_done_later") == "hecho"


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"uses": {"utter_done_later": "nope"}}, r"uses\.utter_done_later: no template named 'nope'"),
        ({"uses": {"utter_not_a_response": "novedades"}}, r"uses\.utter_not_a_response: neither a response"),
        ({"generic": "nope"}, r"generic: no template named 'nope'"),
    ],
)
def test_unknown_names_are_refused_with_their_key(change, key):
    raw = {**catalog(), **change}
    with pytest.raises(TemplatesError, match=rf"^t\.yml: {key}"):
        parse_templates(raw, "t.yml", RESPONSES)


def test_a_generic_template_with_variables_is_refused():
    raw = catalog()
    raw["templates"]["novedades"].update(text="Hola {{1}}", variables=["customer_name"])
    with pytest.raises(TemplatesError, match=r"t\.yml: generic: template 'novedades' .*needs customer_name"):
        parse_templates(raw, "t.yml", RESPONSES)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("content_sid", "HX123", r"content_sid: the approved template's ContentSid"),
        ("language", "spanish", r"language:"),
        ("quick_replies", [{"title": "x" * 21, "payload": "/a"}], r"quick_replies\[0\]\.title: at most 20"),
        (
            "quick_replies",
            [{"title": str(n), "payload": "/a"} for n in range(4)],
            r"quick_replies: at most 3",
        ),
    ],
)
def test_what_whatsapp_would_refuse_is_refused_at_start(field, value, message):
    raw = catalog()
    raw["templates"]["novedades"][field] = value
    with pytest.raises(TemplatesError, match=rf"t\.yml: templates\.novedades\.{message}"):
        parse_templates(raw, "t.yml", RESPONSES)


def test_a_notification_rule_naming_an_unknown_or_unfillable_template_is_refused():
    templates = parse_templates(
        catalog(
            entrega={
                "content_sid": SID, "language": "es", "text": "Tu pedido {{1}} llega {{2}}",
                "variables": ["order_id", "delivery_date"],
            }
        ),
        "t.yml",
        RESPONSES,
    )  # fmt: skip
    unknown = parse_rules({"kinds": {"order_shipped": {"text": "{order_id}", "whatsapp_template": "nope"}}})
    with pytest.raises(
        TemplatesError, match=r"^n\.yml: kinds\.order_shipped\.whatsapp_template: no template"
    ):
        check_templates(unknown, templates, "n.yml")
    # The rule's text gives no delivery_date: its events may not carry one.
    unfillable = parse_rules(
        {"kinds": {"order_shipped": {"text": "{order_id}", "whatsapp_template": "entrega"}}}
    )
    with pytest.raises(
        TemplatesError, match=r"kinds\.order_shipped\.whatsapp_template: .*needs delivery_date"
    ):
        check_templates(unfillable, templates, "n.yml")


def test_a_wrong_templates_file_stops_a_process_at_start(tmp_path: Path):
    broken = yaml.safe_load(DEFAULT_TEMPLATES.read_text(encoding="utf-8"))
    broken["templates"]["gestion_novedades"]["variables"] = ["management_id", "order_id"]
    path = tmp_path / "templates.yml"
    path.write_text(yaml.safe_dump(broken, allow_unicode=True), encoding="utf-8")
    settings = Settings.from_env(
        {"WHATSAPP_TEMPLATES": str(path), "DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"}
    )
    with pytest.raises(TemplatesError, match=rf"^{path}: templates\.gestion_novedades\.variables"):
        build_wiring(settings, FixedClock(NOW))


def test_a_notification_rule_naming_an_unknown_template_stops_the_notification_worker(tmp_path: Path):
    raw = yaml.safe_load(DEFAULT_RULES.read_text(encoding="utf-8"))
    raw["kinds"]["order_shipped"]["whatsapp_template"] = "pedido_enviado"  # not declared
    path = tmp_path / "notifications.yml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    settings = Settings.from_env(
        {"NOTIFY_RULES": str(path), "DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"}
    )
    with pytest.raises(
        TemplatesError,
        match=rf"^{path}: kinds\.order_shipped\.whatsapp_template: no template named 'pedido_enviado'",
    ):
        build_notification_worker(build_wiring(settings, FixedClock(NOW)))


PAY_TEMPLATE = {
    "content_sid": SID, "language": "es", "text": "Tu factura {{1}} vence pronto.",
    "variables": ["invoice_id"],
    "quick_replies": [
        {"title": "Pagar ahora", "payload": "/make_payment", "opens": "pay", "id": "{{2}}"},
        {"title": "Ya pagué", "payload": "/report_payment"},
    ],
}  # fmt: skip


def test_a_button_that_opens_a_flow_carries_the_signed_link_in_its_id_variable():
    template = parse_templates(catalog(factura=PAY_TEMPLATE), "t.yml", RESPONSES).get("factura")
    [reply] = template.link_replies
    assert (reply.opens, reply.id_variable) == (Flow.PAY, "2")
    link = '/follow_link{"link_token": "abc.def"}'
    assert template.content_variables({"invoice_id": "F-1", "link:pay": link}) == {"1": "F-1", "2": link}
    # No link signed (no IDENTITY_SECRET): the approved plain payload fills the id.
    assert template.content_variables({"invoice_id": "F-1"}) == {"1": "F-1", "2": "/make_payment"}
    # Longer than a quick reply's id may be once filled: the plain payload, never a refused send.
    assert template.content_variables({"invoice_id": "F-1", "link:pay": "x" * 201})["2"] == "/make_payment"


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        ({"title": "Pagar", "payload": "/make_payment", "opens": "pay", "id": "{{3}}"}, r'id: .*"\{\{2\}\}"'),
        ({"title": "Pagar", "payload": "/make_payment", "opens": "pay"}, r'id: .*"\{\{2\}\}"'),
        ({"title": "Pagar", "payload": "/make_payment", "opens": "menu", "id": "{{2}}"}, r"opens: one of"),
        ({"title": "Pagar", "payload": "/make_payment", "id": "{{2}}"}, r"id: only a reply that opens"),
    ],
)
def test_a_wrong_button_that_opens_a_flow_is_refused_with_what_to_write(reply, message):
    spec = {**PAY_TEMPLATE, "quick_replies": [reply]}
    with pytest.raises(TemplatesError, match=rf"templates\.factura\.quick_replies\[0\]\.{message}"):
        parse_templates(catalog(factura=spec), "t.yml", RESPONSES)


def test_a_template_with_a_link_button_stands_only_for_notifications():
    reply = {"title": "Pagar ahora", "payload": "/make_payment", "opens": "pay", "id": "{{1}}"}
    spec = {
        **PAY_TEMPLATE,
        "variables": [],
        "text": "Tienes una factura por vencer.",
        "quick_replies": [reply],
    }
    raw = catalog(factura=spec)
    raw["uses"] = {"console_reply": "factura"}
    with pytest.raises(TemplatesError, match=r"uses\.console_reply: template 'factura' has a quick reply"):
        parse_templates(raw, "t.yml", RESPONSES)


def test_a_rule_whose_template_opens_a_flow_the_rule_does_not_offer_is_refused():
    templates = parse_templates(catalog(factura=PAY_TEMPLATE), "t.yml", RESPONSES)
    text = "Tu factura {invoice_id} vence pronto."
    plain = parse_rules({"kinds": {"invoice_due_soon": {"text": text, "whatsapp_template": "factura"}}})
    with pytest.raises(TemplatesError, match=r"quick reply 'Pagar ahora' opens pay, but no quick reply"):
        check_templates(plain, templates, "n.yml")
    reply = {"title": "Pagar ahora", "payload": "/make_payment", "opens": "pay"}
    offered = {"text": text, "whatsapp_template": "factura", "quick_replies": [reply]}
    check_templates(parse_rules({"kinds": {"invoice_due_soon": offered}}), templates, "n.yml")


def test_the_shipped_placeholder_sids_stop_a_production_process_that_would_send_them(tmp_path: Path, caplog):
    database = {"DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"}
    twilio = {"TWILIO_ACCOUNT_SID": "AC" + "1" * 32, "TWILIO_AUTH_TOKEN": "secret"}
    with pytest.raises(
        TemplatesError, match=r"placeholder SIDs, not your account's: .*novedades_cuenta"
    ) as refused:
        build_wiring(Settings.from_env({**database, **twilio}), FixedClock(NOW))
    assert "Content Template Builder" in str(refused.value) and "docs/notifications.md" in str(refused.value)
    # Development keeps working, and says so in the log; so does production without Twilio.
    build_wiring(Settings.from_env({**database, **twilio, "BOT_ENV": "development"}), FixedClock(NOW))
    assert "placeholder SIDs (fine in development)" in caplog.text
    build_wiring(Settings.from_env(database), FixedClock(NOW))
    # Real SIDs in the operator's own file: production starts.
    real = yaml.safe_load(DEFAULT_TEMPLATES.read_text(encoding="utf-8"))
    for number, spec in enumerate(real["templates"].values()):
        spec["content_sid"] = f"HX{number:02d}" + "9f" * 15
    path = tmp_path / "templates.yml"
    path.write_text(yaml.safe_dump(real, allow_unicode=True), encoding="utf-8")
    build_wiring(Settings.from_env({**database, **twilio, "WHATSAPP_TEMPLATES": str(path)}), FixedClock(NOW))
