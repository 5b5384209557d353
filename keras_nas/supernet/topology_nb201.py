"""The NAS-Bench-201 space as a one-shot `Topology`.

The benchmark's macro skeleton (Dong and Yang, "NAS-Bench-201: Extending the
Scope of Reproducible Neural Architecture Search", ICLR 2020): a 3x3 conv
stem, three stages of `cells_per_stage` cells separated by residual
reduction blocks, batch norm, ReLU, global pooling and a softmax
classifier. A cell is a 4-node DAG whose 6 edges each choose an op of
`NB201_OPS`; all cells share the choice. A path is the tuple of the 6 ops;
slot `e` is the index of edge `e`'s op.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from keras_nas.blocks.genotypes import NB201_EDGES, NasBench201Genotype
from keras_nas.blocks.network import ResNetBasicBlock
from keras_nas.blocks.ops import get_op
from keras_nas.blocks.registry import NB201_OPS
from keras_nas.spaces.nas_bench_201 import (
    NasBench201SearchSpace,
    nb201_genotype_from_hyperparameters,
)
from keras_nas.supernet import _path_logic as logic
from keras_nas.supernet import topology as tp

__all__ = ["NasBench201Topology"]


@tp.register_topology
class NasBench201Topology(tp.Topology):
    """`search_space="nb201"`: `NasBench201SearchSpace` (see the module)."""

    name = "nb201"
    space_class = NasBench201SearchSpace
    arguments = ("filters", "cells_per_stage")
    key_doc = "(cell, edge, op) for NAS-Bench-201"

    @classmethod
    def check_spec(cls, spec: dict[str, Any]) -> dict[str, Any]:
        return {
            "filters": int(spec.get("filters", 16)),
            "cells_per_stage": int(spec.get("cells_per_stage", 5)),
        }

    @property
    def ops(self) -> tuple[str, ...]:
        return NB201_OPS

    @property
    def num_cells(self) -> int:
        return 3 * self.spec["cells_per_stage"]

    def _make_layers(self) -> None:
        c = self.spec["filters"]
        h, w, _ = self.spec["input_shape"]
        self.stem.extend(tp.conv_stem(c))
        self._branches = []
        size = (h, w)
        for stage in range(3):
            if stage:
                block = ResNetBasicBlock(
                    2 * c, strides=2, name=f"reduction{stage}"
                )
                self.add_cell_layer(block, (None, *size, c))
                c *= 2
                size = tp.reduced(size)
            for _ in range(self.spec["cells_per_stage"]):
                cell = len(self._branches)
                edges = []
                for edge, (to, src) in enumerate(NB201_EDGES):
                    branches = []
                    for op in self.ops:
                        layer = get_op(op, c, affine=self.affine)
                        layer.name = f"cell{cell}_e{to}{src}_{op}"
                        self.add_op((cell, edge, op), layer, (None, *size, c))
                        branches.append((layer, 0))
                    edges.append(branches)
                self._branches.append(edges)
        self._head_shape = (None, *size, c)
        self.head.extend(
            [
                keras.layers.BatchNormalization(name="head_bn"),
                keras.layers.ReLU(name="head_relu"),
                keras.layers.GlobalAveragePooling2D(name="global_pool"),
                tp.classifier(self.spec["num_classes"]),
            ]
        )

    # -- paths ----------------------------------------------------------

    def to_path(self, values: Any) -> tuple:
        if isinstance(values, tuple):  # Already a path (validated here).
            values = NasBench201Genotype(values)
        if isinstance(values, str):
            values = NasBench201Genotype.from_string(values)
        if not isinstance(values, NasBench201Genotype):
            values = nb201_genotype_from_hyperparameters(values)
        return tuple(values.ops)

    def path_indices(self, path: tuple) -> np.ndarray:
        names = list(self.ops)
        return np.asarray([names.index(op) for op in path], dtype="int32")

    def indices_path(self, indices: Any) -> tuple:
        indices = np.asarray(indices).reshape(-1)
        return tuple(self.ops[int(k)] for k in indices)

    def slot_sizes(self) -> list[int]:
        return [len(self.ops)] * len(NB201_EDGES)

    def cell_slots(self, cell: int) -> list[tuple[int, list]]:
        return list(enumerate(self._branches[cell]))

    # -- the network ---------------------------------------------------

    def forward_cells(self, x, dispatch, training, use):
        blocks = iter(self.cell_layers)
        cell = 0
        for stage in range(3):
            if stage:
                x = use(next(blocks))(x, training=training)
            for _ in range(self.spec["cells_per_stage"]):
                nodes = [x]
                for to in (1, 2, 3):
                    total = None
                    for e, (edge_to, src) in enumerate(NB201_EDGES):
                        if edge_to != to:
                            continue
                        branches = self._branches[cell][e]
                        h = dispatch(e, branches, [nodes[src]])
                        total = h if total is None else total + h
                    nodes.append(total)
                x = nodes[3]
                cell += 1
        return x

    def liveness(self, indices) -> dict[Any, Any]:
        names = list(self.ops)
        none = names.index("none") if "none" in names else None
        active = [
            True if none is None else logic.ne(indices[e], none)
            for e in range(len(NB201_EDGES))
        ]
        # reach[n]: node n reaches the cell's output through non-`none` ops.
        reach = {3: True}
        for node in (2, 1, 0):
            reach[node] = False
            for e, (to, src) in enumerate(NB201_EDGES):
                if src == node:
                    step = logic.and_(active[e], reach[to])
                    reach[node] = logic.or_(reach[node], step)
        n_cells = self.num_cells
        out = {"stem": reach[0], "head": True}
        for i in range(len(self.cell_layers)):
            out[("cell", i)] = reach[0]
        for cell in range(n_cells):
            flowing = True if cell == n_cells - 1 else reach[0]
            for e, (to, _) in enumerate(NB201_EDGES):
                for k, op in enumerate(names):
                    key = ("op", self.op_index[(cell, e, op)])
                    if k == none:
                        out[key] = False
                        continue
                    chosen = logic.eq(indices[e], k)
                    out[key] = logic.and_(
                        chosen, logic.and_(flowing, reach[to])
                    )
        return out
