"""A/B variants (bot/experiments.py, connectors/nlg.py) and their comparison (bot/analytics/ab.py)."""

from __future__ import annotations

import asyncio
import hashlib
import math
from pathlib import Path

import pytest
import yaml

from bot.analytics.ab import VariantFigures, compare, two_proportion_p_value
from bot.experiments import ExperimentError, experiments_in, pick_variation, variant_index

ROOT = Path(__file__).parents[2]
DOMAIN = yaml.safe_load((ROOT / "domain.yml").read_text())
TWO = [
    {"id": "corto", "metadata": {"experiment": "saludo"}, "text": "Hola"},
    {"id": "largo", "metadata": {"experiment": "saludo"}, "text": "Hola, ¿en qué te ayudo?"},
]


def test_the_variant_is_the_digest_of_experiment_and_conversation_modulo_the_variants():
    # SHA-256("pregunta_feedback:+525511111111") begins 0d ef e4 66 a1 60 e4 1f: odd, so of two
    # variants the second; "+525522222222" begins b4 f2 58 79 cf c9 0f 9c: even, the first.
    assert hashlib.sha256(b"pregunta_feedback:+525511111111").hexdigest().startswith("0defe466a160e41f")
    assert variant_index("+525511111111", "pregunta_feedback", 2) == 1
    assert variant_index("+525522222222", "pregunta_feedback", 2) == 0
    # 0x0defe466a160e41f = 1004298432476226591, modulo 3 = 1004298432476226591 - 3 · 334766144158742197
    assert variant_index("+525511111111", "pregunta_feedback", 3) == 1004298432476226591 % 3 == 0


def test_a_customer_always_gets_the_same_variant_and_customers_split_evenly():
    picks = {pick_variation("whatsapp:+5215512345678", TWO)[2] for _ in range(20)}
    assert len(picks) == 1
    counts = {"corto": 0, "largo": 0}
    for number in range(2000):
        counts[pick_variation(f"+52155{number:08d}", TWO)[2]] += 1
    assert 900 < counts["corto"] < 1100  # a fair split, not one variant for everyone


def test_experiments_are_independent_of_each_other():
    other = [{**variation, "metadata": {"experiment": "despedida"}} for variation in TWO]
    same = sum(
        pick_variation(f"+5215{n:08d}", TWO)[2] == pick_variation(f"+5215{n:08d}", other)[2]
        for n in range(2000)
    )
    assert 900 < same < 1100  # knowing one experiment's variant says nothing of the other's


def test_a_response_without_an_experiment_is_left_to_rasa():
    assert pick_variation("+525511111111", [{"text": "Hola"}, {"text": "Buenas"}]) is None


def test_the_domains_experiments_are_well_declared():
    found = experiments_in(DOMAIN["responses"])
    assert found["pregunta_feedback"].response == "utter_ask_feedback"
    assert found["pregunta_feedback"].variants == ("te_sirvio", "resolvimos")


@pytest.mark.parametrize(
    "variations",
    [
        [TWO[0], {"text": "sin experimento"}],  # a variation outside the experiment
        [TWO[0], {**TWO[1], "id": "corto"}],  # two variants with one id
        [TWO[0], {**TWO[1], "metadata": {"experiment": "otro"}}],  # two experiments in one response
        [TWO[0]],  # one variant is no test
    ],
)
def test_a_badly_declared_experiment_is_refused(variations):
    with pytest.raises(ExperimentError):
        experiments_in({"utter_saludo": variations})


def test_one_experiment_in_two_responses_is_refused():
    with pytest.raises(ExperimentError):
        experiments_in({"utter_a": TWO, "utter_b": TWO})


def test_the_two_proportion_z_test_matches_a_hand_computation():
    # 45 of 100 vs 30 of 100: pooled p = 0.375, SE = √(0.375 · 0.625 · 0.02) = 0.0684653,
    # z = 0.15 / 0.0684653 = 2.19089, two-sided p = 2 (1 − Φ(2.19089)) = 0.028460.
    assert two_proportion_p_value(45, 100, 30, 100) == pytest.approx(0.028460, abs=1e-6)
    assert two_proportion_p_value(30, 100, 45, 100) == pytest.approx(0.028460, abs=1e-6)  # two-sided
    # Equal shares: z = 0, p = 1.
    assert two_proportion_p_value(10, 40, 5, 20) == pytest.approx(1.0)
    # 1 of 3 vs 0 of 1: pooled 1/4, SE = √(1/4 · 3/4 · 4/3) = 1/2, z = 2/3, p = erfc(2/3 / √2).
    assert two_proportion_p_value(1, 3, 0, 1) == pytest.approx(math.erfc((2 / 3) / math.sqrt(2)))
    assert two_proportion_p_value(1, 3, 0, 1) == pytest.approx(0.504985, abs=1e-6)


def test_no_p_value_without_data_or_variance():
    assert two_proportion_p_value(0, 0, 3, 10) is None
    assert two_proportion_p_value(10, 10, 5, 5) is None  # all successes: nothing varies


def test_each_variant_is_compared_with_its_experiments_first():
    rows = compare(
        [
            VariantFigures("saludo", "largo", sessions=100, contained=30, answers=100, yes=30),
            VariantFigures("saludo", "corto", sessions=100, contained=45, answers=0, yes=0),
            VariantFigures("despedida", "a", sessions=5, contained=1),
        ]
    )
    assert [(r.experiment, r.variant) for r in rows] == [
        ("despedida", "a"),
        ("saludo", "corto"),
        ("saludo", "largo"),
    ]
    assert rows[0].containment_p is None and rows[1].containment_p is None
    assert rows[2].containment_p == pytest.approx(0.028460, abs=1e-6)
    assert rows[2].yes_rate_p is None  # "corto" has no answers to compare with
    assert rows[2].containment == pytest.approx(0.3) and rows[1].yes_rate is None


def test_the_assistants_nlg_shows_the_assigned_variant_and_records_it(monkeypatch):
    """connectors/nlg.py as Rasa builds it from endpoints.yml (`nlg.type`), on the real domain."""
    from rasa.core.actions.action import create_bot_utterance
    from rasa.core.nlg.generator import NaturalLanguageGenerator
    from rasa.shared.core.domain import Domain
    from rasa.shared.core.trackers import DialogueStateTracker
    from rasa.utils.endpoints import EndpointConfig

    endpoints = yaml.safe_load((ROOT / "endpoints.yml").read_text())
    domain = Domain.load(str(ROOT / "domain.yml"))
    nlg = NaturalLanguageGenerator.create(EndpointConfig(type=endpoints["nlg"]["type"]), domain)

    async def shown(sender: str, response: str, **kwargs):
        tracker = DialogueStateTracker(sender, domain.slots)
        message = await nlg.generate(response, tracker, "twilio", **kwargs)
        return create_bot_utterance({**message, "utter_action": response})

    first = asyncio.run(shown("+525511111111", "utter_ask_feedback", rated_flow="order_status"))
    again = asyncio.run(shown("+525511111111", "utter_ask_feedback", rated_flow="order_status"))
    other = asyncio.run(shown("+525522222222", "utter_ask_feedback", rated_flow="order_status"))
    assert first.metadata["experiment"] == "pregunta_feedback"
    assert (first.metadata["variant"], other.metadata["variant"]) == ("resolvimos", "te_sirvio")
    assert first.text == again.text == "¿Pudimos resolver lo que necesitabas?"
    assert other.text == "¿Te sirvió? 🙂"
    assert [b["title"] for b in first.data["buttons"]] == ["Sí", "No"]
    plain = asyncio.run(shown("+525511111111", "utter_feedback_thanks"))
    assert "experiment" not in plain.metadata and plain.text

    # A custom action's dispatcher.utter_message(response=..., rated_flow=...), as Rasa turns the
    # action server's answer into bot events (RemoteAction._utter_responses): the variant and the
    # rated flow both end on the event the broker carries.
    from rasa.core.actions.action import RemoteAction
    from rasa.core.channels.channel import CollectingOutputChannel
    from rasa_sdk.executor import CollectingDispatcher

    dispatcher = CollectingDispatcher()
    dispatcher.utter_message(response="utter_ask_feedback", rated_flow="kb:horarios")
    tracker = DialogueStateTracker("+525522222222", domain.slots)
    (event,) = asyncio.run(
        RemoteAction._utter_responses(dispatcher.messages, CollectingOutputChannel(), nlg, tracker)
    )
    assert (event.metadata["variant"], event.metadata["rated_flow"]) == ("te_sirvio", "kb:horarios")
