"""Spanish labels for internal names and canned replies in the agents' console (issue 18): the
shipped files are complete and valid, and a broken one says what to fix."""

from __future__ import annotations

import pytest

from bot.returns import HANDOVERS, Reason, Resolution
from connectors.console.canned import CannedError, CannedReply, conversation_values, fill, load_canned
from connectors.console.labels import DOMAIN_FILE, domain_names, load_labels

BUILT_IN_ACTIONS = {"action_restart", "action_default_fallback", "action_two_stage_fallback"}


@pytest.mark.parametrize("kind", ["intents", "actions", "forms", "slots"])
def test_every_name_of_the_domain_has_a_spanish_label(kind):
    labels = getattr(load_labels(), kind)
    declared = domain_names(DOMAIN_FILE)[kind]
    missing = sorted(declared - set(labels))
    assert not missing, f"add to connectors/console/labels.yml under {kind}: {missing}"


def test_labels_read_as_the_agent_expects():
    labels = load_labels()
    assert labels.intent("order_status") == "Estado de pedido"
    assert labels.step("action_order_status") == "Consultó el estado del pedido"
    assert labels.step("reschedule_form") == "Trámite: Cambio de fecha de entrega"
    greet = labels.step("utter_greet")
    assert greet.startswith("Respondió: «") and greet.endswith("»") and len(greet) <= 60 + 14
    # An unknown name is shown as it is, never hidden.
    assert labels.step("action_nueva") == "action_nueva" and labels.intent(None) == "—"


def test_a_case_detail_reads_in_spanish_with_its_codes():
    labels = load_labels()
    assert labels.detail("reason") == "Motivo"
    assert labels.detail_value("changed_mind", "reason") == "Ya no lo quiere"
    assert labels.detail_value("voucher", "resolution") == "Vale de compra"
    assert labels.detail_value("order_status", "intent") == "Estado de pedido"
    assert labels.detail("media_url_2") == "Foto o archivo 2"
    # What the customer wrote, an unknown detail or an unknown code is shown as it is.
    assert labels.detail_value("changed_mind", "text") == "changed_mind"
    assert labels.detail("nuevo_dato") == "nuevo_dato" and labels.detail_value("otro", "reason") == "otro"


@pytest.mark.parametrize(
    ("detail", "codes"),
    [
        ("reason", [reason.value for reason in Reason]),
        ("resolution", [resolution.value for resolution in Resolution]),
        ("handover", list(HANDOVERS)),
    ],
)
def test_every_code_a_return_case_stores_has_its_spanish(detail, codes):
    values = load_labels().case_details[detail]["values"]
    missing = sorted(set(codes) - set(values))
    assert not missing, f"add to connectors/console/labels.yml under case_details.{detail}.values: {missing}"


def test_the_shipped_canned_replies_are_valid():
    replies = load_canned()
    assert len(replies) >= 5 and len({reply.id for reply in replies}) == len(replies)


def write(tmp_path, text: str):
    path = tmp_path / "canned.yml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_broken_canned_file_lists_every_problem(tmp_path):
    path = write(
        tmp_path,
        """replies:
  - {id: a, title: A, text: "Hola {nombre}"}
  - {id: a, title: B, text: "Otra"}
  - {id: c, title: C}
""",
    )
    with pytest.raises(CannedError) as error:
        load_canned(path)
    message = str(error.value)
    assert "unknown variable(s) {nombre}" in message and "{cliente}" in message
    assert "the id 'a' is used twice" in message
    assert "reply 3: id, title and text are all required" in message


def test_fill_leaves_out_what_the_conversation_does_not_know():
    reply = CannedReply("x", "X", "Hola {cliente}, soy {agente}. ¿Seguimos con {pedido}?")
    assert fill(reply, {"cliente": "Mariana", "agente": "ana", "pedido": "PED-1"}) == (
        "Hola Mariana, soy ana. ¿Seguimos con PED-1?"
    )
    assert fill(reply, {"agente": "ana"}) == "Hola, soy ana. ¿Seguimos con?"


def test_conversation_values_come_from_the_packet():
    values = conversation_values(
        {"customer": {"name": "Julián Pereyra"}, "slots": {"reschedule_order": "PED-7"}}, "ana", "HO-1"
    )
    assert values == {"cliente": "Julián", "agente": "ana", "gestion": "HO-1", "pedido": "PED-7"}
    assert conversation_values({}, "ana", "HO-1")["cliente"] == ""
