"""Full classifiers stacked from genotype cells.

`build_network` is the DARTS CIFAR network (`NetworkCIFAR` of Liu et al.,
"DARTS", ICLR 2019); `build_nb201_network` is the NAS-Bench-201 macro
skeleton (Dong & Yang, ICLR 2020). Both return uncompiled functional
`keras.Model`s whose output is softmax probabilities.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import keras
from keras import ops

from keras_nas._validation import MAX_CELLS, MAX_FILTERS, check_positive_int
from keras_nas.blocks._op_numerics import (
    _batch_norm,
    _check_strides,
    _check_version,
    _legacy_from_config,
    _torch_uniform,
)
from keras_nas.blocks.cells import (
    Cell,
    NasBench201Cell,
    _as_genotype,
    _as_nb201_genotype,
)
from keras_nas.blocks.conv_ops import ReLUConvBN
from keras_nas.blocks.genotypes import Genotype, NasBench201Genotype

__all__ = [
    "AuxiliaryHead",
    "ResNetBasicBlock",
    "build_network",
    "build_nb201_network",
    "NetworkFromGenotype",
]

_PACKAGE = "keras_nas"


@keras.saving.register_keras_serializable(package=_PACKAGE)
class AuxiliaryHead(keras.layers.Layer):
    """The auxiliary classifier of DARTS (`AuxiliaryHeadCIFAR`).

    ReLU, 5x5 average pooling with stride 3, 1x1 conv (128) - BN - ReLU,
    2x2 conv (768) - BN - ReLU, dense softmax. For small feature maps the
    pooling window and the second kernel shrink to fit (a 8x8 input gives
    the original head; smaller maps end at 1x1), so it works on any input of
    known spatial size.

    Args:
        num_classes: number of classes.
        ops_version: 2 (default: batch-norm epsilon 1e-5, as the DARTS code)
            or 1 (1e-3; see `keras_nas.blocks.ops`).
        **kwargs: base layer keyword arguments, such as `name`.
    """

    def __init__(
        self, num_classes: int, ops_version: int | None = None, **kwargs
    ):
        super().__init__(**kwargs)
        self.num_classes = check_positive_int("num_classes", num_classes)
        self.ops_version = _check_version(ops_version)

    def build(self, input_shape):
        h, w = input_shape[1], input_shape[2]
        if h is None or w is None:
            raise ValueError(
                "Expected the input of AuxiliaryHead to have a known spatial "
                f"size. Received: input_shape={tuple(input_shape)!r}"
            )
        pool = (min(5, h), min(5, w))
        after = ((h - pool[0]) // 3 + 1, (w - pool[1]) // 3 + 1)
        self.pool = keras.layers.AveragePooling2D(pool, strides=3)
        self.conv_1 = keras.layers.Conv2D(128, 1, use_bias=False)
        self.bn_1 = _batch_norm(ops_version=self.ops_version)
        kernel = (min(2, after[0]), min(2, after[1]))
        self.conv_2 = keras.layers.Conv2D(768, kernel, use_bias=False)
        self.bn_2 = _batch_norm(ops_version=self.ops_version)
        self.dense = keras.layers.Dense(self.num_classes, activation="softmax")
        shape = tuple(input_shape)
        for layer in (self.pool, self.conv_1, self.bn_1, self.conv_2):
            layer.build(shape)
            shape = layer.compute_output_shape(shape)
        self.bn_2.build(shape)
        self.dense.build((shape[0], shape[-1]))

    def call(self, inputs, training=None):
        x = self.pool(ops.relu(inputs))
        x = ops.relu(self.bn_1(self.conv_1(x), training=training))
        x = ops.relu(self.bn_2(self.conv_2(x), training=training))
        return self.dense(ops.mean(x, axis=(1, 2)))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_classes)

    def get_config(self):
        config = super().get_config()
        config.update(
            num_classes=self.num_classes, ops_version=self.ops_version
        )
        return config

    from_config = _legacy_from_config()


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ResNetBasicBlock(keras.layers.Layer):
    """The residual block joining NAS-Bench-201 stages.

    `ReLUConvBN(3x3, strides)` then `ReLUConvBN(3x3)`, added to a shortcut:
    2x2 average pooling and a 1x1 conv when `strides=2`, a 1x1
    `ReLUConvBN` when only the channels change, else the identity
    (He et al., 2016, as used by Dong & Yang, ICLR 2020).

    Args:
        filters: number of output channels.
        strides: 1 or 2.
        ops_version: 2 (default) or 1 (see `keras_nas.blocks.ops`).
        **kwargs: base layer keyword arguments, such as `name`.

    Example:

    >>> block = ResNetBasicBlock(16, strides=2)
    >>> tuple(block(keras.ops.ones((2, 7, 7, 8))).shape)
    (2, 4, 4, 16)
    """

    def __init__(
        self,
        filters: int,
        strides: int = 2,
        ops_version: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.filters = check_positive_int(
            "filters", filters, maximum=MAX_FILTERS
        )
        self.strides = _check_strides(strides)
        self.ops_version = _check_version(ops_version)
        version = self.ops_version
        self.conv_a = ReLUConvBN(
            self.filters, 3, strides=self.strides, ops_version=version
        )
        self.conv_b = ReLUConvBN(self.filters, 3, ops_version=version)

    def build(self, input_shape):
        shape = tuple(input_shape)
        if self.strides == 2:
            self.shortcut = keras.layers.Conv2D(self.filters, 1, use_bias=False)
        elif shape[-1] != self.filters:
            self.shortcut = ReLUConvBN(
                self.filters, 1, ops_version=self.ops_version
            )
        else:
            self.shortcut = None
        self.conv_a.build(shape)
        self.conv_b.build(self.conv_a.compute_output_shape(shape))
        if self.shortcut is not None:
            self.shortcut.build(shape)

    def call(self, inputs, training=None):
        x = self.conv_b(
            self.conv_a(inputs, training=training), training=training
        )
        residual = inputs
        if self.strides == 2:
            residual = ops.average_pool(residual, 2, strides=2, padding="same")
            residual = self.shortcut(residual)
        elif self.shortcut is not None:
            residual = self.shortcut(residual, training=training)
        return residual + x

    def compute_output_shape(self, input_shape):
        return self.conv_a.compute_output_shape(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            filters=self.filters,
            strides=self.strides,
            ops_version=self.ops_version,
        )
        return config

    from_config = _legacy_from_config()


def _check_input_shape(input_shape: Any) -> tuple:
    ok = isinstance(input_shape, Sequence) and len(input_shape) == 3
    if ok:
        h, w, c = input_shape
        ok = (
            all(v is None or (isinstance(v, int) and v > 0) for v in (h, w))
            and isinstance(c, int)
            and not isinstance(c, bool)
            and c > 0
        )
    if not ok:
        raise ValueError(
            "Expected `input_shape` to be (height, width, channels) with "
            f"positive integers. Received: input_shape={input_shape!r}"
        )
    return tuple(input_shape)


def _check_classes(num_classes: Any) -> int:
    return check_positive_int("num_classes", num_classes, minimum=2)


def _stem(inputs, filters: int):
    x = keras.layers.Conv2D(
        filters,
        3,
        padding="same",
        use_bias=False,
        kernel_initializer=_torch_uniform(),
        name="stem_conv",
    )(inputs)
    return _batch_norm(name="stem_bn")(x)


def build_network(
    genotype: Genotype | Mapping | str,
    input_shape: Sequence[int | None],
    num_classes: int,
    filters: int = 16,
    num_cells: int = 8,
    auxiliary: bool = False,
    drop_path_rate: float = 0.0,
    stem_multiplier: int = 3,
    name: str | None = None,
) -> keras.Model:
    """Builds the DARTS CIFAR network of a genotype.

    A 3x3 conv + BN stem with `stem_multiplier * filters` channels, then
    `num_cells` cells, each fed the outputs of the two previous ones. Cells
    `num_cells // 3` and `2 * num_cells // 3` are reduction cells that halve
    the resolution and double the filters (for `num_cells` 1 or 2 these
    positions coincide or are 0 and 1, as in DARTS). Tiny inputs: a
    reduction whose input is already 1x1 is replaced by a normal cell (no
    doubling), and stride-2 ops give `ceil(n / 2)` (padded symmetrically
    as in the DARTS code), so e.g. 8x8 digits work with any
    `num_cells >= 1`. Then global average pooling
    and a dense softmax layer named `"predictions"`.

    With `auxiliary=True`, DARTS' auxiliary head (`AuxiliaryHead`, adapted
    to small maps) is attached after cell `2 * num_cells // 3`, and the
    model has two named outputs, a dict `{"predictions": ...,
    "auxiliary": ...}`. Compile it with per-output losses and weights, and
    fit it with the labels given for both outputs:

    ```python
    model.compile(
        optimizer="adam",
        loss={"predictions": "sparse_categorical_crossentropy",
              "auxiliary": "sparse_categorical_crossentropy"},
        loss_weights={"predictions": 1.0, "auxiliary": 0.4},
        metrics={"predictions": ["accuracy"]},
    )
    model.fit(x, {"predictions": y, "auxiliary": y})
    ```

    Args:
        genotype: a `Genotype` (or its dict / JSON form).
        input_shape: `(height, width, channels)` of one example.
        num_classes: number of classes (>= 2).
        filters: channels of the first cells' nodes.
        num_cells: number of cells (>= 1).
        auxiliary: add the auxiliary head (second output).
        drop_path_rate: drop-path probability of every cell.
        stem_multiplier: stem channels = `stem_multiplier * filters`.
        name: the model's name.

    Returns:
        An uncompiled `keras.Model`.

    Example:

    >>> from keras_nas.blocks import DARTS_V2
    >>> model = build_network(DARTS_V2, (8, 8, 1), 10, filters=8, num_cells=3)
    >>> model.output_shape
    (None, 10)
    """
    genotype = _as_genotype(genotype)
    input_shape = _check_input_shape(input_shape)
    num_classes = _check_classes(num_classes)
    filters = check_positive_int("filters", filters, 2, MAX_FILTERS)
    num_cells = check_positive_int("num_cells", num_cells, maximum=MAX_CELLS)
    stem_multiplier = check_positive_int("stem_multiplier", stem_multiplier)
    if auxiliary and None in input_shape[:2]:
        raise ValueError(
            "Expected a known spatial size for `auxiliary=True`. "
            f"Received: input_shape={input_shape!r}"
        )

    inputs = keras.Input(input_shape)
    s0 = s1 = _stem(inputs, stem_multiplier * filters)
    hw = input_shape[:2]
    reduce_at = {num_cells // 3, 2 * num_cells // 3}
    aux_at = 2 * num_cells // 3
    reduction_prev = False
    aux = None
    for i in range(num_cells):
        reduction = i in reduce_at and hw != (1, 1)
        if reduction:
            filters *= 2
            hw = tuple(None if v is None else math.ceil(v / 2) for v in hw)
        cell = Cell(
            genotype,
            kind="reduce" if reduction else "normal",
            filters=filters,
            reduction_prev=reduction_prev,
            drop_path_rate=drop_path_rate,
            name=f"cell_{i}",
        )
        s0, s1 = s1, cell([s0, s1])
        reduction_prev = reduction
        if auxiliary and i == aux_at:
            aux = AuxiliaryHead(num_classes, name="auxiliary")(s1)
    x = keras.layers.GlobalAveragePooling2D(name="global_pool")(s1)
    outputs = keras.layers.Dense(
        num_classes, activation="softmax", name="predictions"
    )(x)
    if aux is not None:
        outputs = {"predictions": outputs, "auxiliary": aux}
    return keras.Model(inputs, outputs, name=name)


#: Alias of `build_network`, the name used in the project brief.
NetworkFromGenotype = build_network


def build_nb201_network(
    genotype: NasBench201Genotype | str | Sequence[str],
    input_shape: Sequence[int | None],
    num_classes: int,
    filters: int = 16,
    cells_per_stage: int = 5,
    name: str | None = None,
) -> keras.Model:
    """Builds the NAS-Bench-201 network of a cell.

    A 3x3 conv + BN stem with `filters` channels, three stages of
    `cells_per_stage` `NasBench201Cell`s with `filters`, `2 * filters` and
    `4 * filters` channels, joined by stride-2 `ResNetBasicBlock`s, then
    BN, ReLU, global average pooling and a dense softmax layer named
    `"predictions"` (Dong & Yang, ICLR 2020; the benchmark uses
    `filters=16, cells_per_stage=5`).

    Args:
        genotype: a `NasBench201Genotype`, its cell string or 6 op names.
        input_shape: `(height, width, channels)` of one example.
        num_classes: number of classes (>= 2).
        filters: channels of the first stage.
        cells_per_stage: cells per stage (>= 1).
        name: the model's name.

    Returns:
        An uncompiled `keras.Model`.

    Example:

    >>> model = build_nb201_network(
    ...     ("nor_conv_3x3",) * 6, (8, 8, 1), 10, filters=4, cells_per_stage=1)
    >>> model.output_shape
    (None, 10)
    """
    genotype = _as_nb201_genotype(genotype)
    input_shape = _check_input_shape(input_shape)
    num_classes = _check_classes(num_classes)
    filters = check_positive_int("filters", filters, 2, MAX_FILTERS)
    cells_per_stage = check_positive_int("cells_per_stage", cells_per_stage)

    inputs = keras.Input(input_shape)
    x = _stem(inputs, filters)
    for stage in range(3):
        channels = filters * 2**stage
        if stage:
            x = ResNetBasicBlock(channels, strides=2, name=f"resblock_{stage}")(
                x
            )
        for j in range(cells_per_stage):
            x = NasBench201Cell(genotype, channels, name=f"cell_{stage}_{j}")(x)
    x = _batch_norm(name="last_bn")(x)
    x = keras.layers.ReLU(name="last_relu")(x)
    x = keras.layers.GlobalAveragePooling2D(name="global_pool")(x)
    outputs = keras.layers.Dense(
        num_classes, activation="softmax", name="predictions"
    )(x)
    return keras.Model(inputs, outputs, name=name)
