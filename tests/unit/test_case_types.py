"""The case catalogue (bot/case_types.yml): every type the issue names, every kind the bot opens
mapped to one, and a broken file refused with its name and the key to fix."""

from __future__ import annotations

import copy
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

from bot.case_types import CATALOGUE, CaseCatalogueError, load_catalogue, parse_catalogue
from bot.records import Case, CaseKind

ROOT = Path(__file__).resolve().parents[2]
OPENED = datetime(2026, 11, 20, 15, 0, tzinfo=timezone.utc)
RAW = yaml.safe_load(CATALOGUE.read_text(encoding="utf-8"))


def a_case(kind: CaseKind, **details: str) -> Case:
    return Case("GES-7F3K2Q9M", kind, "+525512345678", "+525512345678", dict(details), OPENED)


def test_the_catalogue_declares_every_type_in_spanish_with_sla_team_and_next_step():
    catalogue = load_catalogue()
    assert set(catalogue.types) == {
        "cancellation", "return", "exchange", "refund", "receipt_review", "payment_problem",
        "wrong_or_damaged_item", "address_problem", "generic",
    }  # fmt: skip
    for case_type in catalogue.types.values():
        assert case_type.label and case_type.team and case_type.required
        assert case_type.sla_hours >= 1
        assert case_type.next_step.endswith(".")
    assert catalogue.types["return"].label == "Devolución"


@pytest.mark.parametrize(
    ("kind", "type_id"),
    [
        (CaseKind.CANCEL_ORDER, "cancellation"),
        (CaseKind.RETURN_REQUEST, "return"),
        (CaseKind.REFUND_STATUS, "refund"),
        (CaseKind.PAYMENT_RECEIPT, "receipt_review"),
        (CaseKind.PAYMENT_PROBLEM, "payment_problem"),
        (CaseKind.PAYMENT_REVIEW, "payment_problem"),
        (CaseKind.ORDER_NOT_ARRIVED, "address_problem"),
        (CaseKind.HUMAN_HANDOFF, "generic"),
        (CaseKind.FAILED_WRITE, "generic"),
    ],
)
def test_every_kind_the_bot_opens_has_its_type(kind, type_id):
    assert load_catalogue().type_of(a_case(kind)).id == type_id


def test_a_wrong_item_opened_as_a_return_is_typed_by_its_intent():
    catalogue = load_catalogue()
    case = a_case(CaseKind.RETURN_REQUEST, intent="wrong_or_damaged_item", order_id="PED-1001")
    assert catalogue.type_of(case).id == "wrong_or_damaged_item"
    assert catalogue.type_of(a_case(CaseKind.RETURN_REQUEST, intent="return_request")).id == "return"


def test_the_due_moment_is_the_opening_plus_the_sla_and_missing_data_is_named():
    refund = load_catalogue().types["refund"]
    assert refund.due_at(a_case(CaseKind.REFUND_STATUS)) == OPENED + timedelta(hours=refund.sla_hours)
    assert refund.missing(a_case(CaseKind.REFUND_STATUS)) == ["número de pedido"]
    assert refund.missing(a_case(CaseKind.REFUND_STATUS, order_id="PED-1001")) == []


def broken(change) -> str:
    raw = copy.deepcopy(RAW)
    change(raw)
    with pytest.raises(CaseCatalogueError) as caught:
        parse_catalogue(raw, Path("bot/case_types.yml"))
    return str(caught.value)


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda raw: raw["types"]["refund"].pop("sla_hours"), "types.refund.sla_hours: is missing"),
        (lambda raw: raw["types"]["refund"].update(sla_hours="dos días"), "types.refund.sla_hours"),
        (lambda raw: raw["types"]["refund"].update(sla_hours=0), "types.refund.sla_hours"),
        (lambda raw: raw["types"]["refund"].update(label="  "), "types.refund.label"),
        (lambda raw: raw["types"]["refund"].update(colour="red"), "types.refund.colour: unknown field"),
        (
            lambda raw: raw["types"]["refund"].update(kinds=["refund_status", "refunds"]),
            "'refunds' is not a case kind",
        ),
        (
            lambda raw: raw["types"]["exchange"].update(kinds=["refund_status"]),
            "refund_status is already a kind of",
        ),
        (lambda raw: raw["types"]["refund"].update(kinds=[]), "no type lists the case kind(s) refund_status"),
        (lambda raw: raw["types"].pop("generic"), "types.generic"),
        (lambda raw: raw["types"]["refund"].update(required=[]), "types.refund.required"),
        (lambda raw: raw.pop("types"), "types"),
        (
            lambda raw: raw["customer_updates"].update(closed="Cerramos {id}"),
            "customer_updates.closed: not a status the customer is told of",
        ),
        (
            lambda raw: raw["customer_updates"].update(resolved="Listo {id} para {cliente}"),
            "customer_updates.resolved: {cliente} is not known",
        ),
        (
            lambda raw: raw["customer_updates"].update(resolved="Listo {id"),
            "customer_updates.resolved: a brace",
        ),
        (lambda raw: raw.update(customer_updates=["hola"]), "customer_updates: must map statuses"),
    ],
)
def test_a_broken_catalogue_names_the_file_and_the_key(change, named):
    message = broken(change)
    assert message.startswith("bot/case_types.yml: ")
    assert named in message


def test_a_designer_adds_a_type_without_python():
    raw = copy.deepcopy(RAW)
    raw["types"]["warranty"] = {
        "label": "Garantía",
        "sla_hours": 96,
        "team": "servicio técnico",
        "required": {"order_id": "número de pedido"},
        "next_step": "Un técnico revisa tu producto.",
        "kinds": [],
    }
    assert parse_catalogue(raw).types["warranty"].label == "Garantía"


def test_make_validate_refuses_a_broken_catalogue_and_names_its_key(tmp_path):
    raw = copy.deepcopy(RAW)
    raw["types"]["return"]["sla_hours"] = -3
    bad = tmp_path / "case_types.yml"
    bad.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    check = [sys.executable, str(ROOT / "scripts" / "case_types_check.py")]
    failed = subprocess.run([*check, str(bad)], capture_output=True, text=True, check=False)
    assert failed.returncode == 1 and "types.return.sla_hours" in failed.stderr
    passed = subprocess.run(check, capture_output=True, text=True, check=False)
    assert passed.returncode == 0, passed.stderr


def test_the_check_refuses_an_intent_the_domain_does_not_have(tmp_path):
    raw = copy.deepcopy(RAW)
    raw["types"]["exchange"]["intents"] = ["exchange_item"]
    bad = tmp_path / "case_types.yml"
    bad.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    script = str(ROOT / "scripts" / "case_types_check.py")
    failed = subprocess.run([sys.executable, script, str(bad)], capture_output=True, text=True, check=False)
    assert failed.returncode == 1 and "types.exchange.intents: exchange_item" in failed.stderr


def test_the_customer_is_told_of_a_status_in_the_catalogues_words_and_not_of_others():
    catalogue = load_catalogue()
    told = catalogue.update_for(a_case(CaseKind.CANCEL_ORDER), "in_progress")
    assert told.startswith("Ya estamos trabajando en tu gestión GES-7F3K2Q9M (Cancelación de pedido).")
    assert catalogue.update_for(a_case(CaseKind.CANCEL_ORDER), "open") is None
    raw = copy.deepcopy(RAW)
    del raw["customer_updates"]
    assert parse_catalogue(raw).update_for(a_case(CaseKind.CANCEL_ORDER), "in_progress") is None


def test_a_resolved_return_tells_the_refund_or_the_voucher_and_an_exchange_its_own_text():
    catalogue = load_catalogue()
    details = {"order_id": "PED-1011", "item": "Cafetera espresso"}
    refund = a_case(CaseKind.RETURN_REQUEST, **details, resolution="refund")
    voucher = a_case(CaseKind.RETURN_REQUEST, **details, resolution="voucher")
    exchange = a_case(CaseKind.EXCHANGE_REQUEST, **details, resolution="exchange")
    told = catalogue.update_for(refund, "resolved")
    assert "reembolsamos" in told and "PED-1011" in told and "Cafetera espresso" in told and refund.id in told
    assert "vale de compra" in catalogue.update_for(voucher, "resolved")
    assert "producto nuevo" in catalogue.update_for(exchange, "resolved")
    # another status of a return is the catalogue-wide text
    assert catalogue.update_for(refund, "in_progress") == catalogue.customer_updates["in_progress"].format(
        id=refund.id, label="Devolución"
    )
