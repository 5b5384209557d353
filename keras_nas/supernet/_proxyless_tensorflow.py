"""ProxylessNAS steps for the TensorFlow backend (eager, GradientTape).

The sampled path is a Python choice, so the steps run eagerly; the
gradient of a step is taken with one non-persistent tape that watches only
the variables it differentiates (the sampled path's weights, or the path
logits). Every layer's call runs as its own cached `tf.function` (traced
once per layer and `training` value), so a step dispatches a few graph
calls per block instead of every op eagerly.
"""

from __future__ import annotations

import weakref

import tensorflow as tf

_CALLERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def layer_caller(layer):
    """`layer`'s call as a cached `tf.function` (eager mode only)."""
    if not tf.executing_eagerly():
        return layer
    fn = _CALLERS.get(layer)
    if fn is None:

        def call(inputs, training=None):
            return layer(inputs, training=training)

        fn = _CALLERS[layer] = tf.function(call, reduce_retracing=True)
    return fn


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
