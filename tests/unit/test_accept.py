"""`make accept`: labelled inbox messages become training examples, and what must not never does.

The accepted file is written under tmp_path; data/, domain.yml and the held-out set are only read.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import yaml

from bot.masking import CARD_MASK
from bot.training_examples import nlu_examples
from tests.conftest import CLOCK, NOW

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("accept_command", ROOT / "scripts" / "accept.py")
accept_command = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = accept_command
_spec.loader.exec_module(accept_command)

ZONE = "America/Mexico_City"
EXTERNAL_ROW = "oigan y la devolución de la plata de mi compra pa cuándo"


@pytest.fixture
def held_out(tmp_path) -> list[Path]:
    """The real held-out set, and an external set in a folder, as tests/nlu_external/ holds them."""
    external = tmp_path / "nlu_external"
    external.mkdir()
    (external / "argentina.yml").write_text(
        f'version: "3.1"\nnlu:\n- intent: order_status\n  examples: |\n    - {EXTERNAL_ROW}\n'
    )
    return [ROOT / "tests" / "nlu_holdout.yml", external]


def inbox_file(tmp_path: Path, *entries: dict) -> Path:
    path = tmp_path / "inbox" / "2026-11-26.yml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(yaml.safe_dump({"messages": list(entries)}, allow_unicode=True, sort_keys=False))
    return path


def accept(path: Path, target: Path, held_out: list[Path]):
    lines: list[str] = []
    outcome = accept_command.accept_file(path, target, CLOCK, ZONE, held_out=held_out, say=lines.append)
    return outcome, lines


def test_labelled_messages_are_added_grouped_by_intent_with_their_source(tmp_path, held_out):
    target = tmp_path / "nlu" / "inbox_accepted.yml"
    path = inbox_file(
        tmp_path,
        {"text": "che y lo mío pa cuándo cae", "why": "clarified", "label": "order_status"},
        {"text": "me cobraron doble la compra del finde", "why": "fallback", "label": "check_balance"},
        {"text": "se me pasó la fecha de la cuota ayer, cuánto es con recargo", "label": "check_balance"},
        {"text": "llegan con el envio hasta un pueblito de cordoba?", "label": "faq/zonas_cobertura"},
        {"text": "y esto qué es", "skip": True},
        {"text": "no sé qué poner acá", "label": None},
    )
    outcome, lines = accept(path, target, held_out)
    assert outcome.added == {
        "order_status": ["che y lo mío pa cuándo cae"],
        "check_balance": [
            "me cobraron doble la compra del finde",
            "se me pasó la fecha de la cuota ayer, cuánto es con recargo",
        ],
        "faq/zonas_cobertura": ["llegan con el envio hasta un pueblito de cordoba?"],
    }
    assert (outcome.skipped, outcome.unlabelled, outcome.refused) == (1, 1, [])
    written = target.read_text()
    assert written.startswith('version: "3.1"')
    assert f"# from {path}, accepted {NOW.date().isoformat()} (make accept)" in written
    assert nlu_examples(target)["check_balance"] == outcome.added["check_balance"]
    assert any("make validate" in line and "make train" in line for line in lines)


def test_the_accepted_file_is_training_data_rasa_reads(tmp_path, held_out):
    from rasa.shared.nlu.training_data.loading import load_data

    target = tmp_path / "nlu" / "inbox_accepted.yml"
    path = inbox_file(
        tmp_path,
        {"text": "quiero ver el pedido [PED-2040](order_id) q onda", "label": "order_status"},
        {"text": "dale, mandame el link xa pagar ya mismo", "label": "make_payment"},
    )
    accept(path, target, held_out)
    data = load_data(str(target))
    assert {(m.get("text"), m.get("intent")) for m in data.intent_examples} == {
        ("quiero ver el pedido PED-2040 q onda", "order_status"),
        ("dale, mandame el link xa pagar ya mismo", "make_payment"),
    }
    assert data.entity_examples[0].get("entities")[0]["entity"] == "order_id"


@pytest.mark.parametrize(
    "text",
    [
        "HOLA BUENAS TARDES",  # a row of tests/nlu_holdout.yml as written
        "Hola,  buenas   tardes!",  # the same after case, punctuation and spaces
        "holá buenas tárdes",  # and accents
        EXTERNAL_ROW.upper(),  # a row of an external held-out set
    ],
)
def test_a_duplicate_of_a_held_out_row_is_refused(tmp_path, held_out, text):
    target = tmp_path / "inbox_accepted.yml"
    outcome, lines = accept(inbox_file(tmp_path, {"text": text, "label": "greet"}), target, held_out)
    assert outcome.added == {}
    one_line = " ".join(text.split())
    assert [refusal.text for refusal in outcome.refused] == [one_line]
    assert "held-out" in outcome.refused[0].reason
    assert any(one_line in line for line in lines)
    assert not target.exists()


@pytest.mark.parametrize(
    ("label", "why"),
    [
        ("order_tracking", "not an intent of domain.yml"),
        ("card_data", "set by the channel"),
        ("faq", "needs its topic"),
        ("faq/horario_de_la_luna", "no answer"),
    ],
)
def test_a_label_that_is_not_an_intent_the_model_learns_is_refused(tmp_path, held_out, label, why):
    target = tmp_path / "inbox_accepted.yml"
    outcome, _ = accept(
        inbox_file(tmp_path, {"text": "donde queda mi paquetito azul", "label": label}), target, held_out
    )
    assert outcome.added == {}
    assert why in outcome.refused[0].reason


@pytest.mark.parametrize(
    "text",
    [
        f"mi tarjeta es {CARD_MASK} y no me deja pagar",
        "pago con 4111 1111 1111 1111 y no pasa",
        "el cvv es 123 y la rechaza",
    ],
)
def test_card_data_never_becomes_an_example(tmp_path, held_out, text):
    target = tmp_path / "inbox_accepted.yml"
    outcome, _ = accept(inbox_file(tmp_path, {"text": text, "label": "make_payment"}), target, held_out)
    assert outcome.added == {}
    assert "card data" in outcome.refused[0].reason


@pytest.mark.parametrize(
    "text", ["el codigo era [dato oculto] y no funciona", "llamame al [teléfono oculto] xfa"]
)
def test_a_masked_value_must_be_replaced_before_it_becomes_an_example(tmp_path, held_out, text):
    target = tmp_path / "inbox_accepted.yml"
    outcome, _ = accept(inbox_file(tmp_path, {"text": text, "label": "help"}), target, held_out)
    assert outcome.added == {}
    assert "invented number" in outcome.refused[0].reason


def test_an_entity_mark_must_name_an_entity_of_the_domain(tmp_path, held_out):
    target = tmp_path / "inbox_accepted.yml"
    entry = {"text": "cambiame el [martes](dia) la entrega", "label": "reschedule_delivery"}
    outcome, _ = accept(inbox_file(tmp_path, entry), target, held_out)
    assert "'dia'" in outcome.refused[0].reason


def test_accepting_the_same_file_twice_adds_nothing_the_second_time(tmp_path, held_out):
    target = tmp_path / "nlu" / "inbox_accepted.yml"
    path = inbox_file(
        tmp_path,
        {"text": "ya te pase la plata x transferencia ayer", "label": "report_payment"},
        {"text": "nada de esto, otra cosa", "label": "no_such_intent"},
    )
    first, _ = accept(path, target, held_out)
    after_first = target.read_text()
    second, lines = accept(path, target, held_out)
    assert first.added_count == 1 and second.added_count == 0
    assert second.already == [("ya te pase la plata x transferencia ayer", "report_payment")]
    assert len(second.refused) == 1
    assert target.read_text() == after_first
    assert any("1 already there" in line for line in lines)


def test_a_text_already_trained_under_another_intent_is_refused(tmp_path, held_out):
    # "dnd esta mi pedio" is an order_status example of data/nlu/orders.yml.
    target = tmp_path / "inbox_accepted.yml"
    outcome, _ = accept(
        inbox_file(tmp_path, {"text": "DND ESTA MI PEDIO", "label": "help"}), target, held_out
    )
    assert outcome.added == {}
    assert "already a training example of order_status" in outcome.refused[0].reason


def test_the_same_text_twice_in_one_file_is_added_once(tmp_path, held_out):
    target = tmp_path / "inbox_accepted.yml"
    path = inbox_file(
        tmp_path,
        {"text": "me llegó roto el florero", "label": "return_request"},
        {"text": "Me llegó roto el florero!", "label": "return_request"},
    )
    outcome, _ = accept(path, target, held_out)
    assert outcome.added == {"return_request": ["me llegó roto el florero"]}


def test_a_file_that_is_not_an_inbox_is_refused_whole(tmp_path, held_out):
    path = tmp_path / "x.yml"
    path.write_text("nlu: []\n")
    with pytest.raises(ValueError, match="not an inbox file"):
        accept(path, tmp_path / "inbox_accepted.yml", held_out)


def test_an_unreadable_held_out_file_stops_everything(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text("- just\n- a list\n")
    path = inbox_file(tmp_path, {"text": "un mensaje cualquiera de prueba", "label": "help"})
    with pytest.raises(ValueError, match="not Rasa NLU YAML"):
        accept(path, tmp_path / "inbox_accepted.yml", [broken])
