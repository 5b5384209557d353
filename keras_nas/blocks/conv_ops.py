"""The convolution ops of the cell search spaces, as Keras 3 layers.

`ReLUConvBN`, `SepConv`, `DilConv` and `FactorizedReduce` as in the DARTS
code (Liu et al., "DARTS: Differentiable Architecture Search", ICLR 2019)
and NAS-Bench-201 (Dong & Yang, ICLR 2020). Their numerics (`ops_version`)
are described in `keras_nas.blocks.ops`, which also builds them by name
(`get_op`).
"""

from __future__ import annotations

import keras
from keras import ops

from keras_nas._validation import MAX_FILTERS, check_positive_int
from keras_nas.blocks._op_numerics import (
    _batch_norm,
    _build,
    _check_strides,
    _check_version,
    _kernel_init,
    _out_shape,
    _pad,
    _pad_amounts,
    _padded_shape,
    _subsample,
    _torch_uniform,
    _VersionedOp,
)

__all__ = ["ReLUConvBN", "SepConv", "DilConv", "FactorizedReduce"]

_PACKAGE = "keras_nas"


def _set_conv_arguments(
    layer: keras.layers.Layer,
    filters: int,
    kernel_size: int,
    strides: int,
    dilation_rate: int,
    affine: bool,
    ops_version: int | None,
) -> None:
    """Checks and sets the arguments `ReLUConvBN` and `SepConv` share."""
    layer.filters = check_positive_int("filters", filters, maximum=MAX_FILTERS)
    layer.kernel_size = check_positive_int("kernel_size", kernel_size)
    layer.strides = _check_strides(strides)
    layer.dilation_rate = check_positive_int("dilation_rate", dilation_rate)
    layer.affine = bool(affine)
    layer.ops_version = _check_version(ops_version)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ReLUConvBN(_VersionedOp):
    """ReLU, convolution, batch normalization (DARTS `ReLUConvBN`).

    Also NAS-Bench-201's `nor_conv_kxk` ops and, with `factorized=True`, the
    `conv_7x1_1x7` op of NASNet/AmoebaNet (ReLU, 1xk conv, kx1 conv, BN).

    Args:
        filters: number of output channels.
        kernel_size: size of the square kernel (or of `k` in 1xk/kx1).
        strides: 1 or 2.
        dilation_rate: dilation of the convolution.
        affine: whether batch normalization learns a scale and offset.
        factorized: use a 1xk then a kx1 convolution instead of kxk.
        ops_version: 2 (default: the DARTS code's padding, initialization
            and batch-norm epsilon) or 1 (keras-nas before; see the module
            docstring).
        **kwargs: base layer keyword arguments, such as `name`.

    Example:

    >>> layer = ReLUConvBN(8, 3, strides=2)
    >>> tuple(layer(keras.ops.ones((2, 7, 7, 8))).shape)
    (2, 4, 4, 8)
    """

    _config_names = (
        "filters",
        "kernel_size",
        "strides",
        "dilation_rate",
        "affine",
        "factorized",
        "ops_version",
    )

    def __init__(
        self,
        filters: int,
        kernel_size: int,
        strides: int = 1,
        dilation_rate: int = 1,
        affine: bool = True,
        factorized: bool = False,
        ops_version: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        _set_conv_arguments(
            self, filters, kernel_size, strides, dilation_rate, affine,
            ops_version,
        )
        self.factorized = bool(factorized)
        k, s, d = self.kernel_size, self.strides, self.dilation_rate
        # TensorFlow cannot combine strides > 1 with dilation > 1: such convs
        # run at stride 1 and are subsampled afterwards.
        conv_strides = 1 if d > 1 else s
        if self.factorized:
            shapes = [((1, k), (1, conv_strides)), ((k, 1), (conv_strides, 1))]
        else:
            shapes = [((k, k), (conv_strides, conv_strides))]
        # Version 2 pads a strided conv symmetrically itself ('valid').
        self._pads = []
        for kernel, stride in shapes:
            aligned = self.ops_version >= 2 and max(stride) > 1
            self._pads.append(
                tuple(_pad_amounts(n, d) for n in kernel) if aligned else None
            )
        self.convs = [
            keras.layers.Conv2D(
                self.filters,
                kernel,
                strides=stride,
                padding="same" if pads is None else "valid",
                dilation_rate=d,
                use_bias=False,
                kernel_initializer=_kernel_init(self.ops_version),
            )
            for (kernel, stride), pads in zip(shapes, self._pads, strict=True)
        ]
        self.bn = _batch_norm(self.affine, self.ops_version)

    def build(self, input_shape):
        shape = tuple(input_shape)
        for conv, pads in zip(self.convs, self._pads, strict=True):
            if pads is not None:
                shape = _padded_shape(shape, *pads)
            _build(conv, shape)
            shape = conv.compute_output_shape(shape)
        if self.dilation_rate > 1 and self.strides > 1:
            shape = _out_shape(shape, 2, None)
        _build(self.bn, shape)

    def call(self, inputs, training=None):
        return self.bn(self.unnormalized(inputs), training=training)

    def unnormalized(self, inputs):
        """The output before the batch norm (`bn`)."""
        x = ops.relu(inputs)
        for conv, pads in zip(self.convs, self._pads, strict=True):
            if pads is not None:
                x = _pad(x, *pads)
            x = conv(x)
        if self.dilation_rate > 1 and self.strides > 1:
            x = _subsample(x)
        return x


@keras.saving.register_keras_serializable(package=_PACKAGE)
class SepConv(_VersionedOp):
    """Stacked separable convolutions (DARTS `SepConv`).

    Each repeat is ReLU, depthwise conv, pointwise 1x1 conv, batch norm; the
    stride applies to the first repeat only. DARTS' `sep_conv_kxk` uses two
    repeats; its `dil_conv_kxk` is one repeat with dilation 2 (`DilConv`).

    Args:
        filters: number of output channels.
        kernel_size: depthwise kernel size.
        strides: 1 or 2.
        dilation_rate: dilation of the depthwise convolutions.
        repeats: number of ReLU-depthwise-pointwise-BN blocks.
        affine: whether batch normalization learns a scale and offset.
        ops_version: 2 (default: the DARTS code's padding, initialization
            and batch-norm epsilon) or 1 (see the module docstring).
        **kwargs: base layer keyword arguments, such as `name`.

    Example:

    >>> layer = SepConv(8, 3)
    >>> tuple(layer(keras.ops.ones((2, 8, 8, 8))).shape)
    (2, 8, 8, 8)
    """

    _config_names = (
        "filters",
        "kernel_size",
        "strides",
        "dilation_rate",
        "repeats",
        "affine",
        "ops_version",
    )

    def __init__(
        self,
        filters: int,
        kernel_size: int,
        strides: int = 1,
        dilation_rate: int = 1,
        repeats: int = 2,
        affine: bool = True,
        ops_version: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        _set_conv_arguments(
            self, filters, kernel_size, strides, dilation_rate, affine,
            ops_version,
        )
        self.repeats = check_positive_int("repeats", repeats)
        d = self.dilation_rate
        # Version 2 pads the strided depthwise conv symmetrically itself.
        self._pads = None
        if self.ops_version >= 2 and self.strides > 1 and d == 1:
            self._pads = (_pad_amounts(self.kernel_size),) * 2
        self.depthwise = []
        self.pointwise = []
        self.bns = []
        for r in range(self.repeats):
            stride = self.strides if (r == 0 and d == 1) else 1
            padded = r == 0 and self._pads is not None
            self.depthwise.append(
                keras.layers.DepthwiseConv2D(
                    self.kernel_size,
                    strides=stride,
                    padding="valid" if padded else "same",
                    dilation_rate=d,
                    use_bias=False,
                )
            )
            self.pointwise.append(
                keras.layers.Conv2D(
                    self.filters,
                    1,
                    use_bias=False,
                    kernel_initializer=_kernel_init(self.ops_version),
                )
            )
            self.bns.append(_batch_norm(self.affine, self.ops_version))

    def _subsampled_first(self) -> bool:
        return self.strides > 1 and self.dilation_rate > 1

    def build(self, input_shape):
        shape = tuple(input_shape)
        for r in range(self.repeats):
            if self.ops_version >= 2:
                # PyTorch's fan-in of a depthwise kernel is kh * kw.
                self.depthwise[r].depthwise_initializer = _torch_uniform(
                    shape[-1]
                )
            if r == 0 and self._pads is not None:
                shape = _padded_shape(shape, *self._pads)
            _build(self.depthwise[r], shape)
            shape = self.depthwise[r].compute_output_shape(shape)
            if r == 0 and self._subsampled_first():
                shape = _out_shape(shape, 2, None)
            _build(self.pointwise[r], shape)
            shape = self.pointwise[r].compute_output_shape(shape)
            _build(self.bns[r], shape)

    def call(self, inputs, training=None):
        x = inputs
        for r in range(self.repeats):
            x = ops.relu(x)
            if r == 0 and self._pads is not None:
                x = _pad(x, *self._pads)
            x = self.depthwise[r](x)
            if r == 0 and self._subsampled_first():
                x = _subsample(x)
            x = self.pointwise[r](x)
            x = self.bns[r](x, training=training)
        return x


@keras.saving.register_keras_serializable(package=_PACKAGE)
class DilConv(SepConv):
    """Dilated separable convolution (DARTS `DilConv`).

    ReLU, dilated depthwise conv, pointwise conv, batch norm: a `SepConv`
    with one repeat and dilation 2 by default.

    Args:
        filters: number of output channels.
        kernel_size: depthwise kernel size.
        strides: 1 or 2.
        dilation_rate: dilation of the depthwise convolution.
        affine: whether batch normalization learns a scale and offset.
        **kwargs: base layer keyword arguments (and `repeats`,
            `ops_version`).
    """

    def __init__(
        self,
        filters: int,
        kernel_size: int,
        strides: int = 1,
        dilation_rate: int = 2,
        affine: bool = True,
        **kwargs,
    ):
        kwargs.setdefault("repeats", 1)
        super().__init__(
            filters,
            kernel_size,
            strides=strides,
            dilation_rate=dilation_rate,
            affine=affine,
            **kwargs,
        )


@keras.saving.register_keras_serializable(package=_PACKAGE)
class FactorizedReduce(_VersionedOp):
    """Halves the spatial size with two offset 1x1 convs (DARTS).

    ReLU, then two 1x1 stride-2 convolutions, the second on the input shifted
    by one pixel, concatenated along channels, then batch norm. The shifted
    input is zero-padded at the bottom/right, so odd sizes give
    `ceil(n / 2)` like every other stride-2 op. Also used to match the
    previous-previous cell's output to a reduced resolution.

    Args:
        filters: number of output channels (split between the two convs).
        affine: whether batch normalization learns a scale and offset.
        ops_version: 2 (default: the DARTS code's initialization and
            batch-norm epsilon) or 1 (see the module docstring).
        **kwargs: base layer keyword arguments, such as `name`.

    Example:

    >>> layer = FactorizedReduce(8)
    >>> tuple(layer(keras.ops.ones((2, 7, 7, 4))).shape)
    (2, 4, 4, 8)
    """

    _config_names = ("filters", "affine", "ops_version")

    def __init__(
        self,
        filters: int,
        affine: bool = True,
        ops_version: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.filters = check_positive_int("filters", filters, 2, MAX_FILTERS)
        self.affine = bool(affine)
        self.ops_version = _check_version(ops_version)
        half = self.filters // 2
        init = _kernel_init(self.ops_version)
        self.conv_1 = keras.layers.Conv2D(
            half, 1, strides=2, use_bias=False, kernel_initializer=init
        )
        self.conv_2 = keras.layers.Conv2D(
            self.filters - half,
            1,
            strides=2,
            use_bias=False,
            kernel_initializer=init,
        )
        self.bn = _batch_norm(self.affine, self.ops_version)

    def build(self, input_shape):
        shape = tuple(input_shape)
        _build(self.conv_1, shape)
        _build(self.conv_2, shape)
        _build(self.bn, self.compute_output_shape(shape))

    def call(self, inputs, training=None):
        return self.bn(self.unnormalized(inputs), training=training)

    def unnormalized(self, inputs):
        """The output before the batch norm (`bn`)."""
        x = ops.relu(inputs)
        shifted = ops.pad(x, [[0, 0], [0, 1], [0, 1], [0, 0]])[:, 1:, 1:, :]
        return ops.concatenate(
            [self.conv_1(x), self.conv_2(shifted)], axis=-1
        )

    def compute_output_shape(self, input_shape):
        return _out_shape(input_shape, 2, self.filters)
