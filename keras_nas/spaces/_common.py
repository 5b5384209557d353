"""Argument checks and compile helpers shared by the search spaces."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import keras
import keras_tuner

from keras_nas._validation import check_positive_int, is_int


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
    if not input_shape or not all(is_int(v) and v > 0 for v in input_shape):
        raise fail
    return tuple(int(v) for v in input_shape)


def check_image_shape(input_shape: Any) -> tuple[int, ...]:
    """`check_input_shape` for images: `(height, width, channels)`."""
    input_shape = check_input_shape(input_shape)
    if len(input_shape) != 3:
        raise ValueError(
            "Expected `input_shape` to be (height, width, channels). "
            f"Received: input_shape={input_shape!r}"
        )
    return input_shape


def check_int_choices(
    name: str,
    value: Any,
    minimum: int = 1,
    allow_int: bool = True,
    maximum: int | None = None,
) -> tuple[int, ...]:
    """An int (fixed) or a non-empty sequence of ints (searched), each in
    [`minimum`, `maximum`].

    With `allow_int=False` only a sequence is accepted (where a bare int
    would be ambiguous, e.g. per-layer units).
    """
    if is_int(value) and allow_int:
        values = (value,)
    elif isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        values = tuple(value)
    else:
        values = ()
    top = math.inf if maximum is None else maximum
    if not values or not all(is_int(v) and minimum <= v <= top for v in values):
        bound = f">= {minimum}" if maximum is None else f"in [{minimum}, {top}]"
        what = f"an integer {bound} or a " if allow_int else "a "
        such = "such integers" if allow_int else f"integers {bound}"
        raise ValueError(
            f"Expected `{name}` to be {what}non-empty sequence of {such}. "
            f"Received: {name}={value!r}"
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


def check_rates(value: Any) -> tuple[float, ...]:
    """`dropout_rates`: a non-empty sequence of distinct numbers in [0, 1)."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        values = ()
    else:
        values = tuple(value)
    ok = values and all(
        not isinstance(v, bool)
        and isinstance(v, (int, float))
        and 0.0 <= v < 1.0
        for v in values
    )
    if not ok or len(set(values)) != len(values):
        raise ValueError(
            "Expected `dropout_rates` to be a non-empty sequence of distinct "
            f"numbers in [0, 1). Received: dropout_rates={value!r}"
        )
    return tuple(float(v) for v in values)


def check_activations(value: Any) -> tuple[str, ...]:
    """`activations`: distinct names of Keras activations."""
    values = check_choices("activations", value)
    for v in values:
        try:
            if not isinstance(v, str):
                raise TypeError(v)
            keras.activations.get(v)
        except (ValueError, TypeError) as e:
            raise ValueError(
                "Expected `activations` to hold names of Keras activations. "
                f"Received: activations={value!r}"
            ) from e
    return values


def declare_int(
    hp: keras_tuner.HyperParameters, name: str, values: tuple[int, ...]
) -> int:
    """Declares `name` as Fixed (one value) or an ordered Choice."""
    if len(values) == 1:
        return hp.Fixed(name, values[0])
    return hp.Choice(name, list(values), ordered=True)


def check_layer_range(min_layers: Any, max_layers: Any) -> tuple[int, int]:
    """`(min_layers, max_layers)`: positive ints, `min_layers <= max_layers`."""
    max_layers_ = check_positive_int("max_layers", max_layers)
    min_layers_ = check_positive_int("min_layers", min_layers)
    if min_layers_ > max_layers_:
        raise ValueError(
            "Expected `min_layers` <= `max_layers`. "
            f"Received: min_layers={min_layers!r}, "
            f"max_layers={max_layers!r}"
        )
    return min_layers_, max_layers_


def declare_layers(
    hp: keras_tuner.HyperParameters,
    min_layers: int,
    max_layers: int,
    declare_layer: Callable[[keras_tuner.HyperParameters, int], Any],
) -> list[Any]:
    """Declares `num_layers` and every layer's hyperparameters in `hp`.

    Layer `i`'s hyperparameters, declared by `declare_layer(hp, i)`, are
    conditional on `num_layers > i`, so all of them exist in `hp` whatever
    its current depth. Returns the specs of the active layers.
    """
    if min_layers == max_layers:
        num_layers = hp.Fixed("num_layers", max_layers)
    else:
        num_layers = hp.Int("num_layers", min_layers, max_layers)
    specs = []
    for i in range(max_layers):
        active = list(range(i + 1, max_layers + 1))
        with hp.conditional_scope("num_layers", active):
            spec = declare_layer(hp, i)
        if i < num_layers:
            specs.append(spec)
    return specs


def check_optimizer(optimizer: Any, learning_rate: Any) -> None:
    if (
        isinstance(learning_rate, bool)
        or not isinstance(learning_rate, (int, float))
        or not 0 < learning_rate < math.inf
    ):
        raise ValueError(
            "Expected `learning_rate` to be a positive finite number. "
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


def check_momentum(momentum: Any) -> float | None:
    if momentum is None:
        return None
    if (
        isinstance(momentum, bool)
        or not isinstance(momentum, (int, float))
        or not 0.0 <= momentum < 1.0
    ):
        raise ValueError(
            "Expected `bn_momentum` to be None or a number in [0, 1). "
            f"Received: bn_momentum={momentum!r}"
        )
    return float(momentum)


def set_training(
    space: Any, optimizer: Any, learning_rate: Any, bn_momentum: Any
) -> None:
    """Checks and sets the training settings every classifier space takes.

    `space.bn_momentum`, `space.optimizer`, `space.learning_rate`; see
    `finish_classifier`.
    """
    space.bn_momentum = check_momentum(bn_momentum)
    check_optimizer(optimizer, learning_rate)
    space.optimizer = optimizer
    space.learning_rate = float(learning_rate)


def finish_classifier(space: Any, model: keras.Model) -> keras.Model:
    """`model` with the space's batch-norm momentum, compiled with its
    optimizer (the settings of `set_training`)."""
    set_bn_momentum(model, space.bn_momentum)
    return compile_classifier(model, space.optimizer, space.learning_rate)


def set_bn_momentum(model: keras.Model, momentum: float | None) -> None:
    """Sets the momentum of every BatchNormalization layer of `model`.

    Keras' default 0.99 leaves the moving statistics far from the data's
    after the few hundred steps of a NAS trial, which ruins inference-mode
    accuracy; 0.9 is the value of DARTS and NAS-Bench-201 (PyTorch's 0.1).
    """
    if momentum is None:
        return
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = momentum


def compile_classifier(
    model: keras.Model, optimizer: Any, learning_rate: float
) -> keras.Model:
    """Compiles a softmax classifier.

    A model with the two outputs `{"predictions", "auxiliary"}` (DARTS'
    auxiliary head) gets a loss per output, the auxiliary one weighted by
    0.4 as in DARTS; fit it through `AuxiliaryFit` so plain labels and the
    `accuracy` metric name keep working.
    """
    loss = "sparse_categorical_crossentropy"
    if isinstance(model.output, dict):
        model.compile(
            optimizer=make_optimizer(optimizer, learning_rate),
            loss={name: loss for name in model.output},
            loss_weights={
                name: 1.0 if name == "predictions" else 0.4
                for name in model.output
            },
            metrics={"predictions": ["accuracy"]},
        )
    else:
        model.compile(
            optimizer=make_optimizer(optimizer, learning_rate),
            loss=loss,
            metrics=["accuracy"],
        )
    defer_training_state(model)
    return model


def defer_training_state(model: keras.Model) -> None:
    """Builds a compiled model's training state when it is first needed.

    That is, before the model's first `fit`, `evaluate`, `train_on_batch` or
    `test_on_batch` traces its step (TensorFlow backend: the step is then
    traced once; under a distribution strategy, and on the other backends,
    Keras builds that state itself first) and before `load_weights` (so
    that a checkpoint's optimizer state, e.g. Hyperband continuing a trial,
    is restored rather than skipped with a warning). Not at build time:
    keras-tuner builds a space's model many times just to discover its
    conditional hyperparameters (43-47 builds for the default
    `ChainSearchSpace`) and throws those models away.
    """

    def ensure_state():
        if getattr(model, "_distribute_strategy", None) is None and not (
            model.optimizer is None or model.optimizer.built
        ):
            build_training_state(model)

    load_weights = model.load_weights

    def load_weights_with_state(filepath, *args, **kwargs):
        ensure_state()
        return load_weights(filepath, *args, **kwargs)

    model.load_weights = load_weights_with_state
    symbolic_build = getattr(model, "_maybe_symbolic_build", None)
    if symbolic_build is None:  # Keras builds it itself before tracing
        return

    def symbolic_build_with_state(iterator=None, data_batch=None):
        ensure_state()
        return symbolic_build(iterator=iterator, data_batch=data_batch)

    model._maybe_symbolic_build = symbolic_build_with_state


def build_training_state(model: keras.Model) -> None:
    """Creates a compiled model's optimizer and metric variables now.

    Keras' TensorFlow trainer otherwise creates them inside the first trace
    of the train step, and `tf.function` then traces the whole step a
    second time (a function that creates variables is traced twice): about
    a third of a small trial's first epoch on a CPU. Keras' own symbolic
    build (what it runs under a distribution strategy, and always on JAX)
    builds them from the input and label specs without running the model;
    the labels are sparse class indices, one per prediction (per example,
    or per node of a graph), for each output.
    """
    symbolic_build = getattr(model, "_symbolic_build", None)
    if symbolic_build is None:  # a Keras without it: traced twice
        return
    x = keras.tree.map_structure(
        lambda t: keras.KerasTensor(t.shape, t.dtype), model.input
    )
    y = keras.tree.map_structure(
        lambda t: keras.KerasTensor(t.shape[:-1], "int32"), model.output
    )
    symbolic_build(data_batch=(x, y))


class _RenameLogs(keras.callbacks.Callback):
    """Adds `accuracy`/`val_accuracy` for `predictions_accuracy` etc."""

    def _rename(self, logs: dict | None) -> None:
        for key in list(logs or {}):
            if "predictions_" in key:
                logs.setdefault(key.replace("predictions_", ""), logs[key])

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self._rename(logs)

    def on_test_end(self, logs: dict | None = None) -> None:
        self._rename(logs)


def _both(y: Any) -> dict[str, Any]:
    return {"predictions": y, "auxiliary": y}


def _duplicate_labels(data: Any) -> Any:
    if hasattr(data, "map"):  # A tf.data.Dataset of (x, y[, w]).
        return data.map(lambda x, y, *w: (x, _both(y), *w))
    if isinstance(data, tuple) and len(data) >= 2:
        return (data[0], _both(data[1]), *data[2:])
    return data


def fit_auxiliary(model: keras.Model, *args: Any, **kwargs: Any) -> Any:
    """`model.fit` for a model with an auxiliary output and plain labels.

    The labels `y` (or the labels of a dataset / `validation_data`) are fed
    to both outputs, and the main output's metrics are also logged without
    the `predictions_` prefix, so `val_accuracy` is the tuner objective.
    """
    if "y" in kwargs:
        kwargs["y"] = _both(kwargs["y"])
    elif len(args) >= 2:
        args = (args[0], _both(args[1]), *args[2:])
    elif args:
        args = (_duplicate_labels(args[0]),)
    elif "x" in kwargs:
        kwargs["x"] = _duplicate_labels(kwargs["x"])
    if kwargs.get("validation_data") is not None:
        kwargs["validation_data"] = _duplicate_labels(kwargs["validation_data"])
    kwargs["callbacks"] = [_RenameLogs()] + list(kwargs.get("callbacks") or [])
    return model.fit(*args, **kwargs)
