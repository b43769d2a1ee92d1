"""The e5 NLU featurizer (connectors/e5_featurizer.py): one unit sentence vector per message text,
the same at training and at inference, and a model hash that follows the code making it."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import numpy as np
import pytest
from rasa.shared.nlu.constants import FEATURE_TYPE_SENTENCE, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from connectors import e5_featurizer
from connectors.e5_featurizer import CODE_FILES, E5SentenceFeaturizer

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("stack", ROOT / "scripts" / "stack.py")
stack = importlib.util.module_from_spec(spec)
spec.loader.exec_module(stack)

FEATURIZER = "connectors.e5_featurizer.E5SentenceFeaturizer"
MESSAGES = ["donde esta mi pedido??", "ya pague la factura pero me sigue saliendo deuda", "hola 👋"]


@pytest.fixture(scope="module")
def featurizer() -> E5SentenceFeaturizer:
    return E5SentenceFeaturizer(E5SentenceFeaturizer.get_default_config(), "e5")


def sentence_vector(message: Message) -> np.ndarray:
    sequence, sentence = message.get_dense_features(TEXT)
    assert sequence is None  # a sentence feature only: DIET combines it with the counts' own
    return sentence.features


def test_each_text_gets_one_unit_sentence_vector_of_the_models_width(featurizer):
    messages = [Message(data={TEXT: text}) for text in MESSAGES]
    featurizer.process(messages)
    for message in messages:
        [feature] = message.features
        assert (feature.type, feature.attribute, feature.origin) == (FEATURE_TYPE_SENTENCE, TEXT, "e5")
        vector = sentence_vector(message)
        assert vector.shape == (1, 384) and vector.dtype == np.float32
        assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-5)
    assert float(sentence_vector(messages[0]) @ sentence_vector(messages[1]).T) < 0.99


def test_a_message_without_text_gets_no_feature(featurizer):
    message = Message(data={"intent": "greet"})
    featurizer.process([message])
    assert message.features == []


def test_training_and_inference_give_the_same_vector_every_time(featurizer):
    texts = [f"pedido {number}" for number in range(300)] + MESSAGES  # more than one batch
    batch = [Message(data={TEXT: text}) for text in texts]
    featurizer.process_training_data(TrainingData(batch))
    for _ in range(2):
        featurizer.model.forget_questions()  # computed again, not read from the question cache
        other = E5SentenceFeaturizer(E5SentenceFeaturizer.get_default_config(), "e5")
        for index in (0, 299, 300, 302):
            alone = Message(data={TEXT: texts[index]})
            other.process([alone])
            np.testing.assert_array_equal(sentence_vector(alone), sentence_vector(batch[index]))


@pytest.fixture()
def project(tmp_path, monkeypatch) -> Path:
    """A copy of what the model hash reads: config, lock, domain, data and the component's code."""
    for name in ["requirements.lock", "domain.yml", *CODE_FILES, "bot/kb/text.py"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, tmp_path / name)
    config = stack.yaml.safe_load((ROOT / "config.yml").read_text())
    names = [component["name"] for component in config["pipeline"]]
    if FEATURIZER not in names:  # config.yml as on main: the experiment's pipeline
        config["pipeline"].insert(names.index("DIETClassifier"), {"name": FEATURIZER})
    (tmp_path / "config.yml").write_text(stack.yaml.safe_dump(config))
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "nlu.yml").write_text('version: "3.1"\nnlu: []\n')
    monkeypatch.setattr(stack, "ROOT", tmp_path)
    monkeypatch.setattr(stack, "NOT_TRAINING_DATA", tmp_path / "data" / "demo")
    monkeypatch.setattr(e5_featurizer, "ROOT", tmp_path)
    return tmp_path


@pytest.mark.parametrize("changed", CODE_FILES)
def test_changing_the_code_that_makes_the_vectors_changes_the_model_hash(project, changed):
    before = stack.model_hash(), E5SentenceFeaturizer.fingerprint_addon({})
    with (project / changed).open("a") as code:
        code.write("\n# changed\n")
    after = stack.model_hash(), E5SentenceFeaturizer.fingerprint_addon({})
    assert after[0] != before[0]  # scripts/stack.py trains a new model
    assert after[1] != before[1]  # and Rasa's training cache does not reuse the old features


def test_a_config_without_the_featurizer_does_not_hash_its_code(project):
    config = stack.yaml.safe_load((project / "config.yml").read_text())
    config["pipeline"] = [c for c in config["pipeline"] if c["name"] != FEATURIZER]
    (project / "config.yml").write_text(stack.yaml.safe_dump(config))
    assert stack.component_code_files(project / "config.yml") == []


def test_other_code_leaves_the_model_hash_alone(project):
    before = stack.model_hash()
    with (project / "bot/kb/text.py").open("a") as code:
        code.write("\n# changed\n")
    assert stack.model_hash() == before
