"""The parameter-free ops of the cell search spaces, as Keras 3 layers.

`Zero` (`none`), `Identity` (`skip_connect` at stride 1) and `Pool`
(`max_pool_3x3`, `avg_pool_3x3`), as in the DARTS code and NAS-Bench-201.
Their numerics (`ops_version`) are described in `keras_nas.blocks.ops`,
which also builds them by name (`get_op`).
"""

from __future__ import annotations

import math

import keras
from keras import ops

from keras_nas._validation import check_choice, check_positive_int
from keras_nas.blocks._op_numerics import (
    _check_strides,
    _check_version,
    _Op,
    _pad,
    _pad_amounts,
    _subsample,
    _VersionedOp,
)

__all__ = ["Zero", "Identity", "Pool"]

_PACKAGE = "keras_nas"


@keras.saving.register_keras_serializable(package=_PACKAGE)
class Zero(_Op):
    """The `none` op: zeros of the output shape.

    Args:
        strides: 1 or 2.
        **kwargs: base layer keyword arguments, such as `name`.
    """

    _config_names = ("strides",)

    def __init__(self, strides: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.strides = _check_strides(strides)

    def call(self, inputs):
        if self.strides > 1:
            inputs = _subsample(inputs)
        return ops.zeros_like(inputs)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class Identity(keras.layers.Layer):
    """The stride-1 `skip_connect` op: returns its input.

    Cells never apply drop-path to it, as in DARTS.
    """

    def call(self, inputs):
        return inputs

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class Pool(_VersionedOp):
    """Max or average pooling, 'same'-sized (`max_pool_3x3`, ...).

    Average pooling ignores the padded pixels (DARTS'
    `count_include_pad=False`), max pooling pads with -inf. At stride 2,
    `ops_version=2` pads symmetrically like the DARTS code's `padding=1`
    (windows centred on the even pixels); `ops_version=1` uses Keras'
    `padding="same"` (bottom/right only). No batch normalization: the DARTS
    search adds one after the pools of its edges (`MixedOp`).

    Args:
        pool_type: `"max"` or `"avg"`.
        pool_size: size of the pooling window.
        strides: 1 or 2.
        ops_version: 2 (default) or 1 (see the module docstring).
        **kwargs: base layer keyword arguments, such as `name`.

    Example:

    >>> layer = Pool("max", 3, strides=2)
    >>> tuple(layer(keras.ops.ones((2, 5, 5, 4))).shape)
    (2, 3, 3, 4)
    """

    _config_names = ("pool_type", "pool_size", "strides", "ops_version")

    def __init__(
        self,
        pool_type: str = "max",
        pool_size: int = 3,
        strides: int = 1,
        ops_version: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.pool_type = check_choice("pool_type", pool_type, ("max", "avg"))
        self.pool_size = check_positive_int("pool_size", pool_size)
        self.strides = _check_strides(strides)
        self.ops_version = _check_version(ops_version)

    def call(self, inputs):
        fn = ops.max_pool if self.pool_type == "max" else ops.average_pool
        if self.strides == 1 or self.ops_version < 2:
            return fn(
                inputs,
                pool_size=self.pool_size,
                strides=self.strides,
                padding="same",
            )
        pads = (_pad_amounts(self.pool_size),) * 2
        k, s = self.pool_size, self.strides
        if self.pool_type == "max":
            x = _pad(inputs, *pads, value=-math.inf)
            return fn(x, pool_size=k, strides=s, padding="valid")
        # Mean over the window's real pixels: the zero-padded mean divided
        # by the padded mean of ones (the fraction of real pixels).
        total = fn(_pad(inputs, *pads), pool_size=k, strides=s, padding="valid")
        ones = ops.ones_like(inputs[:1, :, :, :1])
        count = fn(_pad(ones, *pads), pool_size=k, strides=s, padding="valid")
        return total / count
