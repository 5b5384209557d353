"""Candidate operations of cell-based search spaces, as Keras 3 layers.

The layers follow the DARTS code (Liu et al., "DARTS: Differentiable
Architecture Search", ICLR 2019) and NAS-Bench-201 (Dong & Yang, ICLR 2020).
They work on NHWC tensors, use `keras.ops` only (so they run on TensorFlow and
JAX) and map `(batch, height, width, channels)` to
`(batch, ceil(height / strides), ceil(width / strides), filters)`.

Numerics as in the DARTS code (`ops_version=2`, the default): every stride-2
op pads symmetrically like PyTorch's `padding=k // 2` (a kxk window centred
on the even input pixels 0, 2, 4, ...: Keras' `padding="same"` would pad
only the bottom/right and centre stride-2 convs and pools on the odd ones,
misaligning them with the dilated convs and the factorized reduce summed on
the same edge), so all of them agree on odd spatial sizes too (7x7 -> 4x4);
max pooling pads with -inf, average pooling ignores padded pixels
(`count_include_pad=False`); batch normalization uses PyTorch's epsilon
1e-5 and momentum 0.1 (Keras' 0.9); convolution kernels start from
PyTorch's default `kaiming_uniform(a=sqrt(5))`, i.e. uniform in
`+-1 / sqrt(fan_in)` (so do the stems of `build_network` and of the DARTS
supernet, and the supernet's classifier; the dense heads of
`build_network`, `build_nb201_network` and `AuxiliaryHead` keep Keras'
Glorot-uniform kernels and zero biases, which only change where training
starts). `ops_version=1` keeps the numerics of keras-nas
before this alignment (Keras "same" padding at stride 2, epsilon 1e-3,
Glorot-uniform kernels): `.keras` files written then have no
`ops_version` in their configs and load as version 1, so they compute
exactly what they computed when saved.

`get_op(name, filters, strides)` builds an op from its registry name;
`register_op` adds user-defined ops usable in any `Genotype` and `Cell`.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from collections.abc import Callable, Sequence
from typing import Any

import keras
from keras import ops

from keras_nas._validation import MAX_FILTERS, check_positive_int
from keras_nas.blocks import registry

__all__ = [
    "ReLUConvBN",
    "SepConv",
    "DilConv",
    "FactorizedReduce",
    "Zero",
    "Identity",
    "Pool",
    "get_op",
    "register_op",
]

_PACKAGE = "keras_nas"


def _check_strides(strides: Any) -> int:
    if isinstance(strides, bool) or strides not in (1, 2):
        raise ValueError(
            f"Expected `strides` to be 1 or 2. Received: strides={strides!r}"
        )
    return int(strides)


def _reduced(size: int | None, strides: int) -> int | None:
    """Spatial size after a 'same'-padded op with the given stride."""
    return None if size is None else math.ceil(size / strides)


def _out_shape(input_shape: Sequence, strides: int, channels: int | None):
    b, h, w, c = tuple(input_shape)
    return (
        b,
        _reduced(h, strides),
        _reduced(w, strides),
        c if channels is None else channels,
    )


#: Momentum of every batch normalization in the blocks: PyTorch's default
#: (0.1 in its convention), as in the DARTS and NAS-Bench-201 code. Keras'
#: default 0.99 makes the moving statistics lag far behind on small data sets
#: and short runs, which breaks inference-mode predictions.
BN_MOMENTUM = 0.9

#: Epsilon of every batch normalization in the blocks (`ops_version=2`):
#: PyTorch's default, as in the DARTS and NAS-Bench-201 code (Keras: 1e-3,
#: kept by `ops_version=1`).
BN_EPSILON = 1e-5
_LEGACY_BN_EPSILON = 1e-3

#: The numerics of the ops built now (see the module docstring): 2 is the
#: DARTS code's, 1 that of keras-nas before it (saved files without an
#: `ops_version` in their config).
OPS_VERSION = 2
_VERSION = contextvars.ContextVar("keras_nas_ops_version", default=None)


def _check_version(value: Any) -> int:
    """`ops_version` (1 or 2); None: that of the enclosing scope, else 2."""
    if value is None:
        value = _VERSION.get()
        return OPS_VERSION if value is None else value
    if isinstance(value, bool) or value not in (1, 2):
        raise ValueError(
            "Expected `ops_version` to be 1 or 2. "
            f"Received: ops_version={value!r}"
        )
    return int(value)


@contextlib.contextmanager
def _version_scope(version: int):
    """Ops (and batch norms) built inside get `ops_version=version`.

    Blocks that build ops through `get_op` (whose factories take no version)
    build them in this scope with their own `ops_version`.
    """
    token = _VERSION.set(_check_version(version))
    try:
        yield
    finally:
        _VERSION.reset(token)


def _legacy_from_config(base: type = keras.layers.Layer) -> classmethod:
    """`from_config` of a versioned block: no `ops_version` means 1.

    Configs saved before `ops_version` existed load with the numerics they
    were saved with. `base` is the class whose `from_config` does the rest.
    """

    def from_config(cls, config, **kwargs):
        config = dict(config)
        config.setdefault("ops_version", 1)
        return base.from_config.__func__(cls, config, **kwargs)

    return classmethod(from_config)


def _batch_norm(
    affine: bool = True, ops_version: int | None = None, **kwargs
) -> keras.layers.Layer:
    version = _check_version(ops_version)
    epsilon = BN_EPSILON if version >= 2 else _LEGACY_BN_EPSILON
    return keras.layers.BatchNormalization(
        momentum=BN_MOMENTUM,
        epsilon=epsilon,
        center=affine,
        scale=affine,
        **kwargs,
    )


def _torch_uniform(fan_in_divisor: int = 1) -> keras.initializers.Initializer:
    """PyTorch's default kernel initializer, `kaiming_uniform(a=sqrt(5))`.

    Uniform in `+-1 / sqrt(fan_in)` (Keras' fan-in of a kernel: the product
    of all its dims but the last). `fan_in_divisor` divides Keras' fan-in:
    the number of input channels for a depthwise kernel, whose PyTorch
    fan-in (`groups=channels`) is only `kh * kw`.
    """
    return keras.initializers.VarianceScaling(
        scale=float(fan_in_divisor) / 3.0, mode="fan_in", distribution="uniform"
    )


def _kernel_init(version: int) -> Any:
    return _torch_uniform() if version >= 2 else "glorot_uniform"


def _pad_amounts(kernel_size: int, dilation_rate: int = 1) -> tuple:
    """Symmetric padding of PyTorch's `padding=k // 2` (for odd windows).

    `(before, after)` with `before = (k_eff - 1) // 2`, `after = k_eff // 2`,
    so a stride-2 'valid' window gives `ceil(n / 2)` outputs centred on the
    even pixels.
    """
    effective = dilation_rate * (kernel_size - 1) + 1
    return ((effective - 1) // 2, effective // 2)


def _padded_shape(shape: Sequence, rows: tuple, cols: tuple) -> tuple:
    b, h, w, c = tuple(shape)
    return (
        b,
        None if h is None else h + sum(rows),
        None if w is None else w + sum(cols),
        c,
    )


def _pad(x, rows: tuple = (0, 0), cols: tuple = (0, 0), value: float = 0.0):
    return ops.pad(
        x, [[0, 0], list(rows), list(cols), [0, 0]], constant_values=value
    )


def _subsample(x):
    """Keeps every second pixel: `ceil(n / 2)` per spatial dim, like 'same'."""
    return x[:, ::2, ::2, :]


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ReLUConvBN(keras.layers.Layer):
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
        self.filters = check_positive_int(
            "filters", filters, maximum=MAX_FILTERS
        )
        self.kernel_size = check_positive_int("kernel_size", kernel_size)
        self.strides = _check_strides(strides)
        self.dilation_rate = check_positive_int("dilation_rate", dilation_rate)
        self.affine = bool(affine)
        self.factorized = bool(factorized)
        self.ops_version = _check_version(ops_version)
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
            conv.build(shape)
            shape = conv.compute_output_shape(shape)
        if self.dilation_rate > 1 and self.strides > 1:
            shape = _out_shape(shape, 2, None)
        self.bn.build(shape)

    def call(self, inputs, training=None):
        x = ops.relu(inputs)
        for conv, pads in zip(self.convs, self._pads, strict=True):
            if pads is not None:
                x = _pad(x, *pads)
            x = conv(x)
        if self.dilation_rate > 1 and self.strides > 1:
            x = _subsample(x)
        return self.bn(x, training=training)

    def compute_output_shape(self, input_shape):
        return _out_shape(input_shape, self.strides, self.filters)

    def get_config(self):
        config = super().get_config()
        config.update(
            filters=self.filters,
            kernel_size=self.kernel_size,
            strides=self.strides,
            dilation_rate=self.dilation_rate,
            affine=self.affine,
            factorized=self.factorized,
            ops_version=self.ops_version,
        )
        return config

    from_config = _legacy_from_config()


@keras.saving.register_keras_serializable(package=_PACKAGE)
class SepConv(keras.layers.Layer):
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
        self.filters = check_positive_int(
            "filters", filters, maximum=MAX_FILTERS
        )
        self.kernel_size = check_positive_int("kernel_size", kernel_size)
        self.strides = _check_strides(strides)
        self.dilation_rate = check_positive_int("dilation_rate", dilation_rate)
        self.repeats = check_positive_int("repeats", repeats)
        self.affine = bool(affine)
        self.ops_version = _check_version(ops_version)
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
            self.depthwise[r].build(shape)
            shape = self.depthwise[r].compute_output_shape(shape)
            if r == 0 and self._subsampled_first():
                shape = _out_shape(shape, 2, None)
            self.pointwise[r].build(shape)
            shape = self.pointwise[r].compute_output_shape(shape)
            self.bns[r].build(shape)

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

    def compute_output_shape(self, input_shape):
        return _out_shape(input_shape, self.strides, self.filters)

    def get_config(self):
        config = super().get_config()
        config.update(
            filters=self.filters,
            kernel_size=self.kernel_size,
            strides=self.strides,
            dilation_rate=self.dilation_rate,
            repeats=self.repeats,
            affine=self.affine,
            ops_version=self.ops_version,
        )
        return config

    from_config = _legacy_from_config()


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
class FactorizedReduce(keras.layers.Layer):
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
        self.conv_1.build(shape)
        self.conv_2.build(shape)
        self.bn.build(self.compute_output_shape(shape))

    def call(self, inputs, training=None):
        x = ops.relu(inputs)
        shifted = ops.pad(x, [[0, 0], [0, 1], [0, 1], [0, 0]])[:, 1:, 1:, :]
        x = ops.concatenate([self.conv_1(x), self.conv_2(shifted)], axis=-1)
        return self.bn(x, training=training)

    def compute_output_shape(self, input_shape):
        return _out_shape(input_shape, 2, self.filters)

    def get_config(self):
        config = super().get_config()
        config.update(
            filters=self.filters,
            affine=self.affine,
            ops_version=self.ops_version,
        )
        return config

    from_config = _legacy_from_config()


@keras.saving.register_keras_serializable(package=_PACKAGE)
class Zero(keras.layers.Layer):
    """The `none` op: zeros of the output shape.

    Args:
        strides: 1 or 2.
        **kwargs: base layer keyword arguments, such as `name`.
    """

    def __init__(self, strides: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.strides = _check_strides(strides)

    def call(self, inputs):
        if self.strides > 1:
            inputs = _subsample(inputs)
        return ops.zeros_like(inputs)

    def compute_output_shape(self, input_shape):
        return _out_shape(input_shape, self.strides, None)

    def get_config(self):
        config = super().get_config()
        config.update(strides=self.strides)
        return config


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
class Pool(keras.layers.Layer):
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

    def __init__(
        self,
        pool_type: str = "max",
        pool_size: int = 3,
        strides: int = 1,
        ops_version: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if pool_type not in ("max", "avg"):
            raise ValueError(
                "Expected `pool_type` to be 'max' or 'avg'. "
                f"Received: pool_type={pool_type!r}"
            )
        self.pool_type = pool_type
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

    def compute_output_shape(self, input_shape):
        return _out_shape(input_shape, self.strides, None)

    def get_config(self):
        config = super().get_config()
        config.update(
            pool_type=self.pool_type,
            pool_size=self.pool_size,
            strides=self.strides,
            ops_version=self.ops_version,
        )
        return config

    from_config = _legacy_from_config()


def _skip(filters: int, strides: int, affine: bool) -> keras.layers.Layer:
    if strides == 1:
        return Identity()
    return FactorizedReduce(filters, affine=affine)


def _sep(k: int) -> Callable[..., keras.layers.Layer]:
    def factory(filters, strides, affine):
        return SepConv(filters, k, strides=strides, affine=affine)

    return factory


def _dil(k: int) -> Callable[..., keras.layers.Layer]:
    def factory(filters, strides, affine):
        return DilConv(filters, k, strides=strides, affine=affine)

    return factory


def _conv(
    k: int, factorized: bool = False
) -> Callable[..., keras.layers.Layer]:
    def factory(filters, strides, affine):
        return ReLUConvBN(
            filters, k, strides=strides, affine=affine, factorized=factorized
        )

    return factory


def _pool(kind: str) -> Callable[..., keras.layers.Layer]:
    def factory(filters, strides, affine):
        return Pool(kind, 3, strides=strides)

    return factory


_BUILTIN_FACTORIES: dict[str, Callable[..., keras.layers.Layer]] = {
    "none": lambda filters, strides, affine: Zero(strides),
    "skip_connect": _skip,
    "max_pool_3x3": _pool("max"),
    "avg_pool_3x3": _pool("avg"),
    "sep_conv_3x3": _sep(3),
    "sep_conv_5x5": _sep(5),
    "sep_conv_7x7": _sep(7),
    "dil_conv_3x3": _dil(3),
    "dil_conv_5x5": _dil(5),
    "nor_conv_1x1": _conv(1),
    "nor_conv_3x3": _conv(3),
    "conv_7x1_1x7": _conv(7, factorized=True),
}

for _name, _factory in _BUILTIN_FACTORIES.items():
    registry._FACTORIES.setdefault(_name, _factory)


def get_op(
    name: str, filters: int, strides: int = 1, affine: bool = True
) -> keras.layers.Layer:
    """Builds the candidate operation called `name`.

    Args:
        name: a name of `keras_nas.blocks.known_ops()` (built-in DARTS,
            NAS-Bench-201, NASNet/AmoebaNet ops, or one added with
            `register_op`).
        filters: channels of the op's input and output.
        strides: 1, or 2 to halve the spatial size (`ceil(n / 2)`).
            `skip_connect` at stride 2 is a `FactorizedReduce`.
        affine: whether the op's batch normalizations learn scale/offset.

    Returns:
        A new `keras.layers.Layer` mapping `(B, H, W, filters)` to
        `(B, ceil(H / strides), ceil(W / strides), filters)`.

    Example:

    >>> op = get_op("sep_conv_3x3", 8, strides=2)
    >>> tuple(op(keras.ops.ones((1, 8, 8, 8))).shape)
    (1, 4, 4, 8)
    """
    factory = registry._FACTORIES.get(name) if isinstance(name, str) else None
    if factory is None:
        raise ValueError(
            f"Unknown op. Expected one of {list(registry.known_ops())} "
            "(register custom ops with `keras_nas.blocks.register_op`, also "
            "before loading a saved model that uses them). "
            f"Received: name={name!r}"
        )
    check_positive_int("filters", filters, maximum=MAX_FILTERS)
    strides = _check_strides(strides)
    layer = factory(filters, strides, bool(affine))
    if not isinstance(layer, keras.layers.Layer):
        raise ValueError(
            f"Expected the factory of op {name!r} to return a "
            f"keras.layers.Layer. Received: {type(layer).__name__}"
        )
    return layer


def register_op(
    name: str,
    factory: Callable[[int, int, bool], keras.layers.Layer],
    *,
    overwrite: bool = False,
) -> None:
    """Registers a user-defined candidate operation.

    Once registered, `name` is valid in a `Genotype` and can be used by
    cells, search spaces and supernets. The returned layer must map
    `(B, H, W, filters)` to `(B, ceil(H / strides), ceil(W / strides),
    filters)`.

    The registry lives in the Python process and is not saved: a saved
    model (`.keras` file) or genotype stores only the op's *name*, and the
    cells rebuild their ops from the registry when they are loaded. So in
    every new process, call `register_op` (e.g. by importing the module
    that does) *before* `keras.saving.load_model`, `Genotype.from_json` or
    resuming a search that uses the op; otherwise loading fails with
    "Unknown op". (The file cannot hold the factory itself: only as Python
    code, which Keras' safe mode refuses to load, or as a registered name,
    which needs the same import.) The layers a factory returns need no
    `keras.saving.register_keras_serializable` inside the cells of
    `keras_nas.blocks` (the factory rebuilds them), only when saved alone.

    Args:
        name: the op's name.
        factory: callable `factory(filters, strides, affine)` returning a new
            `keras.layers.Layer`.
        overwrite: replace an existing op of the same name.

    Example:

    >>> def conv_3x3(filters, strides, affine):
    ...     return keras.layers.Conv2D(
    ...         filters, 3, strides=strides, padding="same")
    >>> register_op("plain_conv_3x3", conv_3x3)
    """
    if not isinstance(name, str) or not name:
        raise ValueError(
            f"Expected `name` to be a non-empty string. Received: name={name!r}"
        )
    if not callable(factory):
        raise ValueError(
            "Expected `factory` to be a callable "
            f"factory(filters, strides, affine). Received: factory={factory!r}"
        )
    if name in registry._FACTORIES and not overwrite:
        raise ValueError(
            f"Op {name!r} is already registered; pass `overwrite=True` to "
            f"replace it. Received: name={name!r}"
        )
    registry._FACTORIES[name] = factory
