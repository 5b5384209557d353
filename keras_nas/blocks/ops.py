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

from collections.abc import Callable

import keras

from keras_nas._validation import MAX_FILTERS, check_positive_int
from keras_nas.blocks import registry

# The numerics of `ops_version` (see the module docstring), re-exported: the
# cells of the DARTS supernet build their own ops and batch norms with them.
from keras_nas.blocks._op_numerics import BN_EPSILON as BN_EPSILON
from keras_nas.blocks._op_numerics import BN_MOMENTUM as BN_MOMENTUM
from keras_nas.blocks._op_numerics import OPS_VERSION as OPS_VERSION
from keras_nas.blocks._op_numerics import _batch_norm as _batch_norm
from keras_nas.blocks._op_numerics import _build as _build
from keras_nas.blocks._op_numerics import _check_strides
from keras_nas.blocks._op_numerics import _check_version as _check_version
from keras_nas.blocks._op_numerics import _kernel_init as _kernel_init
from keras_nas.blocks._op_numerics import (
    _legacy_from_config as _legacy_from_config,
)
from keras_nas.blocks._op_numerics import _version_scope as _version_scope
from keras_nas.blocks.conv_ops import (
    DilConv,
    FactorizedReduce,
    ReLUConvBN,
    SepConv,
)
from keras_nas.blocks.pool_ops import Identity, Pool, Zero

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
