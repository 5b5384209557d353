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

Under a `tf.distribute` strategy (`fit` inside `strategy.scope()`) every
replica draws the same paths (the sampler's seed and draw counter are
mirrored variables), the gradients are averaged over the replicas before
clipping and decay (`_distribute_tensorflow.mean_gradients`) and applied
once (`apply`), so every replica keeps the same weights, path logits and
optimizer slots. An optimizer's update cannot run inside a `tf.cond`
branch there (its all-reduce is a `merge_call`), so with `warmup_steps > 0`
`when` copies every variable of the model, its optimizers and metrics,
runs the architecture step on every step and puts the copies back while
the warm-up lasts (one copy of the state and one architecture step per
step, under a strategy only). Batch norm keeps per-replica statistics (see
`keras_nas._distribute_tensorflow`).
"""

from __future__ import annotations

import weakref

import tensorflow as tf

from keras_nas import _distribute_tensorflow as distribute
from keras_nas.supernet import _proxyless_paths as paths
from keras_nas.supernet._darts_tensorflow import test_step
from keras_nas.supernet._one_shot_tensorflow import LayerFunction, switch

__all__ = [
    "JIT_COMPILE",
    "apply",
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
        fn = _CALLERS[layer] = LayerFunction(layer, weak=True)
    return fn


def is_concrete(value) -> bool:
    """Whether `value` has a value now (eager), not a symbolic tensor."""
    return tf.executing_eagerly() and not tf.inside_function()


def apply(optimizer, grads, variables) -> None:
    """`optimizer.apply` of replica-identical (averaged) `grads`."""
    distribute.apply(optimizer, grads, variables)


def when(model, condition, fn) -> None:
    """Runs `fn()` (which only updates variables) if `condition` holds."""
    if isinstance(condition, bool) or is_concrete(condition):
        if bool(condition):
            fn()
        return
    if distribute.num_replicas() > 1:
        # No optimizer update in a `tf.cond` branch under a strategy: run
        # `fn`, then put back what it changed unless `condition` holds.
        saved = [
            (v, tf.identity(v.value)) for v in paths.state_variables(model)
        ]
        fn()
        for v, old in saved:
            v.assign(tf.where(condition, v.value, old))
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
    # Under a strategy: the global batch's gradients, on every replica.
    return loss, aux, distribute.mean_gradients(grads)


def train_step(model, data):
    return model.train_batch(data)
