"""Binarised path gates: the binary relaxation of ProxylessNAS.

Cai, Zhu and Han, "ProxylessNAS: Direct Neural Architecture Search on
Target Task and Hardware" (ICLR 2019), Section 3.2. A mixed block (or a
mixed edge of a cell) with `N` candidate ops has real-valued path logits
`alpha` (length `N`) and path probabilities `p = softmax(alpha)`. Instead
of weighting the sum of all `N` op outputs (DARTS), a *binary gate* `g`
(one-hot) keeps one path:

- weight step: one path is sampled from `p` (`sample_path`) and only that
  op runs (its activations are the only ones kept);
- architecture step: two paths are sampled from `p` without replacement
  (`sample_pair`); one of them is active, drawn from the softmax of their
  two logits. The block's output is `g_a * op_a(x) + g_b * op_b(x)` with
  `g = (1, 0)`, and the logits get the paper's estimator (Eq. 4, restricted
  to the two sampled paths):

      dL/d alpha_i = sum_j dL/dg_j * p_j * (delta_ij - p_i),

  with `p` the softmax of the two sampled logits. `straight_through_gates`
  returns gates whose value is `(1, 0)` and whose gradient with respect
  to the logits is `dp/d alpha`, so automatic differentiation of the
  block's output yields exactly this estimator (`gate_gradient` writes it
  out, for checks). `dL/dg_j = <dL/d output, op_j(x)>` needs the inactive
  op's output too: two paths are evaluated, not `N`.
- after the architecture update, the two updated logits are shifted by a
  common offset so that the probabilities of the paths that were not
  sampled do not change (`rescale_pair`, as the paper's code).

Backend-neutral: the gates are `keras.ops`, the sampling NumPy. Any
relaxation with per-choice logits can use these (the MobileNet supernet
`keras_nas.supernet.proxyless` does; a binary relaxation of DARTS cells
could).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from keras import ops

__all__ = [
    "derive_index",
    "gate_gradient",
    "probabilities",
    "rescale_pair",
    "sample_pair",
    "sample_path",
    "straight_through_gates",
]


def probabilities(alpha: Any) -> np.ndarray:
    """`softmax(alpha)` as a float64 NumPy vector (path probabilities)."""
    a = np.asarray(alpha, dtype="float64").reshape(-1)
    e = np.exp(a - a.max())
    return e / e.sum()


def _usable(p: np.ndarray) -> np.ndarray:
    # Every path keeps a tiny chance, so two distinct paths can always be
    # drawn even when the softmax underflows.
    p = np.maximum(p, 1e-12)
    return p / p.sum()


def sample_path(alpha: Any, rng: np.random.Generator) -> int:
    """One path drawn from `softmax(alpha)` (the weight step's gate)."""
    p = _usable(probabilities(alpha))
    return int(rng.choice(len(p), p=p))


def sample_pair(alpha: Any, rng: np.random.Generator) -> tuple[int, int]:
    """Two distinct paths for the architecture step: `(active, inactive)`.

    The two are drawn from `softmax(alpha)` without replacement; the active
    one is drawn from the softmax of their two logits (the paper's code).
    A block with a single candidate returns `(0, 0)`.
    """
    alpha = np.asarray(alpha, dtype="float64").reshape(-1)
    if len(alpha) < 2:
        return 0, 0
    p = _usable(probabilities(alpha))
    i, j = (int(k) for k in rng.choice(len(p), size=2, replace=False, p=p))
    q = probabilities(alpha[[i, j]])
    return (i, j) if rng.random() < q[0] else (j, i)


def straight_through_gates(alpha: Any, pair: Sequence[int]) -> Any:
    """Gates `(g_active, g_inactive)` with value `(1, 0)`, differentiable.

    `g = onehot + q - stop_gradient(q)` with `q = softmax(alpha[pair])`:
    the forward value is the binary gate, and the gradient of `g_j` with
    respect to `alpha` is that of `q_j`, so `dL/d alpha` is the
    ProxylessNAS estimator over the two sampled paths.

    Args:
        alpha: the block's logits, a tensor of shape `(N,)`.
        pair: `(active, inactive)` indices (from `sample_pair`).

    Returns:
        A tensor of shape `(2,)`.
    """
    a, b = (int(k) for k in pair)
    q = ops.softmax(ops.stack([alpha[a], alpha[b]]))
    one_hot = ops.convert_to_tensor(np.asarray([1.0, 0.0]), dtype=q.dtype)
    return one_hot + q - ops.stop_gradient(q)


def gate_gradient(
    alpha: Any, pair: Sequence[int], gate_grads: Sequence[float]
) -> np.ndarray:
    """The estimator written out: `dL/d alpha` (NumPy, length `N`) from the
    two gates' gradients `dL/dg = (dL/dg_active, dL/dg_inactive)`."""
    alpha = np.asarray(alpha, dtype="float64").reshape(-1)
    idx = [int(k) for k in pair]
    q = probabilities(alpha[idx])
    out = np.zeros_like(alpha)
    for i in range(2):
        for j in range(2):
            out[idx[i]] += gate_grads[j] * q[j] * ((i == j) - q[i])
    return out


def rescale_pair(
    old: Any, new: Any, pair: Sequence[int]
) -> np.ndarray:
    """`new` with its two sampled logits shifted by one offset so that
    `sum(exp(new[pair])) == sum(exp(old[pair]))`: the probabilities of the
    other paths stay as they were before the update."""
    old = np.asarray(old, dtype="float64").reshape(-1)
    out = np.asarray(new, dtype="float64").reshape(-1).copy()
    idx = sorted({int(k) for k in pair})
    if len(idx) < 2:
        return out
    offset = np.logaddexp.reduce(out[idx]) - np.logaddexp.reduce(old[idx])
    out[idx] -= offset
    return out


def derive_index(alpha: Any) -> int:
    """The derived path: the largest logit (ties: the first)."""
    return int(np.argmax(np.asarray(alpha).reshape(-1)))
