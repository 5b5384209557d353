"""Keras cell layers built from genotypes.

`Cell` (and its fixed-kind variants `NormalCell`, `ReductionCell`) is the
DARTS/NASNet cell (Zoph et al., "Learning Transferable Architectures for
Scalable Image Recognition", CVPR 2018; Liu et al., "DARTS", ICLR 2019):
two input states, intermediate nodes that sum operations on earlier states,
and a channel concatenation of chosen nodes. `NasBench201Cell` is the 4-node,
6-edge cell of NAS-Bench-201 (Dong & Yang, ICLR 2020).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import keras
from keras import ops

from keras_nas._validation import MAX_FILTERS, check_number, check_positive_int
from keras_nas.blocks._op_numerics import (
    _check_version,
    _legacy_from_config,
    _version_scope,
)
from keras_nas.blocks.conv_ops import FactorizedReduce, ReLUConvBN
from keras_nas.blocks.genotypes import (
    NB201_EDGES,
    Genotype,
    NasBench201Genotype,
)
from keras_nas.blocks.ops import get_op
from keras_nas.blocks.pool_ops import Identity

__all__ = ["Cell", "NormalCell", "ReductionCell", "NasBench201Cell"]

_PACKAGE = "keras_nas"


def _as_genotype(genotype: Any) -> Genotype:
    if isinstance(genotype, Genotype):
        return genotype
    if isinstance(genotype, Mapping):
        return Genotype.from_dict(genotype)
    if isinstance(genotype, str):
        return Genotype.from_json(genotype)
    raise ValueError(
        "Expected `genotype` to be a Genotype, its dict form or its JSON. "
        f"Received: genotype={genotype!r}"
    )


def _as_nb201_genotype(genotype: Any) -> NasBench201Genotype:
    if isinstance(genotype, NasBench201Genotype):
        return genotype
    if isinstance(genotype, str):
        return NasBench201Genotype.from_string(genotype)
    if isinstance(genotype, Mapping):
        return NasBench201Genotype.from_dict(genotype)
    if isinstance(genotype, Sequence):
        return NasBench201Genotype(tuple(genotype))
    raise ValueError(
        "Expected `genotype` to be a NasBench201Genotype, its cell string or "
        f"a sequence of 6 op names. Received: genotype={genotype!r}"
    )


def _nb201_used_edges(ops: Sequence[str]) -> tuple[bool, ...]:
    """Per edge of `NB201_EDGES`: whether its op can change the cell output.

    An edge is unused when its op is `none` or when its head node reaches
    the output (node 3) only through `none` edges.
    """
    reaches = {3: True}
    for node in (2, 1):
        reaches[node] = any(
            op != "none" and reaches[to]
            for (to, src), op in zip(NB201_EDGES, ops, strict=True)
            if src == node
        )
    return tuple(
        op != "none" and reaches[to]
        for (to, _), op in zip(NB201_EDGES, ops, strict=True)
    )


def _connected_zeros(x):
    """Zeros like `x` whose gradient with respect to `x` is zero, not None.

    `ops.zeros_like` cuts the graph: the layers before it would get no
    gradient. A select keeps them connected and ignores `x`'s values.
    """
    zeros = ops.zeros_like(x)
    return ops.where(ops.cast(zeros, "bool"), x, zeros)


def _zero_gradient_join(x, other):
    """`x`, with a zero gradient (not None) for the 4-D tensor `other`."""
    never = ops.cast(ops.zeros_like(x), "bool")
    return ops.where(never, other[:, :1, :1, :1], x)


def _live_states(pairs, concat, arity: int) -> list[bool]:
    """Per state of a `Cell`: whether it reaches the output (`concat`)
    through ops other than `none`."""
    num_nodes = len(pairs) // arity
    live = [i in concat for i in range(num_nodes + 2)]
    for node in reversed(range(num_nodes)):
        if live[node + 2]:
            for op, index in pairs[node * arity : (node + 1) * arity]:
                live[index] = live[index] or op != "none"
    return live


_LEGACY_FROM_CONFIG = _legacy_from_config()


def _from_config_keeping_unused_edges(cls, config, **kwargs):
    # Files saved before unused edges were skipped hold the weights of all
    # the ops: build them all, so that the weights load in place.
    config = dict(config)
    config.setdefault("keep_unused_edges", True)
    return _LEGACY_FROM_CONFIG.__func__(cls, config, **kwargs)


def _is_shape_list(shape: Any) -> bool:
    return (
        isinstance(shape, (list, tuple))
        and len(shape) > 0
        and isinstance(shape[0], (list, tuple))
    )


def _half(size: int | None) -> int | None:
    return None if size is None else math.ceil(size / 2)


def _with(shape: Sequence, hw: tuple | None = None, channels: Any = None):
    b, h, w, c = tuple(shape)
    if hw is not None:
        h, w = hw
    return (b, h, w, c if channels is None else channels)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class Cell(keras.layers.Layer):
    """A DARTS/NASNet cell built from a `Genotype`.

    The layer is called on `[s0, s1]` (outputs of the cell before the previous
    one and of the previous cell) or on one tensor (then `s0 = s1 = x`).
    `s0` is preprocessed by a `FactorizedReduce` when it has twice the
    resolution of `s1` (`reduction_prev=True`, or spatial sizes that differ),
    otherwise by a 1x1 `ReLUConvBN`; `s1` by a 1x1 `ReLUConvBN`. Both then
    have `filters` channels. Intermediate node `i` sums `arity` operations of
    the genotype applied to earlier states; in a reduction cell, the
    operations reading the cell inputs (0 and 1) use stride 2. The output
    concatenates the genotype's `concat` nodes: `filters * len(concat)`
    channels.

    Drop-path (Zoph et al., 2018): during training only, each non-identity
    operation's output is zeroed per sample with probability
    `drop_path_rate` and rescaled by `1 / (1 - drop_path_rate)`. With
    `drop_path_rate > 0` the rate in use is the non-trainable scalar weight
    `drop_path_rate_variable` (initially `drop_path_rate`), read by the
    compiled train step, so it can change during training (see
    `keras_nas.blocks.DropPathSchedule`).

    Args:
        genotype: a `Genotype` (or its dict / JSON form).
        kind: `"normal"` or `"reduce"`, the genotype cell to build.
        filters: channels of every node.
        reduction_prev: whether the previous cell was a reduction cell, so
            `s0` has twice the resolution of `s1`.
        drop_path_rate: drop-path probability in `[0, 1)`.
        seed: seed of the drop-path random generator.
        ops_version: numerics of the ops, 2 (default: as the DARTS code) or
            1 (keras-nas before; files saved then load as 1). See
            `keras_nas.blocks.ops`.
        keep_unused_edges: whether to build what cannot change the output
            too: the ops of edges into a node that reaches the output only
            through `none` ops, and the preprocessing of an input no op
            reads. False (default) builds none of it, so `count_params`
            counts the weights that matter and training warns of no missing
            gradient; True builds and runs it, its weights getting a zero
            gradient (files saved before this option load so).
        **kwargs: base layer keyword arguments, such as `name`.

    Example:

    >>> from keras_nas.blocks import DARTS_V2
    >>> x = keras.ops.ones((2, 8, 8, 16))
    >>> tuple(Cell(DARTS_V2, "reduce", filters=8)([x, x]).shape)
    (2, 4, 4, 32)
    """

    def __init__(
        self,
        genotype: Genotype | Mapping | str,
        kind: str = "normal",
        filters: int = 16,
        reduction_prev: bool = False,
        drop_path_rate: float = 0.0,
        seed: int | None = None,
        ops_version: int | None = None,
        keep_unused_edges: bool = False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.ops_version = _check_version(ops_version)
        self.genotype = _as_genotype(genotype)
        if kind not in ("normal", "reduce"):
            raise ValueError(
                "Expected `kind` to be 'normal' or 'reduce'. "
                f"Received: kind={kind!r}"
            )
        self.kind = kind
        self.filters = check_positive_int("filters", filters, 2, MAX_FILTERS)
        self.reduction_prev = bool(reduction_prev)
        self.drop_path_rate = check_number(
            "drop_path_rate", drop_path_rate, 0.0, 1.0, high_open=True
        )
        self.seed = seed
        self.pairs, self.concat = self.genotype.cell(kind)
        self.arity = self.genotype.arity
        self.num_nodes = len(self.pairs) // self.arity
        if self.reduction and any(i < 2 for i in self.concat):
            raise ValueError(
                "A reduction cell cannot concatenate its input states 0 or 1 "
                "(they are not reduced). "
                f"Received: reduce_concat={self.concat!r}"
            )
        self.keep_unused_edges = bool(keep_unused_edges)
        self.live_states = _live_states(self.pairs, self.concat, self.arity)
        self.used_edges = tuple(
            op != "none" and self.live_states[j // self.arity + 2]
            for j, (op, _) in enumerate(self.pairs)
        )
        # The edges whose op the cell runs and sums into its node.
        self.summed_edges = tuple(
            used or (self.keep_unused_edges and op != "none")
            for used, (op, _) in zip(self.used_edges, self.pairs, strict=True)
        )
        with _version_scope(self.ops_version):
            self.edge_ops = [
                get_op(op, self.filters, 2 if (self.reduction and i < 2) else 1)
                if used or self.keep_unused_edges
                else None
                for used, (op, i) in zip(
                    self.used_edges, self.pairs, strict=True
                )
            ]
        self.seed_generator = (
            keras.random.SeedGenerator(seed) if self.drop_path_rate else None
        )
        self.drop_path_rate_variable = None

    @property
    def reduction(self) -> bool:
        return self.kind == "reduce"

    def _split(self, inputs):
        if isinstance(inputs, (list, tuple)):
            if len(inputs) != 2:
                raise ValueError(
                    "Expected a cell to be called on one tensor or on "
                    f"[s0, s1]. Received: {len(inputs)} inputs"
                )
            return inputs[0], inputs[1]
        return inputs, inputs

    def _split_shapes(self, input_shape):
        if _is_shape_list(input_shape):
            if len(input_shape) != 2:
                raise ValueError(
                    "Expected a cell to be called on one tensor or on "
                    f"[s0, s1]. Received: input_shape={input_shape!r}"
                )
            return tuple(input_shape[0]), tuple(input_shape[1])
        return tuple(input_shape), tuple(input_shape)

    def build(self, input_shape):
        s0, s1 = self._split_shapes(input_shape)
        hw0, hw1 = s0[1:3], s1[1:3]
        known = None not in hw0 and None not in hw1
        reduce_s0 = self.reduction_prev or (known and hw0 != hw1)
        if reduce_s0 and known and tuple(map(_half, hw0)) != tuple(hw1):
            raise ValueError(
                "Expected s0 to have the spatial size of s1, or twice it "
                "(`reduction_prev=True`). Received: input_shape="
                f"{[s0, s1]!r}, reduction_prev={self.reduction_prev}"
            )
        version = self.ops_version
        keep = self.keep_unused_edges
        self.preprocess0 = self.preprocess1 = None
        if keep or self.live_states[0]:
            if reduce_s0:
                self.preprocess0 = FactorizedReduce(
                    self.filters, ops_version=version
                )
            else:
                self.preprocess0 = ReLUConvBN(
                    self.filters, 1, ops_version=version
                )
            self.preprocess0.build(s0)
        if keep or self.live_states[1]:
            self.preprocess1 = ReLUConvBN(self.filters, 1, ops_version=version)
            self.preprocess1.build(s1)
        if self.drop_path_rate:
            self.drop_path_rate_variable = self.add_weight(
                shape=(),
                initializer=keras.initializers.Constant(self.drop_path_rate),
                trainable=False,
                name="drop_path_rate",
            )
        state = _with(s1, channels=self.filters)
        shapes = [state, state]
        for node in range(self.num_nodes):
            for k in range(self.arity):
                j = node * self.arity + k
                op, index = self.edge_ops[j], self.pairs[j][1]
                if op is not None and not op.built:
                    op.build(shapes[index])
            shapes.append(_with(s1, self._node_hw(s1[1:3]), self.filters))

    def _node_hw(self, hw):
        return tuple(map(_half, hw)) if self.reduction else tuple(hw)

    def _zeros(self, s1):
        """Zeros of a node's shape (a node whose edges are all `none`)."""
        x = s1[:, ::2, ::2, :1] if self.reduction else s1[..., :1]
        return ops.repeat(ops.zeros_like(x), self.filters, axis=-1)

    def load_own_variables(self, store):
        if self.drop_path_rate_variable is not None and not len(store.keys()):
            # Saved before the rate was a variable: keep `drop_path_rate`.
            return
        super().load_own_variables(store)

    def _drop_path(self, x):
        # The rate is read from the variable, not the float, so that a
        # schedule can change it between steps of a compiled train step
        # (hence no `keras.random.dropout`, which needs a Python rate).
        keep = 1.0 - ops.cast(self.drop_path_rate_variable, x.dtype)
        noise = keras.random.uniform(
            (ops.shape(x)[0], 1, 1, 1), seed=self.seed_generator, dtype=x.dtype
        )
        return x * (ops.cast(noise < keep, x.dtype) / keep)

    def call(self, inputs, training=None):
        s0, s1 = self._split(inputs)
        states = [
            None if p is None else p(s, training=training)
            for p, s in ((self.preprocess0, s0), (self.preprocess1, s1))
        ]
        drop = bool(training) and self.drop_path_rate > 0.0
        for node in range(self.num_nodes):
            total = None
            for k in range(self.arity):
                j = node * self.arity + k
                if not self.summed_edges[j]:
                    continue
                op, index = self.edge_ops[j], self.pairs[j][1]
                h = op(states[index], training=training)
                if drop and not isinstance(op, Identity):
                    h = self._drop_path(h)
                total = h if total is None else total + h
            if total is None and (
                self.keep_unused_edges or self.live_states[node + 2]
            ):
                # The sum of `none` ops.
                total = self._zeros(s1)
            states.append(total)
        outs = [states[i] for i in self.concat]
        out = outs[0] if len(outs) == 1 else ops.concatenate(outs, axis=-1)
        # What cannot change the output gets a zero gradient, not None: the
        # cell's unused inputs (and their preprocessing, when kept), and the
        # nodes of kept unused ops.
        for i, live in enumerate(self.live_states):
            state = states[i]
            if state is None and i < 2:
                state = (s0, s1)[i]
            if not live and state is not None:
                out = _zero_gradient_join(out, state)
        return out

    def compute_output_shape(self, input_shape):
        _, s1 = self._split_shapes(input_shape)
        hw = s1[1:3]
        if self.reduction:
            hw = tuple(map(_half, hw))
        return _with(s1, hw, self.filters * len(self.concat))

    def get_config(self):
        config = super().get_config()
        config.update(
            genotype=self.genotype.to_dict(),
            kind=self.kind,
            filters=self.filters,
            reduction_prev=self.reduction_prev,
            drop_path_rate=self.drop_path_rate,
            seed=self.seed,
            ops_version=self.ops_version,
            keep_unused_edges=self.keep_unused_edges,
        )
        return config

    from_config = classmethod(_from_config_keeping_unused_edges)


class _FixedKindCell(Cell):
    KIND = "normal"

    def __init__(
        self,
        genotype: Genotype | Mapping | str,
        filters: int = 16,
        reduction_prev: bool = False,
        drop_path_rate: float = 0.0,
        seed: int | None = None,
        **kwargs,
    ):
        kind = kwargs.pop("kind", self.KIND)
        if kind != self.KIND:
            raise ValueError(
                f"Expected `kind` to be {self.KIND!r} for "
                f"{type(self).__name__}. Received: kind={kind!r}"
            )
        super().__init__(
            genotype,
            kind=self.KIND,
            filters=filters,
            reduction_prev=reduction_prev,
            drop_path_rate=drop_path_rate,
            seed=seed,
            **kwargs,
        )

    def get_config(self):
        config = super().get_config()
        config.pop("kind")
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class NormalCell(_FixedKindCell):
    """The normal cell of a genotype: `Cell(genotype, "normal", ...)`.

    Args:
        genotype: a `Genotype` (or its dict / JSON form).
        filters: channels of every node.
        reduction_prev: whether `s0` has twice the resolution of `s1`.
        drop_path_rate: drop-path probability in `[0, 1)`.
        seed: seed of the drop-path random generator.
        **kwargs: base layer keyword arguments, such as `name`, and
            `ops_version` (see `Cell`).
    """

    KIND = "normal"


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ReductionCell(_FixedKindCell):
    """The reduction cell of a genotype: `Cell(genotype, "reduce", ...)`.

    Halves the spatial size (`ceil(n / 2)`).

    Args:
        genotype: a `Genotype` (or its dict / JSON form).
        filters: channels of every node.
        reduction_prev: whether `s0` has twice the resolution of `s1`.
        drop_path_rate: drop-path probability in `[0, 1)`.
        seed: seed of the drop-path random generator.
        **kwargs: base layer keyword arguments, such as `name`, and
            `ops_version` (see `Cell`).
    """

    KIND = "reduce"


@keras.saving.register_keras_serializable(package=_PACKAGE)
class NasBench201Cell(keras.layers.Layer):
    """The NAS-Bench-201 cell (Dong & Yang, ICLR 2020).

    A DAG of 4 nodes: node 0 is the input, node `j` sums `op_{j,i}(node_i)`
    over `i < j`, node 3 is the output. All ops use stride 1 and keep
    `filters` channels, so the input must have `filters` channels (put a
    stem convolution or a `ResNetBasicBlock` before the cell).

    Args:
        genotype: a `NasBench201Genotype`, its cell string
            (`"|nor_conv_3x3~0|+|...~0|...~1|+|...~0|...~1|...~2|"`) or a
            sequence of 6 op names in `NB201_EDGES` order.
        filters: channels of the input and of every node.
        ops_version: numerics of the ops, 2 (default) or 1 (see
            `keras_nas.blocks.ops`).
        keep_unused_edges: whether to build the ops of unused edges too:
            edges into a node that reaches the output only through `none`
            edges cannot change the output. False (default) builds no op
            for them, so the weights of the cell (`count_params`) are those
            that matter and training warns of no missing gradient; True
            builds and runs them as before this option, their weights
            getting a zero gradient (files saved before it load so).
        **kwargs: base layer keyword arguments, such as `name`.

    Example:

    >>> cell = NasBench201Cell(("nor_conv_3x3",) * 6, filters=8)
    >>> tuple(cell(keras.ops.ones((2, 8, 8, 8))).shape)
    (2, 8, 8, 8)
    """

    def __init__(
        self,
        genotype: NasBench201Genotype | str | Sequence[str],
        filters: int = 16,
        ops_version: int | None = None,
        keep_unused_edges: bool = False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.ops_version = _check_version(ops_version)
        self.genotype = _as_nb201_genotype(genotype)
        self.filters = check_positive_int("filters", filters, 2, MAX_FILTERS)
        self.keep_unused_edges = bool(keep_unused_edges)
        self.used_edges = _nb201_used_edges(self.genotype.ops)
        # The edges whose op the cell runs and sums into its head node.
        self.summed_edges = tuple(
            used or (self.keep_unused_edges and op != "none")
            for op, used in zip(self.genotype.ops, self.used_edges, strict=True)
        )
        with _version_scope(self.ops_version):
            self.edge_ops = [
                get_op(op, self.filters, 1)
                if used or self.keep_unused_edges
                else None
                for op, used in zip(
                    self.genotype.ops, self.used_edges, strict=True
                )
            ]

    def build(self, input_shape):
        shape = tuple(input_shape)
        if shape[-1] != self.filters:
            raise ValueError(
                f"Expected the input of NasBench201Cell to have "
                f"filters={self.filters} channels. Received: "
                f"input_shape={shape!r}"
            )
        for op in self.edge_ops:
            if op is not None and not op.built:
                op.build(shape)

    def call(self, inputs, training=None):
        nodes = [inputs]
        for node in (1, 2, 3):
            total = None
            for (to, src), op, summed in zip(
                NB201_EDGES, self.edge_ops, self.summed_edges, strict=True
            ):
                if to == node and summed:
                    h = op(nodes[src], training=training)
                    total = h if total is None else total + h
            # A node with no summed edge is zero (the `none` ops' sum); the
            # zeros keep a zero gradient to the input, so that a cell whose
            # output ignores its input leaves no variable without one.
            nodes.append(_connected_zeros(inputs) if total is None else total)
        out = nodes[3]
        # Nodes summing kept unused ops: joined with a zero gradient.
        for node in sorted(
            {
                to
                for (to, _), summed, used in zip(
                    NB201_EDGES, self.summed_edges, self.used_edges, strict=True
                )
                if summed and not used
            }
        ):
            out = _zero_gradient_join(out, nodes[node])
        return out

    def compute_output_shape(self, input_shape):
        return _with(input_shape, channels=self.filters)

    def get_config(self):
        config = super().get_config()
        config.update(
            genotype=self.genotype.to_string(),
            filters=self.filters,
            ops_version=self.ops_version,
            keep_unused_edges=self.keep_unused_edges,
        )
        return config

    from_config = classmethod(_from_config_keeping_unused_edges)
