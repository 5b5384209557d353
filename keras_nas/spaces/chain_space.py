"""A chain-structured ("macro") search space: a sequence of layers.

The hyperparameters are `num_layers` and, for every layer `i`, its type
`layer{i}/type` (active when the network has more than `i` layers) with
conditional hyperparameters that are active only for that type:

- `conv`, `sep_conv`: `layer{i}/filters`, `layer{i}/kernel_size`,
  `layer{i}/strides`, `layer{i}/activation`, `layer{i}/dropout`,
- `pool`: `layer{i}/pool_type` (`"max"` or `"avg"`, 2x2 with stride 2),
- `dense`: `layer{i}/units`, `layer{i}/activation`, `layer{i}/dropout`.

This is the chain-structured space of Elsken et al., "Neural Architecture
Search: A Survey" (JMLR 2019), Section 2, declared with keras-tuner's
conditional scopes so that every tuner sees only the active choices.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import keras
import keras_tuner

from keras_nas._validation import MAX_FILTERS, check_bool, check_choice
from keras_nas.spaces import _common

__all__ = ["ChainSearchSpace", "LAYER_TYPES"]

#: Layer types of the chain space.
LAYER_TYPES: tuple[str, ...] = ("conv", "sep_conv", "pool", "dense")
_CONVS = ("conv", "sep_conv")
_POOLINGS = ("avg", "max", "flatten")


class ChainSearchSpace(keras_tuner.HyperModel):
    """A chain of conv / separable conv / pooling / dense layers.

    The network is `num_layers` layers in a row followed by a softmax
    classifier. Convolutions use "same" padding (conv, batch norm,
    activation, dropout). A stride or pooling that would shrink a spatial
    axis below 1 pixel is not applied. The feature map is reduced to a
    vector (`global_pooling`) before the first dense layer and before the
    classifier; conv and pool layers that come after a dense layer are
    skipped (their hyperparameters stay in the trial but have no effect).
    For vector inputs (`input_shape=(features,)`) use
    `layer_types=("dense",)`.

    Args:
        input_shape: shape of one input, `(height, width, channels)` or
            `(features,)`.
        num_classes: number of classes.
        max_layers: the largest number of layers.
        min_layers: the smallest number of layers.
        layer_types: layer types to choose from (subset of `LAYER_TYPES`).
        filters: choices of conv filters.
        kernel_sizes: choices of conv kernel sizes.
        strides: choices of conv strides.
        pool_types: choices of pooling (`"max"`, `"avg"`).
        units: choices of dense units.
        activations: choices of activation names.
        dropout_rates: choices of dropout rates after conv / dense layers.
        global_pooling: how a feature map becomes a vector: `"avg"`,
            `"max"` (global pooling) or `"flatten"`.
        batch_norm: whether convolutions are followed by batch norm.
        optimizer: name of a Keras optimizer or an optimizer instance
            (copied for each model).
        learning_rate: the optimizer's learning rate.
        bn_momentum: momentum set on every BatchNormalization layer (0.9 as
            in DARTS/NAS-Bench-201; Keras' 0.99 is too slow for the few
            steps of a trial); None keeps the layers' own.
        **kwargs: `name` and `tunable` of `keras_tuner.HyperModel`.

    Example:

    >>> space = ChainSearchSpace(input_shape=(8, 8, 1), num_classes=10,
    ...                          max_layers=3)
    >>> hp = keras_tuner.HyperParameters()
    >>> layers = space.declare_hyperparameters(hp)
    >>> layers[0]["type"]
    'conv'
    >>> tuner = keras_tuner.RandomSearch(space, max_trials=5)  # doctest: +SKIP
    >>> tuner.search(x, y, epochs=3, validation_split=0.2)  # doctest: +SKIP
    """

    def __init__(
        self,
        input_shape: tuple[int, ...] = (8, 8, 1),
        num_classes: int = 10,
        max_layers: int = 4,
        min_layers: int = 1,
        layer_types: Sequence[str] = LAYER_TYPES,
        filters: Sequence[int] = (16, 32, 64),
        kernel_sizes: Sequence[int] = (3, 5),
        strides: Sequence[int] = (1, 2),
        pool_types: Sequence[str] = ("max", "avg"),
        units: Sequence[int] = (32, 64, 128),
        activations: Sequence[str] = ("relu", "elu"),
        dropout_rates: Sequence[float] = (0.0, 0.25, 0.5),
        global_pooling: str = "avg",
        batch_norm: bool = True,
        optimizer: str | keras.optimizers.Optimizer = "adam",
        learning_rate: float = 1e-3,
        bn_momentum: float | None = 0.9,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.input_shape = _common.check_input_shape(input_shape)
        if len(self.input_shape) not in (1, 3):
            raise ValueError(
                "Expected `input_shape` to be (height, width, channels) or "
                f"(features,). Received: input_shape={input_shape!r}"
            )
        self.num_classes = _common.check_positive_int(
            "num_classes", num_classes, minimum=2
        )
        self.min_layers, self.max_layers = _common.check_layer_range(
            min_layers, max_layers
        )
        self.layer_types = _common.check_choices(
            "layer_types", layer_types, LAYER_TYPES
        )
        if len(self.input_shape) == 1 and self.layer_types != ("dense",):
            raise ValueError(
                "Expected `layer_types=('dense',)` for vector inputs. "
                f"Received: layer_types={layer_types!r} with "
                f"input_shape={input_shape!r}"
            )
        self.filters = _common.check_int_choices(
            "filters", filters, allow_int=False, maximum=MAX_FILTERS
        )
        self.kernel_sizes = _common.check_int_choices(
            "kernel_sizes", kernel_sizes, allow_int=False
        )
        self.strides = _common.check_int_choices(
            "strides", strides, allow_int=False
        )
        self.pool_types = _common.check_choices(
            "pool_types", pool_types, ("max", "avg")
        )
        self.units = _common.check_int_choices("units", units, allow_int=False)
        self.activations = _common.check_activations(activations)
        self.dropout_rates = _common.check_rates(dropout_rates)
        self.global_pooling = check_choice(
            "global_pooling", global_pooling, _POOLINGS
        )
        self.batch_norm = check_bool("batch_norm", batch_norm)
        _common.set_training(self, optimizer, learning_rate, bn_momentum)

    def declare_hyperparameters(
        self, hp: keras_tuner.HyperParameters
    ) -> list[dict[str, Any]]:
        """Declares all hyperparameters of the space in `hp`.

        Returns:
            One dict per active layer (`{"type": ..., "filters": ...}`)
            with `hp`'s current values.
        """
        return _common.declare_layers(
            hp, self.min_layers, self.max_layers, self._declare_layer
        )

    def _declare_layer(
        self, hp: keras_tuner.HyperParameters, i: int
    ) -> dict[str, Any]:
        name = f"layer{i}/type"
        spec = {"type": hp.Choice(name, list(self.layer_types))}
        groups = {
            _CONVS: {
                "filters": self.filters,
                "kernel_size": self.kernel_sizes,
                "strides": self.strides,
            },
            ("pool",): {"pool_type": self.pool_types},
            ("dense",): {"units": self.units},
            _CONVS + ("dense",): {
                "activation": self.activations,
                "dropout": self.dropout_rates,
            },
        }
        for types, params in groups.items():
            types = [t for t in types if t in self.layer_types]
            if not types:
                continue
            with hp.conditional_scope(name, types):
                for key, values in params.items():
                    value = hp.Choice(f"layer{i}/{key}", list(values))
                    if spec["type"] in types:
                        spec[key] = value
        return spec

    def _to_vector(self, x: Any, name: str) -> Any:
        if self.global_pooling == "flatten":
            return keras.layers.Flatten(name=name)(x)
        if self.global_pooling == "max":
            return keras.layers.GlobalMaxPooling2D(name=name)(x)
        return keras.layers.GlobalAveragePooling2D(name=name)(x)

    def build(self, hp: keras_tuner.HyperParameters) -> keras.Model:
        """Builds and compiles the chain of `hp`'s layers.

        Layers are named by position (`layer{i}_conv`, `layer{i}_bn`,
        `layer{i}_act`, `layer{i}_dropout`, `layer{i}_pool`,
        `layer{i}_dense`, ..., `predictions`), so the same position has the
        same name in every architecture (weight inheritance matches layers
        by name, see `keras_nas.estimation.inherit_weights`).
        """
        specs = self.declare_hyperparameters(hp)
        inputs = keras.Input(shape=self.input_shape)
        x = inputs
        flat = len(self.input_shape) == 1
        height, width = (1, 1) if flat else self.input_shape[:2]
        for i, spec in enumerate(specs):
            kind = spec["type"]
            if kind == "dense":
                if not flat:
                    x, flat = self._to_vector(x, f"layer{i}_to_vector"), True
                x = keras.layers.Dense(
                    spec["units"],
                    activation=spec["activation"],
                    name=f"layer{i}_dense",
                )(x)
            elif flat or (kind == "pool" and min(height, width) < 2):
                continue
            elif kind == "pool":
                pool = (
                    keras.layers.MaxPooling2D
                    if spec["pool_type"] == "max"
                    else keras.layers.AveragePooling2D
                )
                x = pool(2, padding="same", name=f"layer{i}_pool")(x)
            else:
                strides = spec["strides"] if min(height, width) > 1 else 1
                conv = (
                    keras.layers.Conv2D
                    if kind == "conv"
                    else keras.layers.SeparableConv2D
                )
                x = conv(
                    spec["filters"],
                    spec["kernel_size"],
                    strides=strides,
                    padding="same",
                    use_bias=not self.batch_norm,
                    name=f"layer{i}_{kind}",
                )(x)
                if self.batch_norm:
                    x = keras.layers.BatchNormalization(name=f"layer{i}_bn")(x)
                x = keras.layers.Activation(
                    spec["activation"], name=f"layer{i}_act"
                )(x)
            if kind == "pool":
                height, width = math.ceil(height / 2), math.ceil(width / 2)
            elif kind in _CONVS:
                height = math.ceil(height / strides)
                width = math.ceil(width / strides)
            if spec.get("dropout"):
                x = keras.layers.Dropout(
                    spec["dropout"], name=f"layer{i}_dropout"
                )(x)
        if not flat:
            x = self._to_vector(x, "to_vector")
        outputs = keras.layers.Dense(
            self.num_classes, activation="softmax", name="predictions"
        )(x)
        model = keras.Model(inputs, outputs, name="chain_network")
        return _common.finish_classifier(self, model)
