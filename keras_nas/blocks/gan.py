"""AutoGAN generator cells and the networks of a GAN search, as Keras layers.

Implements the generator search space of Gong, Chang, Jiang and Wang,
"AutoGAN: Neural Architecture Search for Generative Adversarial Networks"
(ICCV 2019), Section 3.1. A generator is a linear layer that maps the latent
vector to a `bottom x bottom` feature map, `num_cells` `GeneratorCell`s that
each double the resolution, and a fixed output head (batch norm, ReLU, 3x3
conv, tanh). Every cell chooses:

- its upsampling: `"nearest"`, `"bilinear"` or `"deconv"` (a 2x2
  transposed convolution with stride 2),
- the normalization of its two conv blocks: `"batch"`, `"instance"` or
  `"none"`,
- the conv block type: `"post"` activation (upsample, conv, norm, ReLU) or
  `"pre"` activation (norm, ReLU, upsample, conv),
- an in-cell shortcut (a 1x1 conv of the upsampled cell input, added to the
  cell output) on or off,
- for every earlier cell, a cross-cell skip connection: the earlier cell's
  feature map after its first conv block, upsampled to this cell's size
  (with this cell's mode; a transposed conv of the right stride for
  `"deconv"`, as in the AutoGAN code) and mapped by a 1x1 conv, is added
  before the second conv block.

The discriminator of a search is fixed (`build_discriminator`), as in
AutoGAN, which searches the generator only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import keras
from keras import ops

from keras_nas._validation import (
    MAX_FILTERS,
    check_bool,
    check_choice,
    check_positive_int,
)

__all__ = [
    "CONV_TYPES",
    "NORMS",
    "UPSAMPLE_MODES",
    "GeneratorCell",
    "build_discriminator",
    "build_generator",
]

_PACKAGE = "keras_nas"

#: Upsampling choices of a cell (AutoGAN: bilinear, nearest, deconv).
UPSAMPLE_MODES: tuple[str, ...] = ("nearest", "bilinear", "deconv")
#: Normalization choices of a cell's conv blocks (AutoGAN: BN, IN, none).
NORMS: tuple[str, ...] = ("batch", "instance", "none")
#: Conv block types: post-activation and pre-activation.
CONV_TYPES: tuple[str, ...] = ("post", "pre")

#: Batch-norm momentum (PyTorch's default, as elsewhere in keras-nas).
BN_MOMENTUM = 0.9


def _norm(kind: str, name: str) -> keras.layers.Layer | None:
    if kind == "batch":
        return keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=name)
    if kind == "instance":
        # groups=-1: one group per channel, i.e. instance normalization,
        # without affine parameters (PyTorch's InstanceNorm2d default).
        return keras.layers.GroupNormalization(
            groups=-1, center=False, scale=False, name=name
        )
    return None


def _upsampler(mode: str, filters: int, scale: int, name: str):
    if mode == "deconv":
        return keras.layers.Conv2DTranspose(
            filters, scale, strides=scale, name=name
        )
    return keras.layers.UpSampling2D(scale, interpolation=mode, name=name)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class GeneratorCell(keras.layers.Layer):
    """An AutoGAN generator cell: two 3x3 conv blocks that double the size.

    Called on `x` (no cross-cell inputs) or on `[x, f_0, ..., f_{k-1}]`,
    where `f_j` is the skip feature of earlier cell `j` (the second output of
    that cell, at a lower resolution by a power of two) and
    `k = len(skips)`. Returns `[output, skip_feature]`, both of shape
    `(batch, 2 * height, 2 * width, filters)`: the cell's output and its
    feature map after the first conv block, which later cells may read.

    Post-activation blocks compute `up -> conv -> norm -> ReLU` and
    `conv -> norm -> ReLU`; pre-activation blocks `norm -> ReLU -> up ->
    conv` and `norm -> ReLU -> conv` (the upsampling sits in the first
    block). See Gong et al., "AutoGAN: Neural Architecture Search for
    Generative Adversarial Networks" (ICCV 2019), Fig. 2.

    Args:
        filters: output channels of both conv blocks.
        upsample: `"nearest"`, `"bilinear"` or `"deconv"`.
        norm: `"batch"`, `"instance"` or `"none"`.
        conv_type: `"post"` or `"pre"` activation.
        shortcut: add a 1x1 conv of the upsampled input to the output.
        skips: one bool per earlier cell: whether its skip feature is added
            (upsampled, 1x1 conv) before the second conv block.
        **kwargs: base layer keyword arguments, such as `name`.

    Example:

    >>> cell = GeneratorCell(8, upsample="bilinear", skips=(True,))
    >>> x, f0 = keras.ops.ones((2, 4, 4, 8)), keras.ops.ones((2, 4, 4, 8))
    >>> out, feature = cell([x, f0])
    >>> tuple(out.shape), tuple(feature.shape)
    ((2, 8, 8, 8), (2, 8, 8, 8))
    """

    def __init__(
        self,
        filters: int,
        upsample: str = "nearest",
        norm: str = "batch",
        conv_type: str = "post",
        shortcut: bool = True,
        skips: Sequence[bool] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.filters = check_positive_int(
            "filters", filters, maximum=MAX_FILTERS
        )
        self.upsample = check_choice("upsample", upsample, UPSAMPLE_MODES)
        self.norm = check_choice("norm", norm, NORMS)
        self.conv_type = check_choice("conv_type", conv_type, CONV_TYPES)
        self.shortcut = check_bool("shortcut", shortcut)
        if isinstance(skips, (str, bytes)) or not isinstance(skips, Sequence):
            raise ValueError(
                "Expected `skips` to be a sequence of bools, one per earlier "
                f"cell. Received: skips={skips!r}"
            )
        self.skips = tuple(check_bool("skips", s) for s in skips)
        self.conv1 = keras.layers.Conv2D(
            self.filters, 3, padding="same", name="conv1"
        )
        self.conv2 = keras.layers.Conv2D(
            self.filters, 3, padding="same", name="conv2"
        )
        self.norm1 = _norm(self.norm, "norm1")
        self.norm2 = _norm(self.norm, "norm2")
        # Built in `build`, where the input channels / skip scales are known.
        self.up = None
        self.shortcut_up = None
        self.shortcut_conv = None
        self.skip_ups = []
        self.skip_convs = []

    # ------------------------------------------------------------ shapes

    def _split_shapes(self, input_shape):
        # One shape `(b, h, w, c)` or a list of shapes (JSON gives lists).
        if input_shape and isinstance(input_shape[0], (tuple, list)):
            shapes = [tuple(s) for s in input_shape]
        else:
            shapes = [tuple(input_shape)]
        if len(shapes) not in (1, 1 + len(self.skips)):
            raise ValueError(
                "Expected the cell input to be `x` or `[x, f_0, ..., f_k-1]` "
                f"with k = len(skips) = {len(self.skips)}. Received: "
                f"{len(shapes)} inputs"
            )
        if len(shapes) == 1 and any(self.skips):
            raise ValueError(
                "Expected the skip features of the earlier cells as inputs, "
                f"since skips={self.skips}. Received: only `x`"
            )
        return shapes[0], shapes[1:]

    def _out_shape(self, x_shape):
        b, h, w, _ = x_shape
        return (
            b,
            None if h is None else 2 * h,
            None if w is None else 2 * w,
            self.filters,
        )

    def build(self, input_shape):
        x_shape, skip_shapes = self._split_shapes(input_shape)
        out_shape = self._out_shape(x_shape)
        in_channels = x_shape[-1]
        # Pre-activation upsamples the normalized input; post-activation the
        # raw input. Either way the first conv sees `in_channels` channels.
        self.up = _upsampler(self.upsample, in_channels, 2, "up")
        self.up.build(x_shape)
        up_shape = self.up.compute_output_shape(x_shape)
        if self.norm1 is not None:
            self.norm1.build(x_shape if self.conv_type == "pre" else out_shape)
        self.conv1.build(up_shape)
        if self.norm2 is not None:
            self.norm2.build(out_shape)
        self.conv2.build(out_shape)
        if self.shortcut:
            self.shortcut_up = _upsampler(
                self.upsample, in_channels, 2, "shortcut_up"
            )
            self.shortcut_up.build(x_shape)
            self.shortcut_conv = keras.layers.Conv2D(
                self.filters, 1, name="shortcut_conv"
            )
            self.shortcut_conv.build(up_shape)
        self.skip_ups, self.skip_convs = [], []
        for j, (flag, shape) in enumerate(
            zip(self.skips, skip_shapes, strict=False)
        ):
            if not flag:
                self.skip_ups.append(None)
                self.skip_convs.append(None)
                continue
            scale = self._scale(shape, out_shape, j)
            up = None
            if scale > 1:
                up = _upsampler(self.upsample, shape[-1], scale, f"skip{j}_up")
                up.build(shape)
                shape = up.compute_output_shape(shape)
            conv = keras.layers.Conv2D(self.filters, 1, name=f"skip{j}_conv")
            conv.build(shape)
            self.skip_ups.append(up)
            self.skip_convs.append(conv)

    @staticmethod
    def _scale(skip_shape, out_shape, j: int) -> int:
        h, oh = skip_shape[1], out_shape[1]
        if h is None or oh is None:
            raise ValueError(
                "Expected static spatial sizes for the skip inputs. "
                f"Received: shape of f_{j}={skip_shape}"
            )
        scale = oh // h
        ok = (
            scale >= 1
            and oh == scale * h
            and out_shape[2] == scale * skip_shape[2]
            and math.log2(scale).is_integer()
        )
        if not ok:
            raise ValueError(
                f"Expected skip input f_{j} to be smaller than the cell "
                f"output {out_shape[1:3]} by a power of two. Received: shape "
                f"of f_{j}={skip_shape}"
            )
        return scale

    def compute_output_shape(self, input_shape):
        x_shape, _ = self._split_shapes(input_shape)
        shape = self._out_shape(x_shape)
        return [shape, shape]

    # ----------------------------------------------------------- forward

    def _normalize(self, layer, x, training):
        return x if layer is None else layer(x, training=training)

    def call(self, inputs, training=None):
        if isinstance(inputs, (list, tuple)):
            x, features = inputs[0], list(inputs[1:])
        else:
            x, features = inputs, []
        if self.conv_type == "pre":
            h = ops.relu(self._normalize(self.norm1, x, training))
            h = self.conv1(self.up(h))
        else:
            h = self.conv1(self.up(x))
            h = ops.relu(self._normalize(self.norm1, h, training))
        skip_feature = h
        for feature, up, conv in zip(
            features, self.skip_ups, self.skip_convs, strict=False
        ):
            if conv is not None:
                h = h + conv(feature if up is None else up(feature))
        if self.conv_type == "pre":
            h = ops.relu(self._normalize(self.norm2, h, training))
            out = self.conv2(h)
        else:
            out = self.conv2(h)
            out = ops.relu(self._normalize(self.norm2, out, training))
        if self.shortcut:
            out = out + self.shortcut_conv(self.shortcut_up(x))
        return [out, skip_feature]

    def get_config(self):
        config = super().get_config()
        config.update(
            filters=self.filters,
            upsample=self.upsample,
            norm=self.norm,
            conv_type=self.conv_type,
            shortcut=self.shortcut,
            skips=list(self.skips),
        )
        return config


def _check_image_shape(image_shape: Any) -> tuple[int, int, int]:
    if (
        isinstance(image_shape, (str, bytes))
        or not isinstance(image_shape, Sequence)
        or len(image_shape) != 3
        or not all(
            isinstance(d, int) and not isinstance(d, bool) and d > 0
            for d in image_shape
        )
    ):
        raise ValueError(
            "Expected `image_shape` to be (height, width, channels) of "
            f"positive ints. Received: image_shape={image_shape!r}"
        )
    return tuple(image_shape)


def max_generator_cells(image_shape: Sequence[int]) -> int:
    """The most cells a generator of `image_shape` can have.

    Each cell doubles the size, so `height` and `width` must be divisible by
    `2 ** num_cells` (the bottom feature map is at least 1x1).
    """
    h, w, _ = _check_image_shape(image_shape)
    n = 0
    while h % 2 == 0 and w % 2 == 0:
        h, w, n = h // 2, w // 2, n + 1
    return n


_CELL_KEYS = ("upsample", "norm", "conv_type", "shortcut", "skips")


def build_generator(
    image_shape: Sequence[int] = (8, 8, 1),
    cells: Sequence[Mapping[str, Any]] = ({}, {}, {}),
    filters: int = 32,
    latent_dim: int = 32,
    name: str = "generator",
) -> keras.Model:
    """Builds an AutoGAN generator: latent vector -> image in [-1, 1].

    A dense layer maps the latent vector to a `(h / 2**n, w / 2**n,
    filters)` map (`n = len(cells)`), `n` `GeneratorCell`s double it to the
    image size, and the AutoGAN output head (batch norm, ReLU, 3x3 conv to
    `channels`, tanh) makes the image.

    Args:
        image_shape: `(height, width, channels)` of the images; height and
            width must be divisible by `2 ** len(cells)`.
        cells: one dict per cell with `GeneratorCell` arguments (`upsample`,
            `norm`, `conv_type`, `shortcut`, `skips`); missing keys take the
            defaults. Cell `i`'s `skips` has at most `i` entries (earlier
            cells), shorter means the rest are off.
        filters: channels of every cell (`gf_dim` in AutoGAN).
        latent_dim: size of the latent vector.
        name: the model's name.

    Returns:
        An uncompiled functional `keras.Model`.

    Example:

    >>> g = build_generator((8, 8, 1), cells=[{}, {"skips": [True]}])
    >>> g(keras.ops.zeros((2, 32))).shape
    (2, 8, 8, 1)
    """
    h, w, channels = _check_image_shape(image_shape)
    if isinstance(cells, (str, bytes, Mapping)) or not isinstance(
        cells, Sequence
    ):
        raise ValueError(
            "Expected `cells` to be a sequence of dicts of GeneratorCell "
            f"arguments. Received: cells={cells!r}"
        )
    n = len(cells)
    if not 1 <= n <= max_generator_cells(image_shape):
        raise ValueError(
            "Expected between 1 and "
            f"{max_generator_cells(image_shape)} `cells` for images of size "
            f"{h}x{w} (each cell doubles the size). Received: "
            f"{n} cells"
        )
    filters = check_positive_int("filters", filters, maximum=MAX_FILTERS)
    latent_dim = check_positive_int("latent_dim", latent_dim)
    bh, bw = h // 2**n, w // 2**n
    z = keras.Input((latent_dim,), name="latent")
    x = keras.layers.Dense(bh * bw * filters, name="linear")(z)
    x = keras.layers.Reshape((bh, bw, filters), name="bottom")(x)
    features = []
    for i, spec in enumerate(cells):
        if not isinstance(spec, Mapping) or set(spec) - set(_CELL_KEYS):
            raise ValueError(
                f"Expected `cells[{i}]` to be a dict with keys from "
                f"{list(_CELL_KEYS)}. Received: cells[{i}]={spec!r}"
            )
        spec = dict(spec)
        skips = tuple(spec.pop("skips", ()))
        if len(skips) > i:
            raise ValueError(
                f"Expected `cells[{i}]['skips']` to have at most {i} entries "
                f"(one per earlier cell). Received: skips={list(skips)}"
            )
        skips = skips + (False,) * (i - len(skips))
        cell = GeneratorCell(filters, skips=skips, name=f"cell{i}", **spec)
        x, feature = cell([x] + features if any(skips) else x)
        features.append(feature)
    x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name="out_bn")(x)
    x = keras.layers.ReLU(name="out_relu")(x)
    x = keras.layers.Conv2D(channels, 3, padding="same", name="out_conv")(x)
    image = keras.layers.Activation("tanh", name="image")(x)
    return keras.Model(z, image, name=name)


def build_discriminator(
    image_shape: Sequence[int] = (8, 8, 1),
    filters: int = 32,
    spectral_norm: bool = True,
    name: str = "discriminator",
) -> keras.Model:
    """Builds the fixed discriminator of a GAN search: image -> score.

    A small SNGAN-style (Miyato et al., ICLR 2018) conv net, scaled down
    from AutoGAN's fixed discriminator: a 3x3 conv with `filters` channels,
    then 4x4 stride-2 convs that double the channels until the feature map
    is at most 4x4 (at least one), each followed by LeakyReLU(0.2), then a
    dense layer to one unbounded score (a hinge-loss critic). With
    `spectral_norm`, every conv and dense layer is wrapped in
    `keras.layers.SpectralNormalization`.

    Args:
        image_shape: `(height, width, channels)` of the images.
        filters: channels of the first conv.
        spectral_norm: spectrally normalize the weights.
        name: the model's name.

    Returns:
        An uncompiled functional `keras.Model` with output `(batch, 1)`.
    """
    h, w, _ = _check_image_shape(image_shape)
    filters = check_positive_int("filters", filters, maximum=MAX_FILTERS)
    check_bool("spectral_norm", spectral_norm)

    def wrap(layer):
        if not spectral_norm:
            return layer
        return keras.layers.SpectralNormalization(
            layer, name=f"{layer.name}_sn"
        )

    images = keras.Input(tuple(image_shape), name="image")
    x = wrap(keras.layers.Conv2D(filters, 3, padding="same", name="conv0"))(
        images
    )
    x = keras.layers.LeakyReLU(0.2, name="act0")(x)
    k = 0
    while k == 0 or max(h, w) > 4:
        k += 1
        filters *= 2
        x = wrap(
            keras.layers.Conv2D(
                filters, 4, strides=2, padding="same", name=f"conv{k}"
            )
        )(x)
        x = keras.layers.LeakyReLU(0.2, name=f"act{k}")(x)
        h, w = math.ceil(h / 2), math.ceil(w / 2)
    x = keras.layers.Flatten(name="flatten")(x)
    score = wrap(keras.layers.Dense(1, name="score"))(x)
    return keras.Model(images, score, name=name)
