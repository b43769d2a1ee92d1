"""Semantic ranking: the bundled multilingual sentence model, the blend with the lexical score,
and the article vectors cached by content hash (a reload embeds only what changed)."""

from __future__ import annotations

import numpy as np
import pytest

from bot.kb import KnowledgeBase
from bot.kb.semantic import MultilingualE5, default_model, embed_with_cache
from tests.unit.test_kb_search import ARTICLES, write_article


class CountingModel:
    """A stand-in sentence model that counts what it embeds: vectors from the model under test
    would make the counting depend on its weights."""

    name = "counting-test-model"

    def __init__(self) -> None:
        self.passages: list[str] = []

    def embed_query(self, text: str) -> np.ndarray:
        return self._vector(text)

    def embed_passages(self, texts: list[str]) -> np.ndarray:
        self.passages.extend(texts)
        return np.stack([self._vector(text) for text in texts])

    @staticmethod
    def _vector(text: str) -> np.ndarray:
        vector = np.zeros(8, dtype=np.float32)
        for index, char in enumerate(text.encode()):
            vector[index % 8] += char
        return vector / np.linalg.norm(vector)


def test_article_vectors_are_cached_by_content_and_only_changes_are_embedded(tmp_path):
    model = CountingModel()
    cache = tmp_path / "cache"
    first = embed_with_cache(model, ["uno", "dos"], cache)
    assert model.passages == ["uno", "dos"]
    again = embed_with_cache(model, ["uno", "dos", "tres"], cache)
    assert model.passages == ["uno", "dos", "tres"]  # only the new text
    np.testing.assert_allclose(again[:2], first)
    assert len(list(cache.iterdir())) == 1


def test_a_reload_after_an_edit_embeds_only_the_edited_article(tmp_path):
    folder, cache = tmp_path / "kb", tmp_path / "cache"
    folder.mkdir()
    for article_id in ARTICLES:
        write_article(folder, article_id)
    model = CountingModel()
    KnowledgeBase.load(folder, model=model, cache_dir=cache)
    assert len(model.passages) == len(ARTICLES)
    write_article(folder, "garantia", short="La garantía es de 24 meses.")
    KnowledgeBase.load(folder, model=model, cache_dir=cache)
    assert len(model.passages) == len(ARTICLES) + 1 and "24 meses" in model.passages[-1]


def test_search_blends_the_sentence_model_when_the_words_leave_it_open(tmp_path):
    for article_id in ARTICLES:
        write_article(tmp_path, article_id)
    kb = KnowledgeBase.load(tmp_path, model=CountingModel(), cache_dir=None)
    assert kb.semantic
    hits = kb.search("garantia u horario").hits
    assert all(hit.semantic is not None for hit in hits)
    assert all(abs(hit.score - (0.5 * hit.lexical + 0.5 * hit.semantic)) < 1e-3 for hit in hits)
    # A clear lexical winner is answered without the model.
    clear = kb.search("formas de pago")
    assert clear.verdict == "answer" and clear.hits[0].semantic is None


@pytest.fixture(scope="module")
def bundled_model() -> MultilingualE5:
    return MultilingualE5()


def test_the_bundled_model_loads_offline_and_gives_unit_vectors(bundled_model, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    vector = bundled_model.embed_query("¿aceptan Yape?")
    assert vector.shape == (384,)
    assert abs(float(vector @ vector) - 1.0) < 1e-3
    assert default_model() is not None


def test_the_bundled_model_relates_a_question_to_the_article_with_no_word_in_common(bundled_model):
    passages = bundled_model.embed_passages(
        [
            "Devolver un producto: cómo iniciar la devolución y enviar el paquete",
            "Horarios de atención de la tienda y del chat",
            "Medios de pago: tarjeta, transferencia y efectivo",
        ]
    )
    query = bundled_model.embed_query("no me gustó lo que compré, ¿lo puedo regresar?")
    assert int(np.argmax(passages @ query)) == 0


def test_a_long_message_is_read_up_to_the_token_budget(bundled_model):
    from bot.kb.semantic import MAX_QUERY_TOKENS

    long = " ".join(["envio", "tarjeta", "factura", "cuotas", "garantia"] * 20)
    kept = bundled_model._within_budget(long)
    assert long.startswith(kept) and len(kept.split()) < 100
    assert bundled_model._model.token_count(kept, True) <= MAX_QUERY_TOKENS
    one_more = " ".join(long.split()[: len(kept.split()) + 1])
    assert bundled_model._model.token_count(one_more, True) > MAX_QUERY_TOKENS
    assert bundled_model._within_budget("envio a ushuaia") == "envio a ushuaia"
