"""Training schedules for networks built from cells.

NASNet (Zoph et al., "Learning Transferable Architectures for Scalable Image
Recognition", CVPR 2018) and DARTS (Liu et al., "DARTS: Differentiable
Architecture Search", ICLR 2019) retrain the final network with a drop-path
probability that grows linearly from 0 to its final value over training
(DARTS: `drop_prob * epoch / epochs` at the start of every epoch).
"""

from __future__ import annotations

from typing import Any

import keras

from keras_nas._validation import check_number, check_positive_int

__all__ = ["DropPathSchedule", "drop_path_variables"]


def drop_path_variables(model: keras.layers.Layer) -> list:
    """The drop-path rate variables of every cell in `model` (nested too).

    A `keras_nas.blocks.Cell` has one once built with `drop_path_rate > 0`.
    """
    layers = model._flatten_layers(include_self=True, recursive=True)
    found = []
    for layer in layers:
        variable = getattr(layer, "drop_path_rate_variable", None)
        if variable is not None:
            found.append(variable)
    return found


class DropPathSchedule(keras.callbacks.Callback):
    """Increases the drop-path rate of every cell linearly over training.

    At the start of epoch `e` (0-based, absolute: `initial_epoch` counts)
    every cell's drop-path rate is set to
    `final_rate * min(e, epochs) / epochs`, as in DARTS and NASNet
    retraining. The rate is a non-trainable variable of each cell, so the
    compiled train step uses the new value (TensorFlow and JAX). It is
    added to the epoch logs as `"drop_path_rate"`.

    Build the network with `drop_path_rate > 0` (any value: the schedule
    overrides it; e.g. `build_network(..., drop_path_rate=final_rate)`):
    cells built with a rate of 0 have no drop-path at all.

    Args:
        final_rate: rate reached at epoch `epochs`, in `[0, 1)`.
        epochs: number of epochs of the ramp (usually the training epochs).

    Example:

    ```python
    model = build_network(DARTS_V2, (32, 32, 3), 10, drop_path_rate=0.2)
    model.compile("sgd", "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=600, callbacks=[DropPathSchedule(0.2, 600)])
    ```
    """

    def __init__(self, final_rate: float, epochs: int):
        super().__init__()
        self.final_rate = check_number(
            "final_rate", final_rate, 0.0, 1.0, high_open=True
        )
        self.epochs = check_positive_int("epochs", epochs)
        self.current_rate: float | None = None

    def rate(self, epoch: int) -> float:
        """The drop-path rate of epoch `epoch` (0-based)."""
        return self.final_rate * min(epoch, self.epochs) / self.epochs

    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        variables = drop_path_variables(self.model)
        if not variables:
            raise ValueError(
                "Expected a built model with cells of `drop_path_rate > 0` "
                "for `DropPathSchedule` (cells built with a rate of 0 have "
                f"no drop-path). Received: model={self.model.name!r}"
            )
        self.current_rate = self.rate(epoch)
        for variable in variables:
            variable.assign(self.current_rate)

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        if logs is not None and self.current_rate is not None:
            logs["drop_path_rate"] = self.current_rate
