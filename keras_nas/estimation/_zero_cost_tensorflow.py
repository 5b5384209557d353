"""TensorFlow gradients of the zero-cost proxies (`zero_cost.py`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import tensorflow as tf


def gradients(
    model: Any, x: Any, fn: Callable, training: bool
) -> tuple[float, list[np.ndarray]]:
    """`fn(model(x))` and its gradients w.r.t. `model.trainable_variables`.

    Variables without a gradient get zeros. Side effects of the call (e.g.
    batch-norm statistics updated with `training=True`) are the caller's.
    """
    variables = model.trainable_variables
    with tf.GradientTape() as tape:
        value = fn(model(x, training=training))
    grads = tape.gradient(value, variables)
    return float(value), [
        np.zeros(v.shape, v.dtype) if g is None else np.asarray(g)
        for v, g in zip(variables, grads, strict=True)
    ]


def input_gradient(
    model: Any, x: Any, fn: Callable, training: bool
) -> np.ndarray:
    """The gradient of `fn(model(x))` w.r.t. the input batch `x`."""
    x = tf.convert_to_tensor(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        value = fn(model(x, training=training))
    grad = tape.gradient(value, x)
    return (
        np.zeros(x.shape, x.dtype.as_numpy_dtype)
        if grad is None
        else (np.asarray(grad))
    )


def activation_gradients(
    model: Any, x: Any, fn: Callable, training: bool, tap: Any
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Outputs of the tapped layers and the gradients of `fn(model(x))`.

    `tap.active()` is a context manager recording those outputs.
    """
    with tf.GradientTape() as tape:
        with tap.active() as outputs:
            value = fn(model(x, training=training))
    grads = tape.gradient(value, outputs)
    acts = [np.asarray(a) for a in outputs]
    return acts, [
        np.zeros_like(a) if g is None else np.asarray(g)
        for a, g in zip(acts, grads, strict=True)
    ]
