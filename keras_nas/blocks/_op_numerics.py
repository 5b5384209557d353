"""Numerics shared by the candidate ops and the cells built from them.

Shapes (`_out_shape`), the `ops_version` switch between the DARTS code's
numerics (2) and those of keras-nas before them (1), batch normalization,
PyTorch's kernel initialization and its symmetric stride-2 padding: see the
docstring of `keras_nas.blocks.ops` for what each version computes.
`_Op` is the base of the op layers: its config is its constructor's
arguments, and a config saved without `ops_version` loads as version 1.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from collections.abc import Sequence
from typing import Any, ClassVar

import keras
import numpy as np
from keras import ops


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


class _HostDraw(keras.initializers.Initializer):
    """The values of a Keras initializer, drawn by NumPy on the host.

    Same distribution as `initializer` (a uniform `VarianceScaling`,
    `RandomUniform`, `Zeros` or `Ones`, see `_host_draw`), no backend op:
    a `keras.random` draw costs a few eager ops on TensorFlow and, on JAX,
    an XLA compilation per distinct shape (~0.4 s each; a micro DARTS
    supernet has 29 shapes). The values are a function of the
    initializer's seed, as Keras' are (reproducible under
    `keras.utils.set_random_seed`), from NumPy's stream instead of the
    backend's. Only used while a layer builds (`_build`): the layer's
    config keeps the Keras initializer.
    """

    def __init__(self, initializer: keras.initializers.Initializer):
        self.initializer = initializer

    def __call__(self, shape, dtype=None):
        init, shape = self.initializer, tuple(shape)
        if isinstance(init, keras.initializers.Zeros):
            values = np.zeros(shape, np.float32)
        elif isinstance(init, keras.initializers.Ones):
            values = np.ones(shape, np.float32)
        else:
            if isinstance(init, keras.initializers.RandomUniform):
                low, high = init.minval, init.maxval
            else:
                limit = math.sqrt(3.0 * init.scale / _fan(init.mode, shape))
                low, high = -limit, limit
            rng = np.random.default_rng(init.seed % 2**63)
            values = rng.uniform(low, high, size=shape).astype(np.float32)
        # With the dtype named: on JAX a NumPy array converted without one
        # is staged by an XLA compilation per shape (#13 o17).
        return ops.convert_to_tensor(
            values, dtype=keras.backend.standardize_dtype(dtype)
        )


def _fan(mode: str, shape: Sequence[int]) -> float:
    """The fan of a `VarianceScaling` mode (Keras' `compute_fans`)."""
    shape = tuple(shape)
    if len(shape) < 2:
        fan_in = fan_out = shape[0] if shape else 1
    else:
        receptive = math.prod(shape[:-2])
        fan_in, fan_out = shape[-2] * receptive, shape[-1] * receptive
    fan = {"fan_in": fan_in, "fan_out": fan_out}.get(
        mode, (fan_in + fan_out) / 2.0
    )
    return max(1.0, fan)


def _host_draw(initializer: Any) -> _HostDraw | None:
    """`_HostDraw(initializer)`, or None where Keras must draw itself.

    Also under a `keras.distribution`: Keras lays the drawn value out on
    the devices as it does its own draw, so a seed gives the same initial
    weights on one device and on several.
    """
    if isinstance(initializer, (keras.initializers.Zeros,
                                keras.initializers.Ones)):
        return _HostDraw(initializer)
    seeded = isinstance(getattr(initializer, "seed", None), int)
    if isinstance(initializer, keras.initializers.RandomUniform) and seeded:
        return _HostDraw(initializer)
    if (
        isinstance(initializer, keras.initializers.VarianceScaling)
        and seeded
        and initializer.distribution == "uniform"
        and initializer.input_axes is None
        and initializer.output_axes is None
    ):
        return _HostDraw(initializer)
    return None


#: The initializer attributes of Keras' convolution, dense and batch-norm
#: layers.
_INITIALIZERS = (
    "kernel_initializer",
    "depthwise_initializer",
    "bias_initializer",
    "gamma_initializer",
    "beta_initializer",
    "moving_mean_initializer",
    "moving_variance_initializer",
)


def _build(layer: keras.layers.Layer, shape: Sequence) -> None:
    """`layer.build(shape)` with its initial values drawn on the host.

    The initializers are swapped for `_HostDraw` while the layer creates
    its variables, then put back (its config and any later draw are
    Keras').
    """
    kept = {}
    for name in _INITIALIZERS:
        host = _host_draw(getattr(layer, name, None))
        if host is not None:
            kept[name] = getattr(layer, name)
            setattr(layer, name, host)
    try:
        layer.build(shape)
    finally:
        for name, initializer in kept.items():
            setattr(layer, name, initializer)


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


class _Op(keras.layers.Layer):
    """Base of the op layers: output shape and config.

    The config is the attributes named in `_config_names` (the
    constructor's arguments). The output has `filters` channels (those of
    the input if the op has no `filters`) and `ceil(n / strides)` pixels
    per spatial dim.
    """

    _config_names: ClassVar[tuple[str, ...]] = ()

    def compute_output_shape(self, input_shape):
        channels = getattr(self, "filters", None)
        return _out_shape(input_shape, self.strides, channels)

    def get_config(self):
        config = super().get_config()
        config.update({n: getattr(self, n) for n in self._config_names})
        return config


class _VersionedOp(_Op):
    """An `_Op` with `ops_version`; configs without it load as version 1."""

    from_config = _legacy_from_config()
