"""JAX gradients of the `LSTMController` REINFORCE loss."""

from __future__ import annotations

from collections.abc import Callable

import jax


def gradient_function(loss_fn: Callable) -> Callable:
    """`grad_fn(values, actions, advantage)` of `loss_fn`, compiled with
    `jax.jit(jax.grad(...))` (see `controller_lstm._backend_module`)."""
    grad = jax.jit(jax.grad(loss_fn))

    def grad_fn(values, actions, advantage):
        return list(grad(list(values), actions, advantage))

    return grad_fn


def apply_function(optimizer, variables) -> Callable:
    """Returns `apply(grads)` of a built Keras `optimizer` (eager on JAX)."""

    def apply(grads):
        optimizer.apply(grads, variables)

    return apply
