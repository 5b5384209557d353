"""The NAS-Bench-201 cell space of `DartsSupernet` (`search_space="nb201"`).

The benchmark's skeleton (Dong and Yang, "NAS-Bench-201: Extending the
Scope of Reproducible Neural Architecture Search", ICLR 2020), as in its
differentiable-search code: a 3x3 conv + batch-norm stem, three stages of
`num_cells / 3` `Nb201SearchCell`s (`filters`, `2 * filters`, `4 *
filters` channels) joined by stride-2 `ResNetBasicBlock`s, batch norm,
ReLU, global pooling and a linear classifier returning logits. A cell is
the benchmark's 4-node DAG whose 6 edges (`NB201_EDGES`) are `MixedOp`s;
all cells share one `alpha` (there is no searched reduction cell).

`derive_nb201_genotype` keeps the strongest op of every edge, `none`
included (the benchmark's cells may drop edges): no top-2 rule.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
from keras import ops

from keras_nas._validation import check_edge_arguments
from keras_nas.blocks import ops as nas_ops
from keras_nas.blocks import registry
from keras_nas.blocks.genotypes import NB201_EDGES, NasBench201Genotype
from keras_nas.blocks.network import ResNetBasicBlock
from keras_nas.supernet.darts_cells import MixedOp, check_ops

__all__ = ["Nb201SearchCell", "derive_nb201_genotype", "NODE_SIZES"]

_PACKAGE = "keras_nas"
#: Incoming edges of the cell's nodes 1, 2, 3 (the blocks of `beta`).
NODE_SIZES = (1, 2, 3)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class Nb201SearchCell(keras.layers.Layer):
    """A NAS-Bench-201 search cell: a `MixedOp` on each of its 6 edges.

    Called on one tensor and the `(6, len(ops))` weights of the edges (in
    `NB201_EDGES` order: `1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2`); node `i`
    sums its incoming edges, weighted by `edge_weights` if given
    (PC-DARTS); the output is node 3.

    Args:
        filters: channels of the input, the nodes and the output.
        ops: candidate op names (default: `NB201_OPS`).
        ops_version: 2 (default) or 1 (see `MixedOp`).
        relaxation: "softmax", "gumbel" or "binary" (see `MixedOp`).
        partial_channels: K of PC-DARTS (see `MixedOp`; 1: off).
        **kwargs: base layer keyword arguments, such as `name`.
    """

    def __init__(
        self,
        filters: int,
        ops: Sequence[str] = registry.NB201_OPS,
        ops_version: int | None = None,
        relaxation: str = "softmax",
        partial_channels: int = 1,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.ops_version = nas_ops._check_version(ops_version)
        self.filters, self.relaxation, self.partial_channels = (
            check_edge_arguments(
                filters, relaxation, partial_channels, min_filters=1
            )
        )
        self.ops = check_ops(ops)
        with nas_ops._version_scope(self.ops_version):
            self.edges = [
                MixedOp(
                    self.filters,
                    1,
                    self.ops,
                    relaxation=self.relaxation,
                    partial_channels=self.partial_channels,
                )
                for _ in NB201_EDGES
            ]

    def build(self, input_shape):
        for edge in self.edges:
            edge.build(tuple(input_shape))

    def call(self, inputs, op_weights, training=None, edge_weights=None):
        nodes = [inputs]
        for to in (1, 2, 3):
            node = None
            for e, (edge_to, src) in enumerate(NB201_EDGES):
                if edge_to != to:
                    continue
                y = self.edges[e](nodes[src], op_weights[e], training=training)
                if edge_weights is not None:
                    y = y * ops.cast(edge_weights[e], y.dtype)
                node = y if node is None else node + y
            nodes.append(node)
        return nodes[3]

    def compute_output_shape(self, input_shape, op_weights_shape=None):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            filters=self.filters,
            ops=list(self.ops),
            ops_version=self.ops_version,
            relaxation=self.relaxation,
            partial_channels=self.partial_channels,
        )
        return config


def make_layers(model) -> None:
    """Sets `model`'s stem, cells (with the residual blocks between the
    stages) and head for `search_space="nb201"`."""
    if model.num_cells % 3:
        raise ValueError(
            "Expected `num_cells` to be a multiple of 3 with "
            "search_space='nb201' (three stages of equal cells). "
            f"Received: num_cells={model.num_cells}"
        )
    version = model.ops_version
    model.stem_conv = keras.layers.Conv2D(
        model.filters,
        3,
        padding="same",
        use_bias=False,
        kernel_initializer=nas_ops._kernel_init(version),
        name="stem_conv",
    )
    model.stem_bn = nas_ops._batch_norm(name="stem_bn")
    per_stage = model.num_cells // 3
    model.cells, model.reduction_cells = [], ()
    c = model.filters
    for stage in range(3):
        if stage:
            c *= 2
            model.cells.append(
                ResNetBasicBlock(c, strides=2, name=f"resblock_{stage}")
            )
        for j in range(per_stage):
            model.cells.append(
                Nb201SearchCell(
                    c,
                    ops=model.candidate_ops,
                    relaxation=model.relaxation,
                    partial_channels=model.partial_channels,
                    name=f"cell_{stage}_{j}",
                )
            )
    model.head_bn = nas_ops._batch_norm(name="last_bn")
    model.pool = keras.layers.GlobalAveragePooling2D(name="pool")


def build_cells(model, shape) -> tuple:
    """Builds the cells and head from the stem's output shape; returns the
    shape the classifier reads."""
    for cell in model.cells:
        cell.build(shape)
        shape = cell.compute_output_shape(shape)
    model.head_bn.build(shape)
    return shape


def forward(model, x, weights, edge_weights, training):
    """The cells and head (before the classifier) of an nb201 supernet."""
    for cell in model.cells:
        if isinstance(cell, Nb201SearchCell):
            x = cell(
                x, weights, training=training, edge_weights=edge_weights
            )
        else:
            x = cell(x, training=training)
    x = ops.relu(model.head_bn(x, training=training))
    return model.pool(x)


def derive_nb201_genotype(
    alpha: Any, ops: Sequence[str] = registry.NB201_OPS
) -> NasBench201Genotype:
    """The NAS-Bench-201 cell of architecture logits: the strongest op of
    every edge (`none` allowed, as in the benchmark), no top-2 rule.

    Args:
        alpha: `(6, len(ops))` logits (or weights: only the argmax counts).
        ops: the op names of the columns; every name must be one of
            `NB201_OPS` (the benchmark's).

    Returns:
        A `NasBench201Genotype`.

    Example:

    >>> import numpy as np
    >>> a = np.zeros((6, 5)); a[:, 3] = 1.0
    >>> derive_nb201_genotype(a).ops[0]
    'nor_conv_3x3'
    """
    candidates = check_ops(ops)
    a = np.asarray(keras.ops.convert_to_numpy(alpha), dtype=np.float64)
    if a.shape != (len(NB201_EDGES), len(candidates)):
        raise ValueError(
            f"Expected `alpha` of shape {(len(NB201_EDGES), len(candidates))}."
            f" Received: alpha of shape {a.shape}"
        )
    return NasBench201Genotype(
        tuple(candidates[int(np.argmax(row))] for row in a)
    )
