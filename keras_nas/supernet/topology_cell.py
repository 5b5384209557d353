"""The DARTS/NASNet cell space as a one-shot `Topology`.

A DARTS-style search network (Liu et al., "DARTS: Differentiable
Architecture Search", ICLR 2019): a 3x3 conv stem with `3 * filters`
channels, `num_cells` cells with reduction cells (stride 2, filters
doubled) at 1/3 and 2/3 of the depth, global pooling and a softmax
classifier. Each cell preprocesses its two inputs (the two previous cells'
outputs), and each of its `num_nodes` nodes sums two (op, input) choices
among the cell inputs and the earlier nodes; the cell outputs the
concatenation of its nodes. All normal cells share one choice and all
reduction cells another (or the normal one, without `search_reduction`).

A path is `(normal_pairs, reduce_pairs)` of `(op, input)` pairs; its slots
are the node inputs of the normal then the reduction cell, each
`input * len(ops) + op_index`.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops as kops

from keras_nas.blocks.genotypes import Genotype
from keras_nas.blocks.ops import FactorizedReduce, ReLUConvBN, get_op
from keras_nas.spaces.cell_space import (
    DEFAULT_OPS,
    CellSearchSpace,
    genotype_from_hyperparameters,
)
from keras_nas.supernet import _path_logic as logic
from keras_nas.supernet import topology as tp

__all__ = ["CellTopology"]


def reduction_indices(num_cells: int) -> tuple[int, ...]:
    """Cells that halve the resolution: at 1/3 and 2/3 of the depth."""
    return tuple(sorted({num_cells // 3, 2 * num_cells // 3}))


@tp.register_topology
class CellTopology(tp.Topology):
    """`search_space="cell"`: `CellSearchSpace` (see the module)."""

    name = "cell"
    space_class = CellSearchSpace
    arguments = ("ops", "num_nodes", "num_cells", "filters", "search_reduction")
    key_doc = "(cell, node, input, op) for the cell space"

    @classmethod
    def spec_from_space(cls, space: Any) -> dict[str, Any] | None:
        spec = super().spec_from_space(space)
        if spec is not None:  # The first of searched sizes; ops as a tuple.
            spec.update(
                ops=tuple(space.ops),
                num_cells=space.num_cells[0],
                filters=space.filters[0],
            )
        return spec

    @classmethod
    def check_spec(cls, spec: dict[str, Any]) -> dict[str, Any]:
        return {
            "ops": tuple(spec.get("ops") or DEFAULT_OPS),
            "num_nodes": int(spec.get("num_nodes", 4)),
            "num_cells": int(spec.get("num_cells", 3)),
            "search_reduction": bool(spec.get("search_reduction", True)),
            "filters": int(spec.get("filters", 8)),
        }

    @property
    def ops(self) -> tuple[str, ...]:
        return self.spec["ops"]

    @property
    def num_cells(self) -> int:
        return self.spec["num_cells"]

    def _make_layers(self) -> None:
        s = self.spec
        c = s["filters"]
        h, w, _ = s["input_shape"]
        self.stem.extend(tp.conv_stem(3 * c))
        self.reductions = reduction_indices(s["num_cells"])
        self._branches = []  # [cell][node] -> [(layer, input)]
        c_pp, c_p, reduction_prev = 3 * c, 3 * c, False
        size_pp = size_p = (h, w)
        for cell in range(s["num_cells"]):
            reduce = cell in self.reductions
            if reduce:
                c *= 2
            kind = "reduce" if reduce else "normal"
            name = f"cell{cell}_pre0"
            if reduction_prev:
                pre0 = FactorizedReduce(c, affine=self.affine, name=name)
            else:
                pre0 = ReLUConvBN(c, 1, affine=self.affine, name=name)
            pre1 = ReLUConvBN(c, 1, affine=self.affine, name=f"cell{cell}_pre1")
            self.add_cell_layer(pre0, (None, *size_pp, c_pp))
            self.add_cell_layer(pre1, (None, *size_p, c_p))
            out = tp.reduced(size_p) if reduce else size_p
            nodes = []
            for node in range(s["num_nodes"]):
                branches = []
                for src in range(node + 2):
                    strides = 2 if reduce and src < 2 else 1
                    in_size = size_p if src < 2 else out
                    for op in s["ops"]:
                        layer = get_op(
                            op, c, strides=strides, affine=self.affine
                        )
                        layer.name = f"cell{cell}_{kind}_n{node}_i{src}_{op}"
                        self.add_op(
                            (cell, node, src, op), layer, (None, *in_size, c)
                        )
                        branches.append((layer, src))
                nodes.append(branches)
            self._branches.append(nodes)
            c_pp, c_p = c_p, s["num_nodes"] * c
            size_pp, size_p = size_p, out
            reduction_prev = reduce
        self._head_shape = (None, *size_p, c_p)
        self.head.extend(
            [
                keras.layers.GlobalAveragePooling2D(name="global_pool"),
                tp.classifier(s["num_classes"]),
            ]
        )

    # -- paths ----------------------------------------------------------

    def to_path(self, values: Any) -> tuple:
        genotype = values
        if isinstance(values, tuple):  # Already a path (validated below).
            genotype = Genotype(normal=values[0], reduce=values[1])
        if not isinstance(genotype, Genotype):
            genotype = genotype_from_hyperparameters(values)
        s = self.spec
        for kind in ("normal", "reduce"):
            pairs = getattr(genotype, kind)
            bad = [p for p in pairs if p[0] not in s["ops"]]
            if genotype.arity != 2 or len(pairs) != 2 * s["num_nodes"] or bad:
                raise ValueError(
                    f"Expected a path of this supernet: {s['num_nodes']} "
                    f"nodes of 2 inputs with ops from {list(s['ops'])}. "
                    f"Received: {kind} cell {pairs!r}"
                )
        return (genotype.normal, genotype.reduce)

    def path_indices(self, path: tuple) -> np.ndarray:
        names = list(self.ops)
        out = [
            src * len(names) + names.index(op)
            for kind in (0, 1)
            for op, src in path[kind]
        ]
        return np.asarray(out, dtype="int32")

    def indices_path(self, indices: Any) -> tuple:
        names = list(self.ops)
        indices = [int(v) for v in np.asarray(indices).reshape(-1)]
        half = len(indices) // 2
        return tuple(
            tuple((names[k % len(names)], k // len(names)) for k in part)
            for part in (indices[:half], indices[half:])
        )

    def slot_sizes(self) -> list[int]:
        n_ops = len(self.ops)
        nodes = self.spec["num_nodes"]
        one = [(node + 2) * n_ops for node in range(nodes) for _ in range(2)]
        return one + one

    def drawn_slot_sizes(self) -> list[int]:
        sizes = self.slot_sizes()
        if self.spec["search_reduction"]:
            return sizes
        return sizes[: len(sizes) // 2]  # the reduction cell mirrors

    def expand_drawn(self, indices):
        if self.spec["search_reduction"]:
            return indices
        return kops.concatenate([indices, indices], axis=-1)

    def _offset(self, cell: int) -> int:
        """The first slot of a cell: the normal or the reduction slots."""
        return 2 * self.spec["num_nodes"] if cell in self.reductions else 0

    def cell_slots(self, cell: int) -> list[tuple[int, list]]:
        offset = self._offset(cell)
        return [
            (offset + 2 * node + k, branches)
            for node, branches in enumerate(self._branches[cell])
            for k in range(2)
        ]

    # -- the network ---------------------------------------------------

    def forward_cells(self, x, dispatch, training, use):
        s0 = s1 = x
        for cell in range(self.num_cells):
            pre0, pre1 = self.cell_layers[2 * cell : 2 * cell + 2]
            states = [
                use(pre0)(s0, training=training),
                use(pre1)(s1, training=training),
            ]
            offset = self._offset(cell)
            for node, branches in enumerate(self._branches[cell]):
                total = None
                for k in range(2):
                    slot = offset + 2 * node + k
                    h = dispatch(slot, branches, states[: node + 2])
                    total = h if total is None else total + h
                states.append(total)
            s0, s1 = s1, tp.concatenate(states[2:], axis=-1)
        return s1

    def liveness(self, indices) -> dict[Any, Any]:
        names = list(self.ops)
        n_ops = len(names)
        none = names.index("none") if "none" in names else None
        n = self.num_cells
        out = {"head": True}
        pre_live = {}
        for cell in reversed(range(n)):
            # The cell's output feeds the head or a later cell's input.
            out_live = cell == n - 1
            out_live = logic.or_(out_live, pre_live.get((cell + 1, 1), False))
            out_live = logic.or_(out_live, pre_live.get((cell + 2, 0), False))
            offset = self._offset(cell)
            used = {0: False, 1: False}
            for node in range(self.spec["num_nodes"]):
                slots = [indices[offset + 2 * node + k] for k in range(2)]
                for slot in slots:
                    src, op = logic.divmod_(slot, n_ops)
                    op_ok = True if none is None else logic.ne(op, none)
                    for k in (0, 1):
                        hit = logic.and_(op_ok, logic.eq(src, k))
                        hit = logic.and_(out_live, hit)
                        used[k] = logic.or_(used[k], hit)
                for src in range(node + 2):
                    for j, op in enumerate(names):
                        key = ("op", self.op_index[(cell, node, src, op)])
                        if j == none:
                            out[key] = False
                            continue
                        code = src * n_ops + j
                        chosen = logic.or_(
                            logic.eq(slots[0], code), logic.eq(slots[1], code)
                        )
                        out[key] = logic.and_(out_live, chosen)
            for k in (0, 1):
                pre_live[(cell, k)] = used[k]
                out[("cell", 2 * cell + k)] = used[k]
        stem = logic.or_(pre_live[(0, 0)], pre_live[(0, 1)])
        out["stem"] = logic.or_(stem, pre_live.get((1, 0), False))
        return out
