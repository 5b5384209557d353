"""ProxylessNAS steps for the TensorFlow backend (GradientTape).

`fit` runs Keras' compiled step (`tf.function`, traced once): the paths
are int32 tensors drawn inside the step, every block dispatches with
`tf.switch_case` (only the taken candidate runs, forward and backward),
the warm-up condition is a `tf.cond`, and the weight update is masked to
the sampled path (`ProxylessSupernet._weight_step`). Eagerly
(`run_eagerly=True`, or a call outside `fit`) the drawn indices have
values, so each block runs its op directly, every layer's call as its own
cached `tf.function`, and only the path's variables reach the optimizer.
Every gradient comes from one non-persistent tape that watches only the
variables it differentiates.
"""

from __future__ import annotations

import weakref

import tensorflow as tf

from keras_nas.supernet._darts_tensorflow import test_step
from keras_nas.supernet._one_shot_tensorflow import switch

__all__ = [
    "JIT_COMPILE",
    "is_concrete",
    "layer_caller",
    "switch",
    "test_step",
    "train_step",
    "value_and_grads",
    "when",
]

#: `compile(jit_compile=...)` of the supernet: TensorFlow's graph, no XLA.
JIT_COMPILE = False

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


def when(model, condition, fn) -> None:
    """Runs `fn()` (which only updates variables) if `condition` holds."""
    if is_concrete(condition):
        if bool(condition):
            fn()
        return

    def run():
        fn()
        return tf.constant(True)

    tf.cond(condition, run, lambda: tf.constant(False))


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
