"""ProxylessNAS steps for the TensorFlow backend (eager, GradientTape).

The sampled path is a Python choice, so the steps run eagerly; the
gradient of a step is taken with one non-persistent tape that watches only
the variables it differentiates (the sampled path's weights, or the path
logits).
"""

from __future__ import annotations

import tensorflow as tf


def is_concrete(value) -> bool:
    """Whether `value` has a value now (eager), not a symbolic tensor."""
    return tf.executing_eagerly() and not tf.inside_function()


def value_and_grads(model, fn, variables):
    """`(loss, aux, grads)` of `loss, aux = fn()` with respect to
    `variables`; batch-norm statistics updated by `fn` stay updated."""
    watched = [v.value for v in variables]
    with tf.GradientTape(watch_accessed_variables=False) as tape:
        tape.watch(watched)
        loss, aux = fn()
    grads = tape.gradient(
        loss, watched, unconnected_gradients=tf.UnconnectedGradients.ZERO
    )
    return loss, aux, grads


def train_step(model, data):
    return model.train_batch(data)


def test_step(model, data):
    return model.test_batch(data)
