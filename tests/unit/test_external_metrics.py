"""The external NLU check's numbers (scripts/nlu_metrics.py) on a hand-made confusion, and the
rules its sources keep (tests/nlu_external/): no model is loaded here."""

import importlib
import sys
from pathlib import Path

import pytest
import yaml

import tests.unit.test_training_data as training

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "scripts"
if str(SCRIPTS) not in sys.path:
    sys.path.insert(0, str(SCRIPTS))  # as `python scripts/stack.py` has it
metrics = importlib.import_module("nlu_metrics")
external_check = importlib.import_module("external_check")
P = metrics.Prediction
SOURCES = sorted((ROOT / "tests" / "nlu_external").glob("*.yml"))

# truth, answered intent (after the fallback), best intent before it, its confidence
CONFUSION = [
    P("1", "order_status", "order_status", "order_status", 0.90),  # right
    P("2", "order_status", "cancel_order", "cancel_order", 0.80),  # misrouted, confidently
    P("3", "order_status", "nlu_fallback", "cancel_order", 0.30),  # misrouted, but asked
    P("4", "cancel_order", "cancel_order", "cancel_order", 0.95),  # right
    P("5", "out_of_scope", "out_of_scope", "out_of_scope", 0.70),  # right
    P("6", "out_of_scope", "order_status", "order_status", 0.60),  # off-topic into a store flow
    P("7", "out_of_scope", "nlu_fallback", "faq", 0.20),  # off-topic, asked
]


def test_macro_f1_is_the_mean_over_the_sources_labels():
    numbers = metrics.score(CONFUSION, threshold=0.4)
    rows = numbers["per_label"]
    # order_status: 1 hit of 2 predicted, of 3 true; cancel_order: 1 of 2, of 1; out_of_scope: 1 of 1, of 3
    assert rows["order_status"]["precision"] == pytest.approx(1 / 2)
    assert rows["order_status"]["recall"] == pytest.approx(1 / 3)
    assert rows["order_status"]["f1"] == pytest.approx(0.4)
    assert rows["cancel_order"]["f1"] == pytest.approx(2 / 3)
    assert rows["out_of_scope"]["f1"] == pytest.approx(0.5)
    assert set(rows) == {"order_status", "cancel_order", "out_of_scope"}  # nlu_fallback is no label
    assert numbers["macro_f1"] == pytest.approx((0.4 + 2 / 3 + 0.5) / 3)
    assert numbers["accuracy"] == pytest.approx(3 / 7)


def test_off_topic_recall_and_in_scope_precision():
    numbers = metrics.score(CONFUSION, threshold=0.4)
    assert numbers["out_of_scope_recall"] == pytest.approx(1 / 3)  # the fallback is not a recall
    # Four messages started a store flow (1, 2, 4, 6); one of them was off-topic.
    assert numbers["in_scope_precision"] == pytest.approx(3 / 4)
    assert numbers["fallback_rate"] == pytest.approx(2 / 7)


def test_confident_misroutes_count_only_what_the_fallback_let_through():
    numbers = metrics.score(CONFUSION, threshold=0.4)
    assert (numbers["misrouted_in_scope"], numbers["confident_misroutes"]) == (2, 1)
    assert numbers["confident_misroutes_of_in_scope"] == pytest.approx(1 / 4)
    assert numbers["confident_misroutes_of_misrouted"] == pytest.approx(1 / 2)


def test_an_ambiguity_fallback_above_the_threshold_is_not_a_confident_misroute():
    asked = [P("x", "make_payment", "nlu_fallback", "check_balance", 0.55)]
    numbers = metrics.score(asked, threshold=0.4)
    assert (numbers["misrouted_in_scope"], numbers["confident_misroutes"]) == (1, 0)


def test_a_source_without_off_topic_messages_has_no_recall_to_report():
    numbers = metrics.score(CONFUSION[:4], threshold=0.4)
    assert numbers["out_of_scope_recall"] is None
    assert numbers["in_scope_precision"] == 1.0


def test_missing_intents_are_reported_by_where_they_go():
    rows = [
        P("a", "refund_status", "order_status", "order_status", 0.9),
        P("b", "refund_status", "human_handoff", "human_handoff", 0.9),
        P("c", "payment_problem", "nlu_fallback", "make_payment", 0.3),
        P("d", "payment_problem", "make_payment", "make_payment", 0.35),
    ]
    where = metrics.destinations(rows, threshold=0.3)
    assert where["predicted"] == {"order_status": 1, "human_handoff": 1, "nlu_fallback": 1, "make_payment": 1}
    assert where["fallback_rate"] == where["to_human_handoff"] == 0.25
    assert where["confidently_into_another_flow"] == 0.5  # a and d; a person is not "another flow"
    assert where["per_label"]["refund_status"] == {"order_status": 1, "human_handoff": 1}
    assert where["recognised"] == 0


def test_a_missing_intent_the_product_has_now_is_recognised_not_another_flow():
    rows = [
        P("a", "refund_status", "refund_status", "refund_status", 0.9),
        P("b", "refund_status", "order_status", "order_status", 0.9),
    ]
    where = metrics.destinations(rows, threshold=0.3)
    assert where["recognised"] == 0.5 and where["confidently_into_another_flow"] == 0.5


def test_a_missing_intents_file_finds_the_gated_source_it_belongs_to():
    gated = {"bitext_es_translated": {}, "written_independent": {}}
    assert external_check.partner_of("bitext_es_missing_intents", gated) == "bitext_es_translated"
    assert external_check.partner_of("written_missing_intents", gated) == "written_independent"
    assert external_check.partner_of("other_missing_intents", gated) is None


def test_the_threshold_is_read_from_the_fallback_classifier(tmp_path):
    config = tmp_path / "config.yml"
    config.write_text(
        "pipeline:\n  - name: DIETClassifier\n  - name: FallbackClassifier\n    threshold: 0.55\n"
    )
    assert external_check.fallback_threshold(config) == 0.55
    config.write_text("pipeline:\n  - name: DIETClassifier\n")
    with pytest.raises(SystemExit):
        external_check.fallback_threshold(config)
    pipeline = yaml.safe_load((ROOT / "config.yml").read_text())["pipeline"]
    ours = next(c for c in pipeline if c["name"] == "FallbackClassifier")
    assert external_check.fallback_threshold() == ours.get("threshold", 0.3)


@pytest.mark.parametrize("path", SOURCES, ids=lambda path: path.stem)
def test_every_source_says_where_it_comes_from_and_its_licence(path):
    header = path.read_text().split("\nversion:")[0]
    assert "Licence:" in header and ("Where it comes from" in header or "NOTICE" in header)


# Stock phrases of written_independent.yml that were already training examples when it was
# written (2026-11-30) by a helper that never opened data/: customers do type them, so they stay.
# The list only shrinks; any other external message found in data/ fails the test below.
COINCIDED_WHEN_WRITTEN = {
    "dios le pague", "sos un bot", "esto es automatico", "que puedes hacer", "en que me podes ayudar",
    "como funciona esto", "quiero cancelar mi pedido", "quiero devolver un producto", "ya esta pagado",
    "donde descargo mi factura", "quiero cambiar mi correo", "cambie de numero de telefono",
    "pasame con un humano", "basta de mensajes", "cual es la politica de devoluciones",
    "tienen tienda fisica", "cuando es el proximo feriado", "hace frio en santiago",
    "cual es tu comida favorita",
}  # fmt: skip


def test_external_messages_are_not_copied_into_training_data():
    """Copying an external message into data/ would make the check a test of memory."""
    trained = {training.plain(e) for examples in training.TRAINING.values() for e in examples}
    leaked = [
        (path.name, example)
        for path in SOURCES
        for examples in training.examples_by_intent(path).values()
        for example in examples
        if len(training.plain(example).split()) > 2
        and training.plain(example) in trained
        and training.plain(example) not in COINCIDED_WHEN_WRITTEN
    ]
    assert not leaked, f"{len(leaked)} external messages are also training examples: {leaked}"
