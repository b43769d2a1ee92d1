"""Checks on the NLU training data (data/nlu/) that the issue's data contract asks for."""

import re
from collections import Counter, defaultdict
from pathlib import Path

import pytest
import yaml

from bot.choices import fold

ROOT = Path(__file__).parents[2]
DOMAIN = yaml.safe_load((ROOT / "domain.yml").read_text())
HOLDOUT = ROOT / "tests" / "nlu_holdout.yml"
ANNOTATION = re.compile(r"\[(?P<text>[^\]]+)\](?:\((?P<entity>\w+)(?::[^)]*)?\)|\{[^}]*\})")
MIN_PER_INTENT, MIN_PER_FAQ_TOPIC = 40, 12
# Set by the Twilio channel from a shared location or a bare attachment, never read from text.
CHANNEL_INTENTS = {"share_location", "share_media", "card_data"}
# Set by the channel or by button payloads (/inform{"window_id":"12"}), never by NLU.
CHANNEL_ENTITIES = {"latitude", "longitude", "address", "window_id"}
# --- handoff: set by the agent console and by the satisfaction question's buttons, not by NLU ---
CHANNEL_INTENTS |= {"handoff_returned", "rate_handoff"}
CHANNEL_ENTITIES |= {"satisfaction_score"}  # the satisfaction buttons' payload (handoff)
# --- knowledge base: the payload of an article picked from the options, not NLU ---
CHANNEL_INTENTS |= {"kb_article"}
CHANNEL_ENTITIES |= {"kb_article_id"}
# --- kpi: the "¿Te sirvió?" answer, from its buttons' payload (typed answers become it too) ---
CHANNEL_INTENTS |= {"flow_feedback"}
CHANNEL_ENTITIES |= {"feedback_useful"}
# --- consent: the options of "mis preferencias", a notification's "Está bien", an expired link ---
CHANNEL_INTENTS |= {"notice_ok", "link_expired"}
CHANNEL_ENTITIES |= {"pref_topic", "pref_channel", "pref_granted"}
# --- returns: the reason and outcome buttons' payload (typed answers are read by the form) ---
CHANNEL_ENTITIES |= {"return_reason", "return_resolution"}
NLU_INTENTS = [intent for intent in DOMAIN["intents"] if intent not in CHANNEL_INTENTS]


def examples_by_intent(path: Path) -> dict[str, list[str]]:
    """{intent or faq/topic: [example as written, annotations included]}."""
    found: dict[str, list[str]] = defaultdict(list)
    for block in yaml.safe_load(path.read_text()).get("nlu", []):
        if "intent" in block:
            lines = block["examples"].splitlines()
            found[block["intent"]] += [line.strip()[2:] for line in lines if line.strip().startswith("- ")]
    return found


def training_examples() -> dict[str, list[str]]:
    merged: dict[str, list[str]] = defaultdict(list)
    for path in sorted((ROOT / "data" / "nlu").glob("*.yml")):
        for intent, examples in examples_by_intent(path).items():
            merged[intent] += examples
    return merged


def plain(example: str) -> str:
    """The example as a customer typed it, compared without case, accents or punctuation."""
    text = ANNOTATION.sub(lambda match: match["text"], example)
    return fold(text) or text.strip()  # emoji-only messages compare as written


TRAINING = training_examples()


def test_every_intent_has_at_least_40_examples_and_every_faq_topic_12():
    counts = Counter()
    for intent, examples in TRAINING.items():
        counts[intent.split("/")[0]] += len(examples)
        if intent.startswith("faq/"):
            assert len(examples) >= MIN_PER_FAQ_TOPIC, intent
    short = {intent: counts[intent] for intent in NLU_INTENTS if counts[intent] < MIN_PER_INTENT}
    assert short == {}


def test_training_data_has_only_domain_intents_and_entities():
    assert {intent.split("/")[0] for intent in TRAINING} == set(NLU_INTENTS)
    used = {
        match["entity"]
        for examples in TRAINING.values()
        for e in examples
        for match in ANNOTATION.finditer(e)
    }
    assert used == set(DOMAIN["entities"]) - CHANNEL_ENTITIES


def test_each_faq_topic_has_an_answer_and_each_answer_a_topic():
    topics = {intent for intent in TRAINING if intent.startswith("faq/")}
    answers = {name.removeprefix("utter_") for name in DOMAIN["responses"] if name.startswith("utter_faq/")}
    assert topics == answers


def test_no_example_is_written_twice():
    seen: dict[str, str] = {}
    repeated = []
    for intent, examples in TRAINING.items():
        for example in examples:
            key = plain(example)
            if key in seen:
                repeated.append((example, seen[key], intent))
            seen[key] = intent
    assert repeated == []


@pytest.mark.skipif(not HOLDOUT.exists(), reason="tests/nlu_holdout.yml not written yet")
def test_held_out_sentences_never_appear_in_training_data():
    trained = {plain(example) for examples in TRAINING.values() for example in examples}
    # One- and two-word messages ("hola", "mi saldo") are bound to coincide; longer ones must not.
    leaked = [
        example
        for examples in examples_by_intent(HOLDOUT).values()
        for example in examples
        if len(plain(example).split()) > 2 and plain(example) in trained
    ]
    assert not leaked, f"{len(leaked)} held-out sentences are also training examples: {leaked}"
