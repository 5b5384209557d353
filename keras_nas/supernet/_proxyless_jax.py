"""ProxylessNAS steps for the JAX backend (eager, `jax.value_and_grad`).

The sampled path is a Python choice, so the steps run eagerly
(`run_eagerly=True`): Keras' JAX trainer hands `train_step(state, data)`
its state, which is loaded into the variables, the step runs on them, and
the new state is read back. A gradient is `jax.value_and_grad` of the loss
as a function of the differentiated variables' values (in a
`StatelessScope`); the batch-norm statistics the forward pass updates are
assigned after it.
"""

from __future__ import annotations

import jax
import keras


def layer_caller(layer):
    """`layer` itself (JAX runs the layers as they are)."""
    return layer


def is_concrete(value) -> bool:
    """Whether `value` has a value now, not a tracer."""
    return not isinstance(value, jax.core.Tracer)


def value_and_grads(model, fn, variables):
    """`(loss, aux, grads)` of `loss, aux = fn()` with respect to
    `variables`; batch-norm statistics updated by `fn` are assigned."""
    non_trainable = model.non_trainable_variables

    def loss_fn(values):
        mapping = list(zip(variables, values, strict=True))
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


def _assign(variables, values) -> None:
    for variable, value in zip(variables, values, strict=False):
        variable.assign(value)


def _state(model, with_optimizer=True):
    out = [
        [v.value for v in model.trainable_variables],
        [v.value for v in model.non_trainable_variables],
    ]
    if with_optimizer:
        out.append([v.value for v in model.optimizer.variables])
    out.append([v.value for v in model.metrics_variables])
    return tuple(out)


def train_step(model, state, data):
    trainable, non_trainable, optimizer_vars, metrics_vars = state
    _assign(model.trainable_variables, trainable)
    _assign(model.non_trainable_variables, non_trainable)
    _assign(model.optimizer.variables, optimizer_vars)
    _assign(model.metrics_variables, metrics_vars)
    logs = model.train_batch(data)
    return logs, _state(model)


def test_step(model, state, data):
    trainable, non_trainable, metrics_vars = state
    _assign(model.trainable_variables, trainable)
    _assign(model.non_trainable_variables, non_trainable)
    _assign(model.metrics_variables, metrics_vars)
    logs = model.test_batch(data)
    return logs, _state(model, with_optimizer=False)
