"""The SMASH hypernetwork's body on the DARTS/NASNet cell space.

`HyperDartsCell` is a DARTS cell (Liu et al., ICLR 2019) whose candidate
ops have no weights of their own: the kernels of the op a node input
chooses are generated from an encoding of the whole architecture (Brock et
al., "SMASH", ICLR 2018), as `HyperCell` does on NAS-Bench-201. The
encoding is the one-hot of every decision slot (each node's two `(op,
input)` choices, normal cell then reduction cell, `input * len(ops) + op`:
the encoding of `keras_nas.supernet.topology_cell.CellTopology`).

Per slot, the conditioning vector is `h = relu(W [encoding, one_hot(slot)]
+ b)` and every generated kernel of an op is `G h + g` (one generator per
kernel of each op and cell, shared by the cell's slots). The chosen input
is the one-hot weighted sum of the candidate states; the chosen op runs
alone through `keras.ops.switch` (one traced function for every
architecture, on TensorFlow and JAX alike; only the taken op computes and
gets gradients). In a reduction cell the two cell inputs are read with
stride 2 and the earlier nodes with stride 1, so the switch has one branch
per op and stride.

Generated ops: `sep_conv_kxk` (two ReLU-depthwise-pointwise-BN stacks),
`dil_conv_kxk` (one, dilation 2), `nor_conv_kxk` (ReLU-conv-BN),
`skip_connect` (identity; at stride 2 a generated factorized reduce),
`max_pool_3x3`, `avg_pool_3x3` and `none`. Batch normalization uses the
batch's statistics and has no parameters, as in `HyperCell`.

`CellHyperBody` is the DARTS search network of those cells: a 3x3 conv
stem with `3 * filters` channels, `num_cells` cells with reduction cells at
1/3 and 2/3 of the depth (their two preprocessing 1x1 convs are ordinary
weights), global pooling and a softmax classifier.
"""

from __future__ import annotations

import re
from typing import Any

import keras
from keras import ops

from keras_nas._validation import check_positive_int
from keras_nas.supernet._hyper_common import (
    add_generator,
    classifier,
    conditioning,
    normalize,
)
from keras_nas.supernet.topology_cell import reduction_indices

__all__ = ["CellHyperBody", "HyperDartsCell", "generated_parts"]

_PACKAGE = "keras_nas"
_OP = re.compile(r"^(sep|dil|nor)_conv_(\d+)x\2$")
_FIXED = ("none", "skip_connect", "max_pool_3x3", "avg_pool_3x3")


def generated_parts(op: str, filters: int, strided_skip: bool = False):
    """The generated kernels of `op`: `{part: (kernel shape, fan-in)}`.

    Args:
        op: the op name.
        filters: channels of the op's input and output.
        strided_skip: whether a `skip_connect` may run at stride 2 (then
            it is a factorized reduce with two generated 1x1 kernels).

    Raises:
        ValueError: for an op the hypernetwork cannot generate.
    """
    c, half = filters, filters // 2
    if op == "skip_connect" and strided_skip:
        return {
            "reduce_a": ((1, 1, c, half), c),
            "reduce_b": ((1, 1, c, c - half), c),
        }
    if op in _FIXED:
        return {}
    match = _OP.match(op)
    if match is None:
        raise ValueError(
            "Expected ops the cell hypernetwork generates: "
            f"{list(_FIXED)}, sep_conv_kxk, dil_conv_kxk or nor_conv_kxk. "
            f"Received: op={op!r}"
        )
    kind, k = match.group(1), int(match.group(2))
    if kind == "nor":
        return {"conv": ((k, k, c, c), k * k * c)}
    out = {}
    for r in range(2 if kind == "sep" else 1):
        out[f"depthwise{r}"] = ((k, k, c, 1), k * k)
        out[f"pointwise{r}"] = ((1, 1, c, c), c)
    return out


def _subsample(x):
    return x[:, ::2, ::2, :]


def _factorized_reduce(x, kernel_a, kernel_b):
    """ReLU, two stride-2 1x1 convs (one on the input shifted by a pixel),
    concatenated, normalized (DARTS' `FactorizedReduce`)."""
    x = ops.relu(x)
    shifted = ops.pad(x, [[0, 0], [0, 1], [0, 1], [0, 0]])[:, 1:, 1:, :]
    a = ops.conv(x, kernel_a, strides=2, padding="same")
    b = ops.conv(shifted, kernel_b, strides=2, padding="same")
    return normalize(ops.concatenate([a, b], axis=-1))


@keras.saving.register_keras_serializable(package=_PACKAGE)
class HyperDartsCell(keras.layers.Layer):
    """A DARTS cell whose op kernels are generated (SMASH).

    Called on `(s0, s1, encoding)`: the outputs of the cell before the
    previous one and of the previous one, and the architecture's encoding
    (see the module). Returns the concatenation of the cell's nodes,
    `num_nodes * filters` channels (spatial size halved in a reduction
    cell).

    Args:
        filters: channels of every node.
        ops: the candidate op names of the space.
        num_nodes: intermediate nodes of the cell.
        reduction: whether the cell halves the spatial size.
        reduction_prev: whether the previous cell was a reduction cell
            (`s0` is then reduced by a factorized reduce).
        embedding_dim: size of the conditioning vector of each slot.
        **kwargs: `keras.layers.Layer` arguments.
    """

    def __init__(
        self,
        filters: int,
        ops: tuple[str, ...] | list[str],
        num_nodes: int = 4,
        reduction: bool = False,
        reduction_prev: bool = False,
        embedding_dim: int = 32,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.filters = check_positive_int("filters", filters)
        self.num_nodes = check_positive_int("num_nodes", num_nodes)
        self.embedding_dim = check_positive_int("embedding_dim", embedding_dim)
        self.op_names = tuple(ops)
        self.reduction = bool(reduction)
        self.parts = {
            op: generated_parts(op, filters, self.reduction)
            for op in self.op_names
        }
        self.reduction_prev = bool(reduction_prev)
        n_ops = len(self.op_names)
        # Slot sizes of one cell, normal then reduction in the encoding.
        self.slot_sizes = [
            (node + 2) * n_ops for node in range(num_nodes) for _ in range(2)
        ]
        self.width = 2 * sum(self.slot_sizes)
        self.offset = sum(self.slot_sizes) if self.reduction else 0

    def build(self, s0_shape, s1_shape=None, encoding_shape=None):
        c, d = self.filters, self.embedding_dim
        he = keras.initializers.HeNormal()
        if self.reduction_prev:
            half = c // 2
            self.pre0 = [
                self.add_weight(
                    shape=(1, 1, s0_shape[-1], n), initializer=he, name=name
                )
                for n, name in ((half, "pre0_a"), (c - half, "pre0_b"))
            ]
        else:
            self.pre0 = self.add_weight(
                shape=(1, 1, s0_shape[-1], c), initializer=he, name="pre0"
            )
        self.pre1 = self.add_weight(
            shape=(1, 1, s1_shape[-1], c), initializer=he, name="pre1"
        )
        slots = len(self.slot_sizes)
        self.embedding = self.add_weight(
            shape=(self.width + slots, d),
            initializer=keras.initializers.GlorotUniform(),
            name="embedding",
        )
        self.embedding_bias = self.add_weight(
            shape=(d,), initializer="zeros", name="embedding_bias"
        )
        self.generators = {}
        for op, parts in self.parts.items():
            for part, (shape, fan_in) in parts.items():
                size = shape[0] * shape[1] * shape[2] * shape[3]
                self.generators[(op, part)] = add_generator(
                    self, f"{op}_{part}", d, size, fan_in
                )

    def kernel(self, h, op: str, part: str):
        """The kernel `part` of `op` generated from conditioning `h`."""
        matrix, bias = self.generators[(op, part)]
        shape = self.parts[op][part][0]
        return ops.reshape(ops.matmul(h, matrix) + bias, shape)

    def conditioning(self, encoding):
        """The `(2 * num_nodes, embedding_dim)` conditioning vectors."""
        return conditioning(self, encoding, len(self.slot_sizes))

    def apply_op(self, op: str, x, h, strides: int):
        """Op `op` on `x` with the kernels generated from `h`."""
        if op == "none":
            return ops.zeros_like(_subsample(x) if strides > 1 else x)
        if op == "skip_connect":
            if strides == 1:
                return x
            return _factorized_reduce(
                x,
                self.kernel(h, op, "reduce_a"),
                self.kernel(h, op, "reduce_b"),
            )
        if op in ("max_pool_3x3", "avg_pool_3x3"):
            pool = ops.max_pool if op == "max_pool_3x3" else ops.average_pool
            return pool(x, 3, strides=strides, padding="same")
        kind = _OP.match(op).group(1)
        if kind == "nor":
            y = ops.conv(
                ops.relu(x), self.kernel(h, op, "conv"), strides=strides,
                padding="same",
            )
            return normalize(y)
        repeats, dilation = (2, 1) if kind == "sep" else (1, 2)
        for r in range(repeats):
            stride = strides if r == 0 else 1
            # TensorFlow cannot combine strides > 1 with dilation > 1:
            # such convs run at stride 1 and are subsampled afterwards.
            x = ops.depthwise_conv(
                ops.relu(x),
                self.kernel(h, op, f"depthwise{r}"),
                strides=1 if dilation > 1 else stride,
                padding="same",
                dilation_rate=dilation,
            )
            if dilation > 1 and stride > 1:
                x = _subsample(x)
            x = ops.conv(x, self.kernel(h, op, f"pointwise{r}"))
            x = normalize(x)
        return x

    def _slot(self, states, code, h, node):
        """The output of one node input: the chosen op on the chosen
        input (one `keras.ops.switch` over the ops, and strides)."""
        n_ops = len(self.op_names)
        table = ops.reshape(code, (node + 2, n_ops))
        sources = ops.sum(table, axis=1)
        op_index = ops.cast(ops.argmax(ops.sum(table, axis=0)), "int32")
        strided = self.reduction
        near = sum(sources[i] * states[i] for i in range(2))
        operands = [near]
        if strided and node > 0:
            far = sum(sources[i] * states[i] for i in range(2, node + 2))
            operands.append(far)
            is_far = ops.cast(ops.sum(sources[2:]) > 0.5, "int32")
            op_index = op_index + n_ops * is_far
        elif node > 0:
            operands = [near + sum(
                sources[i] * states[i] for i in range(2, node + 2)
            )]  # fmt: skip
        branches = []
        for which in range(len(operands)):
            stride = 2 if strided and which == 0 else 1
            for op in self.op_names:
                branches.append(self._branch(op, h, stride, which))
        return ops.switch(op_index, branches, *operands)

    def _branch(self, op, h, strides, which):
        def branch(*operands):
            return self.apply_op(op, operands[which], h, strides)

        return branch

    def preprocess(self, s0, s1):
        """The two cell inputs after the preprocessing 1x1 convs."""
        if self.reduction_prev:
            s0 = _factorized_reduce(s0, *self.pre0)
        else:
            s0 = normalize(ops.conv(ops.relu(s0), self.pre0))
        s1 = normalize(ops.conv(ops.relu(s1), self.pre1))
        return s0, s1

    def call(self, s0, s1, encoding):
        encoding = ops.cast(encoding, self.compute_dtype)
        h = self.conditioning(encoding)
        states = list(self.preprocess(s0, s1))
        start = self.offset
        for node in range(self.num_nodes):
            total = None
            for k in range(2):
                slot = 2 * node + k
                size = self.slot_sizes[slot]
                code = encoding[start : start + size]
                start += size
                out = self._slot(states, code, h[slot], node)
                total = out if total is None else total + out
            states.append(total)
        return ops.concatenate(states[2:], axis=-1)

    def compute_output_shape(self, s0_shape, s1_shape=None, encoding=None):
        batch, h, w, _ = s1_shape
        if self.reduction:
            h = None if h is None else (h + 1) // 2
            w = None if w is None else (w + 1) // 2
        return (batch, h, w, self.num_nodes * self.filters)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            filters=self.filters,
            ops=list(self.op_names),
            num_nodes=self.num_nodes,
            reduction=self.reduction,
            reduction_prev=self.reduction_prev,
            embedding_dim=self.embedding_dim,
        )
        return config


class CellHyperBody(keras.layers.Layer):
    """The DARTS search network of `HyperDartsCell`s (see the module).

    Args:
        spec: the hypernetwork's spec (`input_shape`, `num_classes`, `ops`,
            `num_nodes`, `num_cells`, `filters`).
        embedding_dim: size of each slot's conditioning vector.
        seed: seed of the stem and classifier initialization.
        **kwargs: `keras.layers.Layer` arguments.
    """

    def __init__(self, spec, embedding_dim, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.spec = dict(spec)
        c = self.spec["filters"]
        self.stem = keras.layers.Conv2D(
            3 * c, 3, padding="same", use_bias=False,
            kernel_initializer=keras.initializers.HeNormal(seed=seed),
            name="stem_conv",
        )  # fmt: skip
        self.reductions = reduction_indices(self.spec["num_cells"])
        self.cells: list[HyperDartsCell] = []
        reduction_prev = False
        for cell in range(self.spec["num_cells"]):
            reduce = cell in self.reductions
            c = 2 * c if reduce else c
            kind = "reduce" if reduce else "normal"
            self.cells.append(
                HyperDartsCell(
                    c, self.spec["ops"], self.spec["num_nodes"], reduce,
                    reduction_prev, embedding_dim, name=f"cell{cell}_{kind}",
                )
            )  # fmt: skip
            reduction_prev = reduce
        self.classifier = classifier(self.spec["num_classes"], seed)

    def build(self, input_shape=None, encoding_shape=None):
        h, w, channels = self.spec["input_shape"]
        self.stem.build((None, h, w, channels))
        width = (self.cells[0].width,)
        shape_pp = shape_p = (None, h, w, 3 * self.spec["filters"])
        for cell in self.cells:
            cell.build(shape_pp, shape_p, width)
            shape_pp, shape_p = shape_p, cell.compute_output_shape(
                shape_pp, shape_p
            )
        self.classifier.build((None, shape_p[-1]))
        self.built = True

    def call(self, x, encoding):
        s0 = s1 = normalize(self.stem(x))
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1, encoding)
        return self.classifier(ops.mean(s1, axis=(1, 2)))

    def generated_weights(self, path, code) -> dict[tuple, Any]:
        """`{(cell_name, "node<-input", "op/part"): kernel}` of the ops
        the architecture chooses (NumPy arrays)."""
        out = {}
        for cell in self.cells:
            h = cell.conditioning(ops.cast(code, cell.compute_dtype))
            pairs = path[1] if cell.reduction else path[0]
            for slot, (op, src) in enumerate(pairs):
                node = slot // 2 + 2
                parts = cell.parts[op]
                if op == "skip_connect" and not (cell.reduction and src < 2):
                    parts = {}  # The identity.
                for part in parts:
                    key = (cell.name, f"{node}<-{src}", f"{op}/{part}")
                    out[key] = ops.convert_to_numpy(
                        cell.kernel(h[slot], op, part)
                    )
        return out
