"""JAX gradients of the `LSTMController` REINFORCE loss."""

from __future__ import annotations

from collections.abc import Callable

import jax


def gradient_function(loss_fn: Callable) -> Callable:
    """Compiles the gradient of `loss_fn` with `jax.jit(jax.grad(...))`.

    Args:
        loss_fn: `loss_fn(values, actions, advantage)`, built from
            `keras.ops`, returning a scalar; `values` is a list of the
            controller's variable values.

    Returns:
        `grad_fn(values, actions, advantage)` -> list of gradients w.r.t.
        `values`.
    """
    grad = jax.jit(jax.grad(loss_fn))

    def grad_fn(values, actions, advantage):
        return list(grad(list(values), actions, advantage))

    return grad_fn


def apply_function(optimizer, variables) -> Callable:
    """Returns `apply(grads)` of a built Keras `optimizer` (eager on JAX)."""

    def apply(grads):
        optimizer.apply(grads, variables)

    return apply
