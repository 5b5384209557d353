"""One searched MobileNet block of ProxylessNAS: candidates and path logits.

`ProxylessMixedBlock` holds the candidate MBConv ops of a block of a
`keras_nas.spaces.MobileNetSearchSpace` and its path logits, and runs one
op, the derived op, or the two gated paths of the architecture step
(`keras_nas.supernet.binary_gates`). `ProxylessSupernet`
(`keras_nas.supernet.proxyless`) chains them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
from keras import ops

from keras_nas._backend import backend_module
from keras_nas._validation import (
    check_choice,
    check_positive_int,
    short_repr,
)
from keras_nas.blocks.mbconv import MBConv
from keras_nas.blocks.mobilenet_genotype import SKIP_OP, parse_mbconv_op
from keras_nas.supernet import binary_gates

__all__ = ["ALPHA_NAME", "ProxylessMixedBlock", "steps_module"]

_PACKAGE = "keras_nas"
#: The name of every block's path-logit variable.
ALPHA_NAME = "path_alpha"


class _Zero:
    """The zero op as a switch branch: returns its input, no variables."""

    variables = ()

    def __call__(self, inputs, training=None):
        return inputs


_ZERO = _Zero()


def steps_module():
    """The ProxylessNAS step module of the current backend."""
    return backend_module("keras_nas.supernet", "_proxyless", "ProxylessNAS")


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ProxylessMixedBlock(keras.layers.Layer):
    """One searched MobileNet block: candidate MBConvs, one path each.

    Holds an `MBConv` per candidate op (`"mbconv_{k}x{k}_e{e}"`) and, for
    `"zero"`, nothing (the block returns its input), plus the path logits
    `path_alpha` of shape `(len(choices),)`, initialised to 0 (uniform
    paths, as in the paper). `call(x)` runs the derived op (the largest
    logit); `run(x, index)` one given op; `gated(x, pair)` the two paths of
    the architecture step behind their binary gates
    (`binary_gates.straight_through_gates`).

    Args:
        filters: output channels of every candidate.
        strides: stride of every candidate (1 or 2).
        choices: the op names, e.g. `MobileNetBlock.choices`.
        **kwargs: base layer keyword arguments, such as `name`.
    """

    def __init__(
        self,
        filters: int,
        strides: int,
        choices: Sequence[str],
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.filters = check_positive_int("filters", filters)
        self.strides = check_choice("strides", strides, (1, 2))
        if isinstance(choices, (str, bytes)) or not choices:
            raise ValueError(
                "Expected `choices` to be a non-empty sequence of op names. "
                f"Received: choices={short_repr(choices)}"
            )
        self.choices = tuple(str(c) for c in choices)
        if len(set(self.choices)) != len(self.choices):
            raise ValueError(
                "Expected `choices` without repeats. "
                f"Received: choices={list(self.choices)}"
            )
        self.candidates = []
        self._op_layer: list[int | None] = []
        for op in self.choices:
            if op == SKIP_OP:
                self._op_layer.append(None)
                continue
            kernel_size, expansion = parse_mbconv_op(op)
            self._op_layer.append(len(self.candidates))
            self.candidates.append(
                MBConv(filters, kernel_size, expansion, strides, name=op)
            )

    def build(self, input_shape):
        shape = tuple(input_shape)
        if SKIP_OP in self.choices and (
            self.strides != 1 or shape[-1] != self.filters
        ):
            raise ValueError(
                "Expected the zero op only in a block whose input and output"
                f" shapes agree (stride 1, {self.filters} input channels). "
                f"Received: input_shape={shape}, strides={self.strides}"
            )
        for candidate in self.candidates:
            candidate.build(shape)
        self.alpha = self.add_weight(
            shape=(len(self.choices),),
            initializer="zeros",
            name=ALPHA_NAME,
            autocast=False,
        )
        self.built = True

    def op_layer(self, index: int) -> MBConv | None:
        """The layer of op `index` (None for `"zero"`)."""
        position = self._op_layer[int(index)]
        return None if position is None else self.candidates[position]

    def run(self, x, index: int, training=None):
        """Applies op `index` (a Python int) alone."""
        layer = self.op_layer(index)
        if layer is None:
            return x
        return steps_module().layer_caller(layer)(x, training=training)

    def run_indexed(self, x, index, training=None):
        """Applies op `index` alone: a Python int or a tensor with a value
        runs it directly (`run`), a traced index through the backend's
        switch (only the taken op runs)."""
        steps = steps_module()
        if steps.is_concrete(index):
            return self.run(x, int(index), training=training)
        branches = [
            (_ZERO if layer is None else layer, 0)
            for layer in map(self.op_layer, range(len(self.choices)))
        ]
        return steps.switch(index, branches, (x,), training)

    def gated(self, x, pair, training=None):
        """`g_a * op_a(x) + g_b * op_b(x)` with binary, straight-through
        gates (value `(1, 0)`): the architecture step of one block.

        `pair` holds the `(active, inactive)` indices: Python ints or an
        int32 tensor of shape `(2,)` (distinct unless the block has a
        single candidate)."""
        if len(self.choices) == 1:
            return self.run(x, 0, training=training)
        if isinstance(pair, (tuple, list)) and int(pair[0]) == int(pair[1]):
            return self.run(x, int(pair[0]), training=training)
        g = binary_gates.straight_through_gates(self.alpha, pair)
        out = self.run_indexed(x, pair[0], training=training)
        # The inactive path only feeds its gate's gradient: nothing flows
        # back through it into `x`.
        other = self.run_indexed(ops.stop_gradient(x), pair[1], training)
        return ops.cast(g[0], out.dtype) * out + ops.cast(
            g[1], other.dtype
        ) * other

    def call(self, inputs, training=None):
        index = ops.argmax(self.alpha)
        if steps_module().is_concrete(index):
            return self.run(inputs, int(index), training=training)
        branches = [
            (lambda x, k=k: self.run(x, k, training=training))
            for k in range(len(self.choices))
        ]
        return ops.switch(index, branches, inputs)

    def compute_output_shape(self, input_shape):
        batch, height, width = tuple(input_shape)[:3]

        def reduce(n):
            return None if n is None else -(-n // self.strides)

        return (batch, reduce(height), reduce(width), self.filters)

    def get_config(self):
        config = super().get_config()
        config.update(
            filters=self.filters,
            strides=self.strides,
            choices=list(self.choices),
        )
        return config
