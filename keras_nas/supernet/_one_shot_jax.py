"""JAX gradient step of `OneShotSupernet`.

Keras' JAX trainer calls `train_step(state, data)` with the model's
variables held in `state`. The one-shot step picks its path in Python, so it
runs eagerly: it loads `state` into the variables, differentiates the loss
with `jax.value_and_grad` over the sampled path's trainable variables only
(the others are read, not differentiated), applies the optimizer to those
variables, and returns the updated state.
"""

from __future__ import annotations

from typing import Any

import jax
import keras


def layer_caller(model):
    """Returns `use(layer)`: layers run as they are (eager JAX)."""
    return _identity


def _identity(layer):
    return layer


def apply_path_gradients(model, x, y, sample_weight, path: tuple) -> Any:
    """Trains one batch on `path`; returns `(loss, y_pred)`."""
    trainable = model.path_trainable_variables(path)
    non_trainable = model.non_trainable_variables

    def loss_fn(values):
        mapping = list(zip(trainable, values, strict=False))
        with keras.StatelessScope(state_mapping=mapping) as scope:
            y_pred = model(x, training=True, path=path)
            loss = model._compute_loss(
                x=x,
                y=y,
                y_pred=y_pred,
                sample_weight=sample_weight,
                training=True,
            )
            scaled = model.optimizer.scale_loss(loss)
        updates = {}
        for i, v in enumerate(non_trainable):
            new = scope.get_current_value(v)
            if new is not None:
                updates[i] = new
        return scaled, (loss, y_pred, updates)

    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
    (_, (loss, y_pred, updates)), grads = grad_fn([v.value for v in trainable])
    for i, value in updates.items():
        non_trainable[i].assign(value)
    model.optimizer.apply(grads, trainable)
    return loss, y_pred


def _assign(variables, values) -> None:
    for variable, value in zip(variables, values, strict=False):
        variable.assign(value)


def train_step(model, state, data) -> tuple:
    """`Model.train_step(state, data)` of the JAX trainer, run eagerly."""
    trainable, non_trainable, optimizer_vars, metrics_vars = state
    _assign(model.trainable_variables, trainable)
    _assign(model.non_trainable_variables, non_trainable)
    _assign(model.optimizer.variables, optimizer_vars)
    _assign(model.metrics_variables, metrics_vars)
    logs = model._train_on_path(data)
    state = (
        [v.value for v in model.trainable_variables],
        [v.value for v in model.non_trainable_variables],
        [v.value for v in model.optimizer.variables],
        [v.value for v in model.metrics_variables],
    )
    return logs, state
