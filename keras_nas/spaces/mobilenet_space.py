"""A MobileNetV2-style search space of inverted-residual (MBConv) blocks.

The space of ProxylessNAS (Cai et al., "ProxylessNAS: Direct Neural
Architecture Search on Target Task and Hardware", ICLR 2019) and MnasNet
(Tan et al., CVPR 2019): a convolutional stem, stages of MBConv blocks
(`keras_nas.blocks.MBConv`), and a classifier. Every block has one
hyperparameter, `stage{s}/block{b}`, a choice among the MBConv ops
`"mbconv_{k}x{k}_e{e}"` (kernel size `k` in `kernel_sizes`, expansion `e` in
`expansions`) and, for a block whose input and output shapes agree,
`"zero"`: the block is skipped. The first block of a stage that changes the
stride or the width is never skipped, so every architecture has the same
stage widths and resolutions, as in ProxylessNAS.

`space.genotype(hp)` is the trial's `MobileNetGenotype`; `space.blocks`
describes every block (input shape, width, stride, choices); and
`space.latency_layout()` lists the parts a `keras_nas.estimation.
LatencyTable` measures (every candidate block at its input shape, the stem
and the head).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

import keras
import keras_tuner

from keras_nas._validation import MAX_FILTERS, is_int
from keras_nas.blocks.mbconv import MBConv
from keras_nas.blocks.mobilenet_genotype import (
    SKIP_OP,
    MobileNetGenotype,
    mbconv_op,
    parse_mbconv_op,
)
from keras_nas.spaces import _common

__all__ = [
    "MobileNetBlock",
    "MobileNetSearchSpace",
    "PROXYLESS_STAGES",
]

#: `(filters, blocks, strides)` of each stage of ProxylessNAS' ImageNet
#: backbone (after its stem and its fixed first block).
PROXYLESS_STAGES: tuple[tuple[int, int, int], ...] = (
    (24, 4, 2),
    (40, 4, 2),
    (80, 4, 2),
    (96, 4, 1),
    (192, 4, 2),
    (320, 1, 1),
)

#: The default stages, for small (CIFAR-size) inputs.
DEFAULT_STAGES: tuple[tuple[int, int, int], ...] = (
    (24, 2, 2),
    (40, 2, 2),
    (80, 2, 2),
    (96, 2, 1),
)


@dataclasses.dataclass(frozen=True)
class MobileNetBlock:
    """One searched block of a `MobileNetSearchSpace`.

    Attributes:
        index: position among all blocks (the index in the genotype).
        stage: the stage (0-based); `position`: the block in its stage.
        input_shape: `(height, width, channels)` the block receives.
        filters: output channels; `strides`: 1 or 2.
        choices: its op names (`"zero"` last, if it may be skipped).
    """

    index: int
    stage: int
    position: int
    input_shape: tuple[int, int, int]
    filters: int
    strides: int
    choices: tuple[str, ...]

    @property
    def hp_name(self) -> str:
        return f"stage{self.stage}/block{self.position}"

    @property
    def layer_name(self) -> str:
        return f"stage{self.stage}_block{self.position}"


def _shape_text(shape: Sequence[int]) -> str:
    return "x".join(str(int(d)) for d in shape)


def _make_divisible(value: float, divisor: int = 8) -> int:
    """MobileNetV2's channel rounding (to a multiple of `divisor`)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def _check_stages(stages: Any) -> tuple[tuple[int, int, int], ...]:
    fail = ValueError(
        "Expected `stages` to be a non-empty sequence of (filters, blocks, "
        "strides) triples of positive integers with strides 1 or 2. "
        f"Received: stages={stages!r}"
    )
    if isinstance(stages, (str, bytes)) or not isinstance(stages, Sequence):
        raise fail
    out = []
    for stage in stages:
        if isinstance(stage, (str, bytes)) or not isinstance(stage, Sequence):
            raise fail
        if len(stage) != 3 or not all(is_int(v) and v > 0 for v in stage):
            raise fail
        filters, blocks, strides = (int(v) for v in stage)
        if filters > MAX_FILTERS or strides not in (1, 2) or blocks > 64:
            raise fail
        out.append((filters, blocks, strides))
    if not out:
        raise fail
    return tuple(out)


class MobileNetSearchSpace(keras_tuner.HyperModel):
    """ProxylessNAS / MnasNet space: stages of searched MBConv blocks.

    The network is a 3x3 convolution stem (`stem_filters` channels, stride
    `stem_strides`, batch norm, ReLU6), the stages, an optional 1x1
    convolution to `head_filters` channels, global average pooling, dropout
    and a softmax classifier. Stage `s` is `stages[s] = (filters, blocks,
    strides)`: `blocks` MBConv blocks with `filters` channels (times
    `width_multiplier`, rounded to a multiple of 8 as in MobileNetV2 when it
    is not 1), the first one with stride `strides`. Each block is one of
    `len(kernel_sizes) * len(expansions)` MBConv ops or, when its input and
    output shapes agree and `allow_skip`, `"zero"` (skipped).

    Layers are named by position (`stem_conv`, `stage{s}_block{b}`,
    `head_conv`, `predictions`), so the same block has the same name in
    every architecture.

    Args:
        input_shape: shape of one input image, `(height, width, channels)`.
        num_classes: number of classes.
        stages: `(filters, blocks, strides)` per stage (see
            `PROXYLESS_STAGES` for ProxylessNAS' ImageNet layout).
        stem_filters: channels of the stem convolution.
        stem_strides: stride of the stem (2 on ImageNet, 1 on small
            images).
        head_filters: channels of the 1x1 convolution before pooling (1280
            in ProxylessNAS); None leaves it out.
        kernel_sizes: depthwise kernel sizes to choose from.
        expansions: expansion ratios to choose from.
        allow_skip: offer the `"zero"` op (skip the block).
        width_multiplier: scales the channels of the stem and the stages.
        dropout: dropout rate before the classifier.
        optimizer: name of a Keras optimizer or an optimizer instance
            (copied for each model).
        learning_rate: the optimizer's learning rate.
        bn_momentum: momentum set on every BatchNormalization layer (0.9 as
            in the other spaces; Keras' 0.99 is too slow for the few steps
            of a trial); None keeps the layers' own.
        name: name of the hypermodel.
        tunable: whether the hyperparameters are tunable.

    Example:

    >>> space = MobileNetSearchSpace(
    ...     input_shape=(8, 8, 1), num_classes=10, stem_filters=8,
    ...     stages=((8, 2, 1), (16, 2, 2)))
    >>> [b.choices[-1] for b in space.blocks]
    ['zero', 'zero', 'mbconv_7x7_e6', 'zero']
    >>> tuner = keras_tuner.RandomSearch(space, max_trials=3)  # doctest: +SKIP
    >>> tuner.search(x, y, epochs=1, validation_split=0.2)  # doctest: +SKIP
    >>> space.genotype(tuner.get_best_hyperparameters()[0])  # doctest: +SKIP
    """

    def __init__(
        self,
        input_shape: tuple[int, ...] = (32, 32, 3),
        num_classes: int = 10,
        stages: Sequence[Sequence[int]] = DEFAULT_STAGES,
        stem_filters: int = 16,
        stem_strides: int = 1,
        head_filters: int | None = None,
        kernel_sizes: Sequence[int] = (3, 5, 7),
        expansions: Sequence[int] = (3, 6),
        allow_skip: bool = True,
        width_multiplier: float = 1.0,
        dropout: float = 0.0,
        optimizer: str | keras.optimizers.Optimizer = "adam",
        learning_rate: float = 1e-3,
        bn_momentum: float | None = 0.9,
        name: str | None = None,
        tunable: bool = True,
    ) -> None:
        super().__init__(name=name, tunable=tunable)
        self.input_shape = _common.check_image_shape(input_shape)
        self.num_classes = _common.check_positive_int(
            "num_classes", num_classes, minimum=2
        )
        self.stages = _check_stages(stages)
        self.stem_filters = _common.check_positive_int(
            "stem_filters", stem_filters, 1, MAX_FILTERS
        )
        if stem_strides not in (1, 2) or isinstance(stem_strides, bool):
            raise ValueError(
                "Expected `stem_strides` to be 1 or 2. "
                f"Received: stem_strides={stem_strides!r}"
            )
        self.stem_strides = int(stem_strides)
        if head_filters is not None:
            head_filters = _common.check_positive_int(
                "head_filters", head_filters, 1, MAX_FILTERS
            )
        self.head_filters = head_filters
        self.kernel_sizes = _common.check_int_choices(
            "kernel_sizes", kernel_sizes, allow_int=False, maximum=31
        )
        self.expansions = _common.check_int_choices(
            "expansions", expansions, allow_int=False, maximum=64
        )
        if not isinstance(allow_skip, bool):
            raise ValueError(
                "Expected `allow_skip` to be a bool. "
                f"Received: allow_skip={allow_skip!r}"
            )
        self.allow_skip = allow_skip
        if (
            isinstance(width_multiplier, bool)
            or not isinstance(width_multiplier, (int, float))
            or not 0 < width_multiplier <= 16
        ):
            raise ValueError(
                "Expected `width_multiplier` to be a number in (0, 16]. "
                f"Received: width_multiplier={width_multiplier!r}"
            )
        self.width_multiplier = float(width_multiplier)
        self.dropout = _common.check_rates([dropout])[0]
        _common.set_training(self, optimizer, learning_rate, bn_momentum)
        self.blocks = self._make_blocks()

    # ------------------------------------------------------------------
    # Topology.
    # ------------------------------------------------------------------

    def _width(self, filters: int) -> int:
        if self.width_multiplier == 1.0:
            return filters
        scaled = _make_divisible(filters * self.width_multiplier)
        return min(MAX_FILTERS, scaled)

    @property
    def ops(self) -> tuple[str, ...]:
        """The MBConv op names of a block, ProxylessNAS' order."""
        return tuple(
            mbconv_op(k, e) for k in self.kernel_sizes for e in self.expansions
        )

    @property
    def stem_output_shape(self) -> tuple[int, int, int]:
        h, w, _ = self.input_shape
        s = self.stem_strides
        c = self._width(self.stem_filters)
        return (math.ceil(h / s), math.ceil(w / s), c)

    def _make_blocks(self) -> tuple[MobileNetBlock, ...]:
        blocks = []
        h, w, c = self.stem_output_shape
        for stage, (filters, count, strides) in enumerate(self.stages):
            out = self._width(filters)
            for position in range(count):
                s = strides if position == 0 else 1
                skippable = self.allow_skip and s == 1 and c == out
                choices = self.ops + ((SKIP_OP,) if skippable else ())
                blocks.append(
                    MobileNetBlock(
                        len(blocks), stage, position, (h, w, c), out, s,
                        choices,
                    )
                )  # fmt: skip
                h, w, c = math.ceil(h / s), math.ceil(w / s), out
        return tuple(blocks)

    @property
    def output_shape(self) -> tuple[int, int, int]:
        """Shape of the last stage's output (the head's input)."""
        last = self.blocks[-1]
        h, w, _ = last.input_shape
        s = last.strides
        return (math.ceil(h / s), math.ceil(w / s), last.filters)

    # ------------------------------------------------------------------
    # Hyperparameters and genotypes.
    # ------------------------------------------------------------------

    def declare_hyperparameters(
        self, hp: keras_tuner.HyperParameters
    ) -> MobileNetGenotype:
        """Declares one `stage{s}/block{b}` choice per block in `hp`.

        Returns:
            The genotype of `hp`'s current values.
        """
        ops = [
            hp.Choice(
                block.hp_name,
                list(block.choices),
                ordered=False,
                default=block.choices[0],
            )
            for block in self.blocks
        ]
        return MobileNetGenotype(tuple(ops))

    def genotype(self, hp: Any) -> MobileNetGenotype:
        """The genotype of a trial's hyperparameters (dict or `hp`).

        Other keys (e.g. Hyperband's `tuner/epochs`) are ignored.
        """
        values = _common.hp_values(hp, "hp")
        missing = [b.hp_name for b in self.blocks if b.hp_name not in values]
        if missing:
            raise ValueError(
                f"Expected `hp` to hold the hyperparameters "
                f"{[b.hp_name for b in self.blocks]}; missing {missing}. "
                f"Received: hp={values!r}"
            )
        genotype = MobileNetGenotype(
            tuple(values[b.hp_name] for b in self.blocks)
        )
        return self.check_genotype(genotype)

    def check_genotype(self, genotype: Any) -> MobileNetGenotype:
        """`genotype` if it is an architecture of this space."""
        if not isinstance(genotype, MobileNetGenotype):
            genotype = MobileNetGenotype(genotype)
        if len(genotype.ops) != len(self.blocks):
            raise ValueError(
                f"Expected a genotype with {len(self.blocks)} ops, one per "
                f"block. Received: genotype={genotype}"
            )
        for block, op in zip(self.blocks, genotype.ops, strict=True):
            if op not in block.choices:
                raise ValueError(
                    f"Expected the op of block {block.hp_name!r} to be one "
                    f"of {list(block.choices)}. Received: {op!r} in "
                    f"genotype={genotype}"
                )
        return genotype

    def hyperparameters(self, genotype: Any) -> dict[str, str]:
        """The hyperparameter values of a genotype (the inverse of
        `genotype`)."""
        genotype = self.check_genotype(genotype)
        return {
            b.hp_name: op
            for b, op in zip(self.blocks, genotype.ops, strict=True)
        }

    # ------------------------------------------------------------------
    # Building.
    # ------------------------------------------------------------------

    def stem(self, x: Any) -> Any:
        """Applies the stem (conv, batch norm, ReLU6) to `x`."""
        x = keras.layers.Conv2D(
            self._width(self.stem_filters),
            3,
            strides=self.stem_strides,
            padding="same",
            use_bias=False,
            name="stem_conv",
        )(x)
        x = keras.layers.BatchNormalization(name="stem_bn")(x)
        return keras.layers.ReLU(max_value=6.0, name="stem_relu")(x)

    def block(self, x: Any, block: MobileNetBlock, op: str) -> Any:
        """Applies `block` with op `op` to `x` (`"zero"`: returns `x`)."""
        if op == SKIP_OP:
            return x
        kernel_size, expansion = parse_mbconv_op(op)
        return MBConv(
            block.filters,
            kernel_size,
            expansion,
            block.strides,
            name=block.layer_name,
        )(x)

    def head(self, x: Any) -> Any:
        """Applies the head (1x1 conv, pooling, dropout, classifier)."""
        if self.head_filters is not None:
            x = keras.layers.Conv2D(
                self.head_filters, 1, use_bias=False, name="head_conv"
            )(x)
            x = keras.layers.BatchNormalization(name="head_bn")(x)
            x = keras.layers.ReLU(max_value=6.0, name="head_relu")(x)
        x = keras.layers.GlobalAveragePooling2D(name="pooling")(x)
        if self.dropout > 0:
            x = keras.layers.Dropout(self.dropout, name="dropout")(x)
        return keras.layers.Dense(
            self.num_classes, activation="softmax", name="predictions"
        )(x)

    def build_network(self, genotype: Any) -> keras.Model:
        """The (uncompiled) network of a genotype."""
        genotype = self.check_genotype(genotype)
        inputs = keras.Input(shape=self.input_shape)
        x = self.stem(inputs)
        for block, op in zip(self.blocks, genotype.ops, strict=True):
            x = self.block(x, block, op)
        model = keras.Model(inputs, self.head(x), name="mobilenet")
        _common.set_bn_momentum(model, self.bn_momentum)
        return model

    def build(self, hp: keras_tuner.HyperParameters) -> keras.Model:
        """Builds and compiles the network of `hp`'s blocks."""
        genotype = self.declare_hyperparameters(hp)
        model = self.build_network(genotype)
        return _common.compile_classifier(
            model, self.optimizer, self.learning_rate
        )

    # ------------------------------------------------------------------
    # Latency table.
    # ------------------------------------------------------------------

    def _part(self, shape: tuple[int, ...], apply: Callable) -> Callable:
        def make() -> keras.Model:
            inputs = keras.Input(shape=shape)
            return keras.Model(inputs, apply(inputs))

        return make

    def latency_layout(self) -> dict[str, Any]:
        """The parts of the network a `LatencyTable` measures.

        Returns:
            `{"fixed": {key: make_model}, "blocks": [{"layer": name,
            "choices": {op: key or None}}], "models": {key: make_model}}`:
            the keys of the parts every architecture has (`"call ..."`, the
            cost of calling a model at all, measured on an identity model;
            the stem; the head), and for every block the key of each op
            (None for `"zero"`, which costs nothing) and a function building
            a one-part model for every key. Keys name the part's
            configuration and input shape, so equal parts share a key.
        """
        models: dict[str, Callable] = {}
        shape = self.input_shape
        call = f"call in={_shape_text(shape)}"
        models[call] = self._part(
            shape, lambda x: keras.layers.Identity(name="identity")(x)
        )
        stem = (
            f"stem in={_shape_text(shape)} filters="
            f"{self._width(self.stem_filters)} strides={self.stem_strides}"
        )
        models[stem] = self._part(shape, self.stem)
        head = (
            f"head in={_shape_text(self.output_shape)} filters="
            f"{self.head_filters} dropout={self.dropout} "
            f"classes={self.num_classes}"
        )
        models[head] = self._part(self.output_shape, self.head)
        blocks = []
        for block in self.blocks:
            choices: dict[str, str | None] = {}
            for op in block.choices:
                if op == SKIP_OP:
                    choices[op] = None
                    continue
                key = (
                    f"{op} in={_shape_text(block.input_shape)} "
                    f"filters={block.filters} strides={block.strides}"
                )
                choices[op] = key

                def apply(x, block=block, op=op):
                    return self.block(x, block, op)

                models[key] = self._part(block.input_shape, apply)
            blocks.append({"layer": block.layer_name, "choices": choices})
        return {"fixed": [call, stem, head], "blocks": blocks, "models": models}
