"""Discrete architectures from DARTS architecture weights.

`derive_genotype` keeps, for every node of a cell, the two strongest incoming
edges with their strongest op other than `none` (Liu et al., "DARTS:
Differentiable Architecture Search", ICLR 2019, section 2.4).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

from keras_nas._validation import MAX_NODES, check_positive_int
from keras_nas.blocks import registry
from keras_nas.blocks.genotypes import Genotype
from keras_nas.supernet.darts_cells import check_ops, num_edges

__all__ = ["derive_genotype", "softmax"]


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
    for kind, alpha in (("normal", alpha_normal), ("reduce", alpha_reduce)):
        a = np.asarray(keras.ops.convert_to_numpy(alpha), dtype=np.float64)
        expected = (num_edges(num_nodes), len(candidates))
        if a.shape != expected:
            raise ValueError(
                f"Expected `alpha_{kind}` of shape {expected}. "
                f"Received: alpha_{kind} of shape {a.shape}"
            )
        cells[kind] = _derive_cell(softmax(a), candidates, num_nodes)
    concat = tuple(range(2, 2 + num_nodes))
    return Genotype(
        normal=cells["normal"],
        normal_concat=concat,
        reduce=cells["reduce"],
        reduce_concat=concat,
    )
