"""What the SMASH hypernetwork bodies share (`_hyper_nb201.py`,
`hypernetwork_cell.py`): parameter-free batch normalization, and the
SMASH conditioning vector of a decision slot with its linear weight
generators, and the softmax classifier."""

from __future__ import annotations

import math

import keras
from keras import ops

__all__ = ["add_generator", "classifier", "conditioning", "normalize"]

EPS = 1e-5


def normalize(x):
    """Batch normalization with the batch's statistics, no parameters."""
    mean, var = ops.moments(x, axes=(0, 1, 2), keepdims=True)
    return (x - mean) * ops.rsqrt(var + EPS)


def classifier(num_classes: int, seed) -> keras.layers.Dense:
    """The bodies' softmax classifier (Glorot-uniform kernel from `seed`)."""
    return keras.layers.Dense(
        num_classes,
        activation="softmax",
        kernel_initializer=keras.initializers.GlorotUniform(seed=seed),
        name="classifier",
    )


def conditioning(layer, encoding, num_slots: int):
    """The `(num_slots, embedding_dim)` conditioning vectors of `layer`:
    `relu(embedding [encoding, one_hot(slot)] + embedding_bias)`."""
    rows = ops.tile(ops.reshape(encoding, (1, -1)), (num_slots, 1))
    rows = ops.concatenate(
        [rows, ops.eye(num_slots, dtype=rows.dtype)], axis=1
    )
    return ops.relu(ops.matmul(rows, layer.embedding) + layer.embedding_bias)


def add_generator(layer, name: str, embedding_dim: int, size: int, fan_in):
    """A linear generator `(G, g)` of `size` numbers from a conditioning
    vector, initialized so that the generated kernel has He's scale for
    `fan_in` inputs per output."""
    std = math.sqrt(2.0 / fan_in)
    matrix = layer.add_weight(
        shape=(embedding_dim, size),
        initializer=keras.initializers.RandomNormal(
            stddev=std / math.sqrt(embedding_dim)
        ),
        name=f"{name}_generator",
    )
    bias = layer.add_weight(
        shape=(size,),
        initializer=keras.initializers.RandomNormal(stddev=std),
        name=f"{name}_generator_bias",
    )
    return matrix, bias
