"""The layers of a DARTS search network: `MixedOp` and `SearchCell`.

Liu, Simonyan and Yang, "DARTS: Differentiable Architecture Search" (ICLR
2019): every edge of a search cell is a `MixedOp`, the weighted sum of all
candidate operations; a `SearchCell` is a DAG of such edges. The weights (the
softmax of the architecture variables) are given by the caller, e.g.
`DartsSupernet`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
from keras import ops

from keras_nas._validation import (
    MAX_NODES,
    check_edge_arguments,
    check_positive_int,
)
from keras_nas.blocks import ops as nas_ops
from keras_nas.blocks import registry
from keras_nas.supernet import (
    _cell_scan,
    _darts_graph,
    _fused_mixed_op,
    relaxations,
)

__all__ = ["MixedOp", "SearchCell", "check_ops", "num_edges"]

_PACKAGE = "keras_nas"

#: False evaluates every `MixedOp` op by op (for measurements: benchmarks/).
FUSED = True


def check_ops(candidates: Any) -> tuple[str, ...]:
    if isinstance(candidates, str) or not isinstance(candidates, Sequence):
        raise ValueError(
            "Expected `ops` to be a sequence of op names. "
            f"Received: ops={candidates!r}"
        )
    out = tuple(candidates)
    unknown = [c for c in out if not registry.is_known_op(c)]
    if unknown or len(set(out)) != len(out):
        raise ValueError(
            "Expected `ops` to hold distinct names of "
            f"{list(registry.known_ops())}. Received: ops={candidates!r}"
        )
    if not [c for c in out if c != "none"]:
        raise ValueError(
            "Expected `ops` to hold at least one op other than 'none'. "
            f"Received: ops={candidates!r}"
        )
    return out


def num_edges(num_nodes: int) -> int:
    """Number of edges of a search cell: 2 + 3 + ... (14 for 4 nodes)."""
    return sum(i + 2 for i in range(num_nodes))


@ops.custom_gradient
def _weighted_sum(weights, *outputs):
    """`sum_k weights[k] * outputs[k]`, keeping only `outputs` for backward.

    The backward pass needs the op outputs (for the gradient of `weights`)
    and nothing else. Written as a running sum under autodiff, TensorFlow's
    eager tape would also keep every weighted copy and partial sum (the
    inputs of each multiply and add: ~3 tensors per op instead of 1);
    graph mode and XLA drop them either way (benchmarks/RESULTS.md).
    """
    # The forward ops read stopped copies: TensorFlow's eager tape records
    # the ops of a custom gradient's forward too, and would keep their
    # inputs (`grad` below is the whole derivative anyway).
    w = ops.stop_gradient(weights)
    ys = [ops.stop_gradient(y) for y in outputs]
    total = w[0] * ys[0]
    for k in range(1, len(ys)):
        total = total + w[k] * ys[k]

    def grad(*args, upstream=None):
        if upstream is None:
            (upstream,) = args
        d_weights = ops.stack([ops.sum(y * upstream) for y in outputs])
        d_outputs = [weights[k] * upstream for k in range(len(outputs))]
        return (d_weights, *d_outputs)

    return total, grad


@keras.saving.register_keras_serializable(package=_PACKAGE)
class MixedOp(keras.layers.Layer):
    """A DARTS edge: the softmax-weighted sum of every candidate op.

    `MixedOp(filters, strides, ops)(x, weights)` returns
    `sum_k weights[k] * op_k(x)` (eq. 2 of Liu et al., ICLR 2019). The ops are
    built with `affine=False`, and every op whose name contains "pool" is
    followed by a `BatchNormalization` without scale and offset, as in the
    DARTS code (`cnn/model_search.py`), so that `alpha` weighs normalized
    outputs only. `none` contributes exactly zero to the sum and to every
    gradient, so it is skipped.

    Args:
        filters: channels of the input and the output.
        strides: 1, or 2 on the edges from a reduction cell's inputs.
        ops: candidate op names (see `keras_nas.blocks.known_ops()`).
        ops_version: 2 (default: the DARTS code's ops, with the batch norm
            after the pools) or 1 (keras-nas before: no batch norm after
            the pools; see `keras_nas.blocks.ops`).
        relaxation: "softmax" (the weighted sum of every op), "gumbel"
            (GDAS: `op_weights` is a straight-through one-hot and only the
            chosen op runs; see `relaxations.sampled_edge`) or "binary"
            (ProxylessNAS: a one-hot, or in the architecture pass the
            `(2, len(ops))` one-hots of two gated paths; only those run,
            see `relaxations.paired_edge`).
        partial_channels: K of PC-DARTS: the ops see the first `1/K` of the
            channels, the rest bypass them, then the channels are shuffled
            (1: off; see `relaxations.partial_output`).
        **kwargs: base layer keyword arguments, such as `name`.

    Example:

    >>> op = MixedOp(8, ops=("none", "skip_connect", "sep_conv_3x3"))
    >>> w = keras.ops.softmax(keras.ops.zeros((3,)))
    >>> op(keras.ops.ones((2, 6, 6, 8)), w).shape
    (2, 6, 6, 8)
    """

    def __init__(
        self,
        filters: int,
        strides: int = 1,
        ops: Sequence[str] = registry.DARTS_OPS,
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
        if strides not in (1, 2):
            raise ValueError(
                "Expected `strides` to be 1 or 2. "
                f"Received: strides={strides!r}"
            )
        self.strides = int(strides)
        self.ops = check_ops(ops)
        self._active = [k for k, name in enumerate(self.ops) if name != "none"]
        with nas_ops._version_scope(self.ops_version):
            self.candidates = [
                self._candidate(self.ops[k]) for k in self._active
            ]

    def _candidate(self, name: str) -> keras.layers.Layer:
        width = self.filters // self.partial_channels
        op = nas_ops.get_op(name, width, self.strides, False)
        if self.ops_version >= 2 and "pool" in name:
            op = keras.Sequential([op, nas_ops._batch_norm(affine=False)])
        return op

    def build(self, input_shape):
        shape = tuple(input_shape)
        shape = shape[:-1] + (self.filters // self.partial_channels,)
        for op in self.candidates:
            if type(op) is keras.Sequential:
                # A pool and its batch norm, built one after the other in
                # the Sequential's name scope: Sequential's own build would
                # first call them on a symbolic input to make a Functional
                # model. The same variables (paths included); Sequential
                # then calls them in a plain loop.
                layer_shape = shape
                with keras.name_scope(op.name):
                    for layer in op.layers:
                        nas_ops._build(layer, layer_shape)
                        layer_shape = layer.compute_output_shape(layer_shape)
                op.built = True
            else:
                op.build(shape)

    def call(self, inputs, op_weights, training=None):
        if _darts_graph.enabled(inputs):
            # Traced: one function per kind of edge (_darts_graph.py).
            return _darts_graph.call(
                self, inputs, op_weights, training, MixedOp._call_ops
            )
        return self._call_ops(inputs, op_weights, training)

    def _call_ops(self, inputs, op_weights, training=None):
        k = self.partial_channels
        if k > 1:
            inputs, bypass = relaxations.split_channels(inputs, k)
        if self.relaxation in relaxations.SAMPLED:
            # Binary architecture pass: two paths (a `(2, ops)` weight).
            edge = (
                relaxations.paired_edge
                if len(op_weights.shape) == 2
                else relaxations.sampled_edge
            )
            out = edge(self, inputs, op_weights, training)
        else:
            out = self._weighted_candidates(inputs, op_weights, training)
        if k > 1:
            out = relaxations.partial_output(out, bypass, self.strides, k)
        return out

    def _weighted_candidates(self, inputs, op_weights, training=None):
        # The DARTS candidates: a few stacked ops (_fused_mixed_op.py).
        if not hasattr(self, "_fusion"):
            self._fusion = _fused_mixed_op.plan(self)
        if FUSED and _fused_mixed_op.applies(self, self._fusion, inputs):
            return _fused_mixed_op.call(
                self, self._fusion, inputs, op_weights, training
            )
        weights = ops.take(ops.cast(op_weights, inputs.dtype), self._active)
        outputs = [op(inputs, training=training) for op in self.candidates]
        return _weighted_sum(weights, *outputs)

    def compute_output_shape(self, input_shape, op_weights_shape=None):
        shape = tuple(input_shape)
        shape = shape[:-1] + (self.filters // self.partial_channels,)
        out = self.candidates[0].compute_output_shape(shape)
        return tuple(out[:-1]) + (self.filters,)

    #: The constructor's arguments (the config, and the key of the edge's
    #: shared function on JAX, `_darts_graph._config`).
    _config_names = (
        "filters",
        "strides",
        "ops",
        "ops_version",
        "relaxation",
        "partial_channels",
    )

    def get_config(self):
        config = super().get_config()
        config.update({n: getattr(self, n) for n in self._config_names})
        config["ops"] = list(self.ops)
        return config

    from_config = nas_ops._legacy_from_config()


@keras.saving.register_keras_serializable(package=_PACKAGE)
class SearchCell(keras.layers.Layer):
    """A DARTS search cell: every node sums a `MixedOp` from each earlier node.

    Called on `[s0, s1]` (the outputs of the two previous cells) and the
    `(num_edges, len(ops))` softmax weights of its kind. Node `i` reads the
    two inputs and the nodes before it, so the cell has
    `num_edges(num_nodes)` edges (14 for 4 nodes), in the order of the DARTS
    code: node 0's edges from inputs 0, 1, then node 1's from 0, 1, 2, ...
    The output concatenates all intermediate nodes.

    Args:
        filters: channels of each node.
        reduction: whether the cell halves the spatial size (stride-2 edges
            from its inputs).
        reduction_prev: whether the previous cell was a reduction cell (then
            `s0` is reduced by a `FactorizedReduce`).
        num_nodes: number of intermediate nodes.
        ops: candidate op names.
        ops_version: 2 (default) or 1 (see `MixedOp`).
        relaxation: "softmax", "gumbel" or "binary" (see `MixedOp`).
        partial_channels: K of PC-DARTS (see `MixedOp`; 1: off).
        **kwargs: base layer keyword arguments, such as `name`.
    """

    def __init__(
        self,
        filters: int,
        reduction: bool = False,
        reduction_prev: bool = False,
        num_nodes: int = 4,
        ops: Sequence[str] = registry.DARTS_OPS,
        ops_version: int | None = None,
        relaxation: str = "softmax",
        partial_channels: int = 1,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.ops_version = nas_ops._check_version(ops_version)
        self.filters, self.relaxation, self.partial_channels = (
            check_edge_arguments(
                filters, relaxation, partial_channels, min_filters=2
            )
        )
        self.reduction = bool(reduction)
        self.reduction_prev = bool(reduction_prev)
        self.num_nodes = check_positive_int(
            "num_nodes", num_nodes, 1, MAX_NODES
        )
        self.ops = check_ops(ops)
        with nas_ops._version_scope(self.ops_version):
            self._make_layers()

    def _make_layers(self):
        if self.reduction_prev:
            self.preprocess0 = nas_ops.FactorizedReduce(
                self.filters, affine=False
            )
        else:
            self.preprocess0 = nas_ops.ReLUConvBN(self.filters, 1, affine=False)
        self.preprocess1 = nas_ops.ReLUConvBN(self.filters, 1, affine=False)
        self.edges = []
        for i in range(self.num_nodes):
            for j in range(i + 2):
                strides = 2 if self.reduction and j < 2 else 1
                self.edges.append(
                    MixedOp(
                        self.filters,
                        strides,
                        self.ops,
                        relaxation=self.relaxation,
                        partial_channels=self.partial_channels,
                    )
                )

    def build(self, input_shape):
        shape0, shape1 = (tuple(s) for s in input_shape)
        self.preprocess0.build(shape0)
        self.preprocess1.build(shape1)
        states = [
            self.preprocess0.compute_output_shape(shape0),
            self.preprocess1.compute_output_shape(shape1),
        ]
        e = 0
        for i in range(self.num_nodes):
            for j in range(i + 2):
                self.edges[e].build(states[j])
                e += 1
            states.append(self.edges[e - 1].compute_output_shape(states[-1]))

    def call(self, inputs, op_weights, training=None, edge_weights=None):
        s0, s1 = inputs
        # JAX's piecewise step: each kind of preprocessing compiled once.
        states = [
            _darts_graph.call_layer(self.preprocess0, s0, training),
            _darts_graph.call_layer(self.preprocess1, s1, training),
        ]
        if _cell_scan.applies(self, states[1]):
            # Traced: each kind of edge once per cell (_cell_scan.py).
            return _cell_scan.call(
                self, states, op_weights, training, edge_weights,
                MixedOp._call_ops,
            )
        e = 0
        weights = _darts_graph.rows(op_weights)
        for i in range(self.num_nodes):
            ys = []
            for j in range(i + 2):
                y = self.edges[e](states[j], weights[e], training=training)
                if edge_weights is not None:  # PC-DARTS' betas
                    y = y * ops.cast(edge_weights[e], y.dtype)
                ys.append(y)
                e += 1
            states.append(_darts_graph.node_sum(ys))
        return ops.concatenate(states[2:], axis=-1)

    def compute_output_shape(self, input_shape, op_weights_shape=None):
        shape = tuple(input_shape[1])
        h, w = shape[1], shape[2]
        if self.reduction:
            h = None if h is None else (h + 1) // 2
            w = None if w is None else (w + 1) // 2
        return (shape[0], h, w, self.filters * self.num_nodes)

    def get_config(self):
        config = super().get_config()
        config.update(
            filters=self.filters,
            reduction=self.reduction,
            reduction_prev=self.reduction_prev,
            num_nodes=self.num_nodes,
            ops=list(self.ops),
            ops_version=self.ops_version,
            relaxation=self.relaxation,
            partial_channels=self.partial_channels,
        )
        return config

    from_config = nas_ops._legacy_from_config()
