"""TensorFlow gradient step of `OneShotSupernet` (eager `GradientTape`)."""

from __future__ import annotations

from typing import Any

import tensorflow as tf


def apply_path_gradients(model, x, y, sample_weight, path: tuple) -> Any:
    """Trains one batch on `path`; returns `(loss, y_pred)`.

    Only the path's trainable variables are differentiated and
    handed to the optimizer, so the other ops get no update at all (no
    momentum, no weight decay, untouched optimizer slots).
    """
    variables = model.path_trainable_variables(path)
    with tf.GradientTape() as tape:
        y_pred = model(x, training=True, path=path)
        loss = model._compute_loss(
            x=x,
            y=y,
            y_pred=y_pred,
            sample_weight=sample_weight,
            training=True,
        )
        scaled = model.optimizer.scale_loss(loss)
    grads = tape.gradient(scaled, variables)
    model.optimizer.apply(grads, variables)
    return loss, y_pred


def train_step(model, data) -> dict:
    """`Model.train_step(data)` of the TensorFlow trainer (run eagerly)."""
    return model._train_on_path(data)
