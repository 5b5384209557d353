"""Discrete architectures from DARTS architecture weights.

`derive_genotype` keeps, for every node of a cell, the two strongest incoming
edges with their strongest op other than `none` (Liu et al., "DARTS:
Differentiable Architecture Search", ICLR 2019, section 2.4).
`GenotypeDerivation` is the part of `DartsSupernet` that reads its
architecture weights (`arch_weights`, `edge_weights`, `derive_genotype`,
`derive_hyperparameters`); it relies on the supernet's `alpha_*`/`beta_*`
variables and its search-space attributes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

from keras_nas._validation import MAX_NODES, check_positive_int
from keras_nas.blocks import registry
from keras_nas.blocks.genotypes import Genotype
from keras_nas.spaces.cell_space import hyperparameters_from_genotype
from keras_nas.spaces.nas_bench_201_space import (
    nb201_hyperparameters_from_genotype,
)
from keras_nas.supernet import darts_nb201, relaxations
from keras_nas.supernet.bilevel import ARCH_NAMES, BETA_NAMES
from keras_nas.supernet.darts_cells import check_ops, num_edges

__all__ = ["GenotypeDerivation", "derive_genotype", "softmax"]


def softmax(a: np.ndarray) -> np.ndarray:
    """The softmax of the last axis, in float64."""
    a = np.asarray(a, dtype=np.float64)
    e = np.exp(a - a.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _derive_cell(weights: np.ndarray, candidates: Sequence[str], num_nodes):
    none = [k for k, name in enumerate(candidates) if name == "none"]
    masked = np.array(weights, dtype=np.float64)
    masked[:, none] = -np.inf
    pairs = []
    start = 0
    for i in range(num_nodes):
        block = masked[start : start + i + 2]
        strength = block.max(axis=-1)
        # Stable sort: ties go to the earlier input, as in the DARTS code.
        best = sorted(range(i + 2), key=lambda j: -strength[j])[:2]
        for j in best:
            pairs.append((candidates[int(np.argmax(block[j]))], int(j)))
        start += i + 2
    return pairs


def derive_genotype(
    alpha_normal: Any,
    alpha_reduce: Any,
    ops: Sequence[str] = registry.DARTS_OPS,
    num_nodes: int = 4,
    edge_weights_normal: Any = None,
    edge_weights_reduce: Any = None,
) -> Genotype:
    """Discretizes architecture weights into a `Genotype` (Liu et al., 2019).

    For each node, the two incoming edges whose strongest op other than
    `none` has the largest softmax weight are kept, each with that op. The
    cell concatenates all intermediate nodes.

    Args:
        alpha_normal: `(num_edges, len(ops))` logits of the normal cell.
        alpha_reduce: the same for the reduction cell.
        ops: the op names of the columns.
        num_nodes: intermediate nodes per cell.
        edge_weights_normal: PC-DARTS (Xu et al., ICLR 2020): the
            `(num_edges,)` edge-normalisation weights of the normal cell
            (the per-node softmax of its betas); each edge's op weights
            are multiplied by its weight before the selection. None: 1.
        edge_weights_reduce: the same for the reduction cell.

    Returns:
        A `Genotype` with two `(op, input)` pairs per node, strongest first.

    Example:

    >>> import numpy as np
    >>> g = derive_genotype(np.zeros((14, 8)), np.zeros((14, 8)))
    >>> g.num_nodes, "none" in {op for op, _ in g.normal}
    (4, False)
    """
    candidates = check_ops(ops)
    num_nodes = check_positive_int("num_nodes", num_nodes, 1, MAX_NODES)
    cells = {}
    edge_weights = {
        "normal": edge_weights_normal,
        "reduce": edge_weights_reduce,
    }
    for kind, alpha in (("normal", alpha_normal), ("reduce", alpha_reduce)):
        a = np.asarray(keras.ops.convert_to_numpy(alpha), dtype=np.float64)
        expected = (num_edges(num_nodes), len(candidates))
        if a.shape != expected:
            raise ValueError(
                f"Expected `alpha_{kind}` of shape {expected}. "
                f"Received: alpha_{kind} of shape {a.shape}"
            )
        weights = softmax(a)
        if edge_weights[kind] is not None:
            scale = np.asarray(edge_weights[kind], dtype=np.float64)
            if scale.shape != (expected[0],):
                raise ValueError(
                    f"Expected `edge_weights_{kind}` of shape "
                    f"{(expected[0],)}. Received: edge_weights_{kind} of "
                    f"shape {scale.shape}"
                )
            weights = weights * scale[:, None]
        cells[kind] = _derive_cell(weights, candidates, num_nodes)
    concat = tuple(range(2, 2 + num_nodes))
    return Genotype(
        normal=cells["normal"],
        normal_concat=concat,
        reduce=cells["reduce"],
        reduce_concat=concat,
    )


class GenotypeDerivation:
    """Mixin of `DartsSupernet`: its architecture weights, read out."""

    def arch_weights(self) -> dict[str, np.ndarray]:
        """The softmax of `alpha_normal` and `alpha_reduce` (numpy; only
        "normal" for nb201)."""
        out = {}
        for kind, name in zip(
            ("normal", "reduce"), ARCH_NAMES[: self._kinds], strict=False
        ):
            alpha = keras.ops.convert_to_numpy(getattr(self, name))
            out[kind] = softmax(alpha)
        return out

    def edge_weights(self) -> dict[str, np.ndarray] | None:
        """PC-DARTS' per-node softmax of `beta_normal`/`beta_reduce`
        (numpy), or None without `partial_channels`."""
        if self.partial_channels == 1:
            return None
        out = {}
        for kind, name in zip(
            ("normal", "reduce"), BETA_NAMES[: self._kinds], strict=False
        ):
            beta = getattr(self, name)
            out[kind] = keras.ops.convert_to_numpy(
                relaxations.node_softmax(beta, self._node_sizes())
            )
        return out

    def derive_genotype(self) -> Any:
        """The discrete architecture of the current `alpha`: a `Genotype`
        (see `derive_genotype`; PC-DARTS weighs each edge's op weights by
        its beta weight first) or, for nb201, a `NasBench201Genotype` (the
        argmax op of every edge; see `derive_nb201_genotype`)."""
        if self.search_space == "nb201":
            return darts_nb201.derive_nb201_genotype(
                self.alpha_normal, self.candidate_ops
            )
        betas = self.edge_weights() or {}
        return derive_genotype(
            self.alpha_normal,
            self.alpha_reduce,
            ops=self.candidate_ops,
            num_nodes=self.num_nodes,
            edge_weights_normal=betas.get("normal"),
            edge_weights_reduce=betas.get("reduce"),
        )

    def derive_hyperparameters(
        self, num_cells: int | None = None, filters: int | None = None
    ) -> dict[str, Any]:
        """The derived genotype as `CellSearchSpace` hyperparameter values.

        Args:
            num_cells: if given, added as the `num_cells` value.
            filters: if given, added as the `filters` value.
        """
        if self.search_space == "nb201":
            return nb201_hyperparameters_from_genotype(self.derive_genotype())
        return hyperparameters_from_genotype(
            self.derive_genotype(), num_cells=num_cells, filters=filters
        )
