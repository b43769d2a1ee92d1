"""Article files: parsing, the problems a designer is told (file:line, what, what to do), variants
and rendering per channel. Small articles are written here, independent of kb/."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from bot.kb import KBError, KnowledgeBase


def header(**fields: str) -> str:
    base = {
        "id": "medios-de-pago",
        "title": "Pagar con tarjeta, transferencia o efectivo",
        "short": "Aceptamos tarjeta de crédito y débito, transferencia y efectivo.",
        "countries": "[all]",
        "channels": "[all]",
        "tags": "[pagos]",
        "synonyms": "[formas de pago, como pago, con que puedo pagar]",
        "intent": "faq/medios_de_pago",
        "flow": "make_payment",
        "owner": "Equipo de Pagos",
        "last_reviewed": "2026-11-15",
        "link": "https://ayuda.tienda.example/medios-de-pago",
    }
    base.update(fields)
    return "\n".join(f"{key}: {value}" for key, value in base.items() if value is not None)


STEPS = """\
## Pasos
1. Elige el producto y toca «Pagar».
2. Elige tarjeta, transferencia o efectivo.
   Con efectivo recibes un código.

## Antes de empezar
- Ten a mano tu tarjeta.

## Si no funciona
Escríbenos y te ayudamos.
"""


def write(folder: Path, name: str, fields: dict | None = None, body: str = STEPS) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"---\n{header(**(fields or {}))}\n---\n{body}", encoding="utf-8")
    return path


def problems_of(folder: Path) -> list[str]:
    with pytest.raises(KBError) as caught:
        KnowledgeBase.load(folder, model=None)
    return [str(problem) for problem in caught.value.problems]


def test_an_article_is_read_with_every_field_and_section(tmp_path):
    write(tmp_path, "pagos/medios-de-pago.md")
    kb = KnowledgeBase.load(tmp_path, model=None)
    article = kb.get("medios-de-pago")
    assert article.title == "Pagar con tarjeta, transferencia o efectivo"
    assert article.steps == (
        "Elige el producto y toca «Pagar».",
        "Elige tarjeta, transferencia o efectivo. Con efectivo recibes un código.",
    )
    assert article.before == "- Ten a mano tu tarjeta."
    assert article.if_fails == "Escríbenos y te ayudamos."
    assert article.countries == ("all",) and article.channels == ("all",)
    assert article.synonyms == ("formas de pago", "como pago", "con que puedo pagar")
    assert article.intent == "faq/medios_de_pago" and article.flow == "make_payment"
    assert article.last_reviewed == date(2026, 11, 15) and article.review_days == 90
    assert article.path.endswith("pagos/medios-de-pago.md")
    assert [a.id for a in kb.articles] == ["medios-de-pago"]
    assert kb.get("no-existe") is None


def test_a_readme_in_the_folder_is_not_an_article(tmp_path):
    write(tmp_path, "medios-de-pago.md")
    (tmp_path / "README.md").write_text("# Cómo escribir artículos\n", encoding="utf-8")
    assert len(KnowledgeBase.load(tmp_path, model=None).articles) == 1


def test_sms_gets_the_short_answer_and_link_whatsapp_the_steps_too(tmp_path):
    write(tmp_path, "medios-de-pago.md")
    article = KnowledgeBase.load(tmp_path, model=None).get("medios-de-pago")
    assert article.render("sms") == (
        "Aceptamos tarjeta de crédito y débito, transferencia y efectivo.\nhttps://ayuda.tienda.example/medios-de-pago"
    )
    whatsapp = article.render("whatsapp")
    assert whatsapp == article.render(None)
    assert whatsapp.startswith("Aceptamos tarjeta")
    assert "\n1. Elige el producto" in whatsapp and "\n2. Elige tarjeta" in whatsapp
    assert whatsapp.endswith("https://ayuda.tienda.example/medios-de-pago")


def test_review_is_due_only_after_last_reviewed_plus_review_days(tmp_path):
    write(tmp_path, "medios-de-pago.md", {"review_days": "60"})
    article = KnowledgeBase.load(tmp_path, model=None).get("medios-de-pago")
    assert not article.review_due(date(2027, 1, 14))  # 2026-11-15 + 60 days
    assert article.review_due(date(2027, 1, 15))


def test_every_problem_is_listed_with_file_line_and_what_to_do(tmp_path):
    write(
        tmp_path,
        "medios-de-pago.md",
        {
            "short": "'" + "x" * 250 + "'",
            "countries": "[MX, BR]",
            "synonym": "[pago]",
            "review_days": "120",
            "last_reviewed": "ayer",
            "link": "ayuda.example",
        },
    )
    found = problems_of(tmp_path)
    text = "\n".join(found)
    assert all(line.startswith("medios-de-pago.md:") or "/medios-de-pago.md:" in line for line in found)
    assert "medios-de-pago.md:4: 'short' has 250 characters" in text
    assert ":5: 'countries' has 'BR': use MX, AR, PE, CO, CL or [all]" in text
    assert "unknown field 'synonym': did you mean 'synonyms'?" in text
    assert "'review_days' 120: use a whole number of days from 60 to 90" in text
    assert "'last_reviewed' 'ayer' is not a date" in text
    assert "'link' 'ayuda.example' must be the article's full address" in text


def test_missing_fields_and_steps_are_problems_of_a_base(tmp_path):
    write(tmp_path, "medios-de-pago.md", {"owner": None, "link": None}, body="## Antes de empezar\nNada.\n")
    text = "\n".join(problems_of(tmp_path))
    assert "'owner' is missing" in text and "'link' is missing" in text
    assert "'## Pasos' is missing" in text


def test_body_problems_point_at_their_line(tmp_path):
    body = "Texto suelto.\n## Pasos\nElige algo.\n## Requisitos\n- nada\n"
    write(tmp_path, "medios-de-pago.md", body=body)
    found = problems_of(tmp_path)
    header_lines = header().count("\n") + 3  # '---', the fields, '---'
    assert f"medios-de-pago.md:{header_lines + 1}: text outside a section" in "\n".join(found)
    assert any(f":{header_lines + 3}: under '## Pasos' write numbered steps" in line for line in found)
    assert any(f":{header_lines + 4}: unknown heading '## Requisitos'" in line for line in found)


def test_broken_yaml_and_wrong_file_name_are_reported(tmp_path):
    (tmp_path / "roto.md").write_text(
        "---\nid: roto\ntitle: [sin cerrar\n---\n## Pasos\n1. a\n", encoding="utf-8"
    )
    write(tmp_path, "otro-nombre.md")
    text = "\n".join(problems_of(tmp_path))
    assert (
        "roto.md:3: the YAML header cannot be read" in text
        or "roto.md:4: the YAML header cannot be read" in text
    )
    assert "id 'medios-de-pago' does not match the file name" in text


def test_more_than_one_emoji_is_refused(tmp_path):
    write(tmp_path, "medios-de-pago.md", {"short": "Pagas fácil 💳 y rápido 🚀"})
    assert any("more than 1 emoji" in line for line in problems_of(tmp_path))


def variant_fields(**fields: str) -> dict:
    cleared = dict.fromkeys(("tags", "synonyms", "intent", "flow", "owner", "last_reviewed", "link"))
    return {**cleared, **fields}


def test_the_country_variant_wins_and_omitted_fields_come_from_the_base(tmp_path):
    write(tmp_path, "medios-de-pago.md")
    write(
        tmp_path,
        "medios-de-pago.pe.md",
        variant_fields(countries="[PE]", short="En Perú pagas con tarjeta, Yape, Plin o PagoEfectivo."),
        body="## Pasos\n1. Elige Yape o Plin y escanea el QR.\n",
    )
    write(
        tmp_path,
        "medios-de-pago.sms.md",
        variant_fields(channels="[sms]", short="Paga con tarjeta o efectivo."),
        body="",
    )
    kb = KnowledgeBase.load(tmp_path, model=None)
    peru = kb.resolve("medios-de-pago", country="pe", channel="sms")
    assert peru.short.startswith("En Perú")  # a country match beats a channel match
    assert peru.owner == "Equipo de Pagos" and peru.flow == "make_payment"
    assert peru.steps == ("Elige Yape o Plin y escanea el QR.",)
    assert peru.path.endswith("medios-de-pago.pe.md")
    assert kb.resolve("medios-de-pago", country="MX", channel="sms").short == "Paga con tarjeta o efectivo."
    assert kb.resolve("medios-de-pago", country="MX", channel="sms").steps == kb.get("medios-de-pago").steps
    assert kb.resolve("medios-de-pago", country="MX", channel="whatsapp").short.startswith("Aceptamos")
    assert kb.resolve("medios-de-pago").short.startswith("Aceptamos")  # unknown country: the base
    assert [a.id for a in kb.articles] == ["medios-de-pago"]
    with pytest.raises(KeyError):
        kb.resolve("no-existe")


def test_variants_must_narrow_and_have_a_base(tmp_path):
    write(tmp_path, "medios-de-pago.md")
    write(tmp_path, "medios-de-pago.todo.md", variant_fields())
    write(tmp_path, "medios-de-pago.pe.md", variant_fields(countries="[PE]"))
    write(tmp_path, "medios-de-pago.peru.md", variant_fields(countries="[PE]"))
    write(tmp_path, "garantia.ar.md", variant_fields(id="garantia", countries="[AR]"))
    text = "\n".join(problems_of(tmp_path))
    assert "medios-de-pago.todo.md:5: a variant must narrow 'countries' and/or 'channels'" in text
    assert "covers the same countries and channels: merge them" in text
    assert "garantia.ar.md:2: variant of 'garantia' without a base article" in text


def test_duplicate_ids_are_refused(tmp_path):
    write(tmp_path, "a/medios-de-pago.md")
    write(tmp_path, "b/medios-de-pago.md")
    assert any("is already used by" in line for line in problems_of(tmp_path))


def test_a_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(KBError, match="does not exist"):
        KnowledgeBase.load(tmp_path / "nada")


def test_the_article_of_a_migrated_faq_topic_is_found_by_its_intent(tmp_path):
    write(tmp_path, "medios-de-pago.md")
    kb = KnowledgeBase.load(tmp_path, model=None)
    assert kb.by_intent("faq/medios_de_pago").id == "medios-de-pago"
    assert kb.by_intent("faq/garantia") is None
