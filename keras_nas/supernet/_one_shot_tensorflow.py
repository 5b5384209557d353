"""TensorFlow gradient step of `OneShotSupernet` (eager `GradientTape`).

The path is a Python choice, so the step runs eagerly; to keep the per-op
overhead of eager execution low, every layer call runs as its own traced
`tf.function` (traced once per layer, reused by every path through it).
"""

from __future__ import annotations

import weakref
from typing import Any

import tensorflow as tf

_CALLERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def layer_caller(model):
    """Returns `use(layer)`: the layer's call as a cached `tf.function`."""
    cache = _CALLERS.get(model)
    if cache is None:
        cache = _CALLERS[model] = {}

    def use(layer):
        fn = cache.get(id(layer))
        if fn is None:

            def call(inputs, training=None, layer=layer):
                return layer(inputs, training=training)

            fn = cache[id(layer)] = tf.function(call, reduce_retracing=True)
        return fn

    return use


def apply_path_gradients(model, x, y, sample_weight, path: tuple) -> Any:
    """Trains one batch on `path`; returns `(loss, y_pred)`.

    Only the path's trainable variables are differentiated and
    handed to the optimizer, so the other ops get no update at all (no
    momentum, no weight decay, untouched optimizer slots).
    """
    variables = model.path_trainable_variables(path)
    with tf.GradientTape() as tape:
        y_pred = model._forward(x, path, True, layer_caller(model))
        loss = model._compute_loss(
            x=x,
            y=y,
            y_pred=y_pred,
            sample_weight=sample_weight,
            training=True,
        )
        scaled = model.optimizer.scale_loss(loss)
    grads = tape.gradient(scaled, variables)
    model.optimizer.apply(grads, variables)
    return loss, y_pred


def train_step(model, data) -> dict:
    """`Model.train_step(data)` of the TensorFlow trainer (run eagerly)."""
    return model._train_on_path(data)
