"""ProxylessNAS steps for the JAX backend (`jax.value_and_grad`).

Keras' JAX trainer hands `train_step(state, data)` the model's state; the
step runs `ProxylessSupernet.train_batch` in one `StatelessScope` mapping
every variable to its state value and returns the scope's new values, so
the same code runs eagerly (`run_eagerly=True`) and jitted (`fit`'s
default: traced once). In the jitted step the paths are traced int32
indices: every block dispatches with `jax.lax.switch` (only the taken
candidate runs; its batch-norm statistics leave the branch as values,
`_one_shot_jax.switch`) and the warm-up condition is a `jax.lax.cond`
over the state. A gradient is `jax.value_and_grad` of the loss as a
function of the differentiated variables' values, every other variable
read from the enclosing scope; the batch-norm statistics the forward pass
updates are assigned after it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import keras

from keras_nas.supernet import _proxyless_paths as paths
from keras_nas.supernet._darts_jax import test_step
from keras_nas.supernet._one_shot_jax import switch

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

#: `compile(jit_compile=...)` of the supernet: Keras jits the JAX step.
JIT_COMPILE = True


def layer_caller(layer):
    """`layer` itself (JAX runs the layers as they are)."""
    return layer


def apply(optimizer, grads, variables) -> None:
    """`optimizer.apply(grads, variables)` (under `keras.distribution`
    the step is one program over the global batch: nothing to average)."""
    optimizer.apply(grads, variables)


def is_concrete(value) -> bool:
    """Whether `value` has a value now, not a tracer."""
    return not isinstance(value, jax.core.Tracer)


def _current(scope, variable, old):
    value = scope.get_current_value(variable)
    return old if value is None else value


def when(model, condition, fn) -> None:
    """Runs `fn()` (which only updates variables) if `condition` holds: a
    `jax.lax.cond` over every variable's value when `condition` is
    traced."""
    if is_concrete(condition):
        if bool(condition):
            fn()
        return
    variables = paths.state_variables(model)

    def run(values):
        mapping = list(zip(variables, values, strict=True))
        with keras.StatelessScope(state_mapping=mapping) as scope:
            fn()
        return [
            jnp.asarray(_current(scope, v, old), dtype=old.dtype)
            for v, old in zip(variables, values, strict=True)
        ]

    values = [jnp.asarray(v.value) for v in variables]
    new = jax.lax.cond(condition, run, lambda values: values, values)
    for variable, value in zip(variables, new, strict=True):
        variable.assign(value)


def value_and_grads(model, fn, variables):
    """`(loss, aux, grads)` of `loss, aux = fn()` with respect to
    `variables`; batch-norm statistics updated by `fn` are assigned."""
    ids = {id(v) for v in variables}
    others = [v for v in model.variables if id(v) not in ids]
    other_values = [v.value for v in others]
    non_trainable = model.non_trainable_variables

    def loss_fn(values):
        mapping = list(zip(variables, values, strict=True))
        mapping += list(zip(others, other_values, strict=True))
        with keras.StatelessScope(state_mapping=mapping) as scope:
            loss, aux = fn()
        updates = {}
        for i, v in enumerate(non_trainable):
            new = scope.get_current_value(v)
            if new is not None:
                updates[i] = new
        return loss, (aux, updates)

    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
    (loss, (aux, updates)), grads = grad_fn([v.value for v in variables])
    for i, value in updates.items():
        non_trainable[i].assign(value)
    return loss, aux, grads


def train_step(model, state, data):
    """Keras' `train_step(state, data)`: `train_batch` on the state."""
    groups = (
        model.trainable_variables,
        model.non_trainable_variables,
        model.optimizer.variables,
        model.metrics_variables,
    )
    mapping = [
        (v, value)
        for variables, values in zip(groups, state, strict=True)
        for v, value in zip(variables, values, strict=True)
    ]
    with keras.StatelessScope(state_mapping=mapping) as scope:
        logs = model.train_batch(data)
    new_state = tuple(
        [
            _current(scope, v, old)
            for v, old in zip(variables, values, strict=True)
        ]
        for variables, values in zip(groups, state, strict=True)
    )
    return logs, new_state
