"""TensorFlow gradients of the `LSTMController` REINFORCE loss."""

from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf


def gradient_function(loss_fn: Callable) -> Callable:
    """`grad_fn(values, actions, advantage)` of `loss_fn`, compiled with
    `tf.function` (see `controller_lstm._backend_module`)."""

    @tf.function(reduce_retracing=True)
    def grad_fn(values, actions, advantage):
        with tf.GradientTape() as tape:
            tape.watch(values)
            loss = loss_fn(values, actions, advantage)
        grads = tape.gradient(
            loss, values, unconnected_gradients=tf.UnconnectedGradients.ZERO
        )
        # Embedding lookups give `IndexedSlices`; dense tensors can be summed
        # over the traces of one update.
        return [tf.convert_to_tensor(g) for g in grads]

    return grad_fn


def apply_function(optimizer, variables) -> Callable:
    """Returns a compiled `apply(grads)` of a built Keras `optimizer`."""

    @tf.function
    def apply(grads):
        optimizer.apply(grads, variables)

    return apply
