"""How bitext_translation.tsv's rows were drawn from the Bitext customer-support set.

    # in a clone of github.com/bitext/customer-support-llm-chatbot-training-dataset:
    git show 337b96868e02b40a05f9c0df3290c65a15ea573e:data/train/\
    Bitext_Sample_Customer_Support_Training_Dataset.csv > bitext.csv
    .venv/bin/python tests/nlu_external/sources/sample_bitext.py bitext.csv > sample.tsv

Per intent, the rows ordered by sha1("issue16:" + text), the first N distinct texts: the same
rows every time, chosen by nobody's taste. The English rows were then translated by hand.
"""

from __future__ import annotations

import csv
import hashlib
import re
import sys

PLAN = {
    "cancel_order": 20, "track_order": 20, "check_invoice": 10, "get_invoice": 10, "get_refund": 20,
    "check_payment_methods": 8, "check_refund_policy": 8, "delivery_options": 8,
    "contact_human_agent": 20, "change_shipping_address": 20, "newsletter_subscription": 15,
    "track_refund": 12, "payment_issue": 12,
}  # fmt: skip


def order(text: str) -> str:
    return hashlib.sha1(("issue16:" + text).encode(), usedforsecurity=False).hexdigest()


def sample(rows: list[dict[str, str]]) -> list[tuple[str, str]]:
    chosen: list[tuple[str, str]] = []
    for intent, wanted in PLAN.items():
        pool = [row for row in rows if row["intent"] == intent]
        if intent == "newsletter_subscription":  # only the rows that ask to stop it
            pool = [row for row in pool if re.search(r"unsubscri|cancel", row["instruction"], re.I)]
        pool.sort(key=lambda row: order(row["instruction"]))
        seen: set[str] = set()
        for row in pool:
            text = row["instruction"].strip()
            if text.lower() in seen:
                continue
            seen.add(text.lower())
            chosen.append((intent, text))
            if len(seen) == wanted:
                break
    return chosen


def main() -> None:
    with open(sys.argv[1], newline="") as handle:
        rows = list(csv.DictReader(handle))
    writer = csv.writer(sys.stdout, delimiter="\t", lineterminator="\n")
    for number, (intent, text) in enumerate(sample(rows), 1):
        writer.writerow([number, intent, text])


if __name__ == "__main__":
    main()
