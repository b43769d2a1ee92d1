"""Writes bitext_es_translated.yml from bitext_translation.tsv.

Run from the repository root after editing a translation:
    .venv/bin/python tests/nlu_external/sources/build_bitext_yaml.py
A translation that repeats another one under the same label is written once.
"""

from __future__ import annotations

import csv
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE.parent

HEADER = """\
# External NLU check, source "{name}" ({gated}).
#
# NOTICE (CDLA-Sharing-1.0, section 3.1(b)): this file CHANGES the data it comes from. It holds
#   Spanish translations, made by the issue-16 helper session (an AI assistant) on 2026-11-30,
#   of a deterministic sample of the customer requests ("instruction" column) of:
#     "Bitext Sample Customer Support Training Dataset", by Bitext Innovations International,
#     github.com/bitext/customer-support-llm-chatbot-training-dataset, file
#     data/train/Bitext_Sample_Customer_Support_Training_Dataset.csv at commit
#     337b96868e02b40a05f9c0df3290c65a15ea573e (2023-09-19; the file was moved out of the
#     repository in the next commit).
#   Changes: sampled (sources/sample_bitext.py: per intent, rows ordered by sha1 of
#   "issue16:" + text, first N distinct), translated into Latin-American Spanish (typos of the
#   original kept as Spanish typos, placeholder-free), relabelled with the product's intents
#   by the table below, duplicates after translation dropped. Every row, with its English
#   original, is in sources/bitext_translation.tsv.
# Licence: Community Data License Agreement - Sharing - Version 1.0; this file is published
#   under the same agreement, whose full text is tests/nlu_external/LICENSE-CDLA-Sharing-1.0.txt.
# Label mapping (Bitext intent -> product intent):
#   cancel_order -> cancel_order            track_order -> order_status
#   check_invoice, get_invoice -> request_invoice
#   get_refund -> return_request (a customer asking for money back is taken into the return flow)
#   check_payment_methods, check_refund_policy, delivery_options -> faq
#   contact_human_agent -> human_handoff    change_shipping_address -> update_contact_data
#   newsletter_subscription, only the rows asking to unsubscribe or cancel -> opt_out
#   track_refund -> refund_status, payment_issue -> payment_problem (kept apart in
#     bitext_es_missing_intents.yml until the intents existed; moved here on 2026-12-01)
#   Dropped, no honest counterpart: delivery_period (half "when does MY order arrive", half the
#   shipping-time FAQ), contact_customer_service (half "talk to someone", half opening hours),
#   check_cancellation_fee (subscription termination fees), set_up_shipping_address,
#   edit_account, create_account, delete_account, switch_account, recover_password,
#   registration_problems, place_order, change_order, complaint, review. None is mapped to
#   out_of_scope: they are store requests, just not ones the product has a label for.
# The set has no out_of_scope rows, so its out-of-scope recall is not defined.
version: "3.1"
nlu:
"""


def write(path: Path, name: str, gated: str, rows: list[tuple[str, str]]) -> None:
    by_label: dict[str, list[str]] = {}
    for label, text in rows:
        texts = by_label.setdefault(label, [])
        if text not in texts:
            texts.append(text)
    lines = [HEADER.format(name=name, gated=gated)]
    for label, texts in by_label.items():
        lines.append(f"- intent: {label}\n  examples: |\n")
        lines.extend(f"    - {text}\n" for text in texts)
    path.write_text("".join(lines))


def main() -> None:
    with (HERE / "bitext_translation.tsv").open(newline="") as handle:
        table = list(csv.DictReader(handle, delimiter="\t"))
    rows = [(r["product_label"], r["translation_es"]) for r in table]
    write(OUT / "bitext_es_translated.yml", "bitext_es_translated", "gated by `make evaluate`", rows)


if __name__ == "__main__":
    main()
