"""JAX gradients of the zero-cost proxies (`zero_cost.py`).

Uses `model.stateless_call`, so a `training=True` pass leaves the model's
non-trainable state (batch-norm statistics) untouched. The functions are
not jitted: a network is scored once, and op-by-op execution reuses the
compiled primitives across the candidates of a search, where a `jax.jit`
would compile every candidate anew (measured slower here).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import numpy as np


def _values(model: Any) -> tuple[list, list]:
    return (
        [v.value for v in model.trainable_variables],
        [v.value for v in model.non_trainable_variables],
    )


def gradients(
    model: Any, x: Any, fn: Callable, training: bool
) -> tuple[float, list[np.ndarray]]:
    """`fn(model(x))` and its gradients w.r.t. `model.trainable_variables`."""
    trainable, non_trainable = _values(model)

    def f(values, non_trainable, x):
        out, _ = model.stateless_call(
            values, non_trainable, x, training=training
        )
        return fn(out)

    step = jax.value_and_grad(f)
    value, grads = step(trainable, non_trainable, jax.numpy.asarray(x))
    return float(value), [np.asarray(g) for g in grads]


def input_gradient(
    model: Any, x: Any, fn: Callable, training: bool
) -> np.ndarray:
    """The gradient of `fn(model(x))` w.r.t. the input batch `x`."""
    trainable, non_trainable = _values(model)

    def f(inputs, trainable, non_trainable):
        out, _ = model.stateless_call(
            trainable, non_trainable, inputs, training=training
        )
        return fn(out)

    step = jax.grad(f)
    return np.asarray(step(jax.numpy.asarray(x), trainable, non_trainable))


def activation_gradients(
    model: Any, x: Any, fn: Callable, training: bool, tap: Any
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Outputs of the tapped layers and the gradients of `fn(model(x))`.

    `tap.active(perturbations)` records those outputs, adding
    `perturbations[i]` to the i-th: the gradient w.r.t. zero perturbations
    is the gradient w.r.t. the outputs.
    """
    trainable, non_trainable = _values(model)
    x = jax.numpy.asarray(x)

    def shapes(trainable, non_trainable, x):
        with tap.active() as outputs:
            model.stateless_call(trainable, non_trainable, x, training=training)
        return list(outputs)

    specs = jax.eval_shape(shapes, trainable, non_trainable, x)
    zeros = [jax.numpy.zeros(s.shape, s.dtype) for s in specs]

    def f(perturbations, trainable, non_trainable, x):
        with tap.active(perturbations) as recorded:
            out, _ = model.stateless_call(
                trainable, non_trainable, x, training=training
            )
        return fn(out), list(recorded)

    step = jax.value_and_grad(f, has_aux=True)
    (_, acts), grads = step(zeros, trainable, non_trainable, x)
    return [np.asarray(a) for a in acts], [np.asarray(g) for g in grads]
