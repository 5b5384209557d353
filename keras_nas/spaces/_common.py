"""Argument checks and compile helpers shared by the search spaces."""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import keras
import keras_tuner


def hp_values(values: Any, name: str = "values") -> dict[str, Any]:
    """Returns a plain dict from a dict or a `keras_tuner.HyperParameters`."""
    if isinstance(values, keras_tuner.HyperParameters):
        return dict(values.values)
    if isinstance(values, Mapping):
        return dict(values)
    raise ValueError(
        f"Expected `{name}` to be a dict or a keras_tuner.HyperParameters. "
        f"Received: {name}={values!r}"
    )


def is_int(value: Any) -> bool:
    """True for Python and NumPy integers, False for booleans."""
    return isinstance(value, numbers.Integral) and not isinstance(
        value, bool
    )


def check_input_shape(input_shape: Any) -> tuple[int, ...]:
    fail = ValueError(
        "Expected `input_shape` to be a tuple of positive integers without "
        f"the batch axis, e.g. (32, 32, 3). Received: input_shape="
        f"{input_shape!r}"
    )
    if isinstance(input_shape, (str, bytes)) or not isinstance(
        input_shape, Sequence
    ):
        raise fail
    if not input_shape or not all(
        is_int(v) and v > 0 for v in input_shape
    ):
        raise fail
    return tuple(int(v) for v in input_shape)


def check_positive_int(name: str, value: Any, minimum: int = 1) -> int:
    if not is_int(value) or value < minimum:
        raise ValueError(
            f"Expected `{name}` to be an integer >= {minimum}. "
            f"Received: {name}={value!r}"
        )
    return int(value)


def check_int_choices(
    name: str, value: Any, minimum: int = 1
) -> tuple[int, ...]:
    """An int (fixed) or a non-empty sequence of ints (searched)."""
    if is_int(value):
        values = (value,)
    elif isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        values = tuple(value)
    else:
        values = ()
    if not values or not all(is_int(v) and v >= minimum for v in values):
        raise ValueError(
            f"Expected `{name}` to be an integer >= {minimum} or a non-empty "
            f"sequence of such integers. Received: {name}={value!r}"
        )
    return tuple(dict.fromkeys(int(v) for v in values))


def check_choices(
    name: str, value: Any, allowed: Sequence[Any] | None = None
) -> tuple[Any, ...]:
    """A non-empty sequence of distinct values, optionally from `allowed`."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        values = ()
    else:
        values = tuple(value)
    bad = [v for v in values if allowed is not None and v not in allowed]
    if not values or bad or len(set(values)) != len(values):
        expected = f" from {list(allowed)}" if allowed is not None else ""
        raise ValueError(
            f"Expected `{name}` to be a non-empty sequence of distinct "
            f"values{expected}. Received: {name}={value!r}"
        )
    return values


def declare_int(
    hp: keras_tuner.HyperParameters, name: str, values: tuple[int, ...]
) -> int:
    """Declares `name` as Fixed (one value) or an ordered Choice."""
    if len(values) == 1:
        return hp.Fixed(name, values[0])
    return hp.Choice(name, list(values), ordered=True)


def check_optimizer(optimizer: Any, learning_rate: Any) -> None:
    if isinstance(learning_rate, bool) or not isinstance(
        learning_rate, (int, float)
    ) or not learning_rate > 0:
        raise ValueError(
            "Expected `learning_rate` to be a positive number. "
            f"Received: learning_rate={learning_rate!r}"
        )
    make_optimizer(optimizer, learning_rate)


def make_optimizer(
    optimizer: Any, learning_rate: float
) -> keras.optimizers.Optimizer:
    """A fresh optimizer (never shared between models)."""
    if isinstance(optimizer, keras.optimizers.Optimizer):
        config = optimizer.get_config()
        config["learning_rate"] = learning_rate
        return optimizer.__class__.from_config(config)
    if isinstance(optimizer, str):
        try:
            return keras.optimizers.get(
                {
                    "class_name": optimizer,
                    "config": {"learning_rate": learning_rate},
                }
            )
        except (ValueError, TypeError):
            pass
    raise ValueError(
        "Expected `optimizer` to be the name of a Keras optimizer (e.g. "
        "'adam') or a keras.optimizers.Optimizer instance. "
        f"Received: optimizer={optimizer!r}"
    )


def compile_classifier(
    model: keras.Model, optimizer: Any, learning_rate: float
) -> keras.Model:
    """Compiles a softmax classifier (with an optional auxiliary head)."""
    num_outputs = len(model.outputs)
    loss = "sparse_categorical_crossentropy"
    if num_outputs == 1:
        model.compile(
            optimizer=make_optimizer(optimizer, learning_rate),
            loss=loss,
            metrics=["accuracy"],
        )
    else:
        # DARTS weighs the auxiliary head's loss by 0.4.
        model.compile(
            optimizer=make_optimizer(optimizer, learning_rate),
            loss=[loss] * num_outputs,
            loss_weights=[1.0] + [0.4] * (num_outputs - 1),
            metrics=[["accuracy"]] + [[]] * (num_outputs - 1),
        )
    return model
