"""The timed inference function of `measure_latency` on TensorFlow."""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf


def inference_function(model: Any, jit_compile: bool):
    """`run(x)`: a compiled `model(x, training=False)`, result in NumPy."""
    forward = tf.function(
        lambda x: model(x, training=False), jit_compile=jit_compile
    )

    def run(x):
        return keras.tree.map_structure(lambda t: t.numpy(), forward(x))

    return run
