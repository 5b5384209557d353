"""JAX helpers shared by this package's stateless training steps.

Keras' JAX trainer threads metric variables through its steps as values;
custom steps (DARTS, the GAN) update their metrics with `update_metrics`.
"""

from __future__ import annotations

import keras


def update_metrics(model, metrics_values, updates):
    """Stateless `update_state` of `(metric, args)` pairs; returns logs."""
    mapping = list(zip(model.metrics_variables, metrics_values, strict=False))
    with keras.StatelessScope(state_mapping=mapping) as scope:
        for metric, args in updates:
            metric.update_state(*args)
        logs = {metric.name: metric.result() for metric, _ in updates}
    new_values = []
    for ref, value in zip(
        model.metrics_variables, metrics_values, strict=False
    ):
        current = scope.get_current_value(ref)
        new_values.append(value if current is None else current)
    return logs, new_values
