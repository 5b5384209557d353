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

Backend-neutral: the gates and the rescaling are `keras.ops` (on one
block's logits or on a batch of rows, e.g. every edge of a DARTS cell); the
sampling is NumPy (`sample_path`, `sample_pair`, with a generator) or, in a
traced step, `keras.ops` on given uniform numbers (`path_from_noise`,
`pair_from_noise`: the Gumbel-max and Gumbel-top-2 tricks, the same
distributions). The MobileNet supernet `keras_nas.supernet.proxyless` uses
the NumPy samplers; the `"binary"` relaxation of `DartsSupernet`
(`keras_nas.supernet.relaxations`) the traced ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from keras import ops

__all__ = [
    "derive_index",
    "gate_gradient",
    "pair_from_noise",
    "path_from_noise",
    "probabilities",
    "rescale_pair",
    "rescale_pairs",
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


def _gumbel(uniform):
    return -ops.log(-ops.log(ops.cast(uniform, "float32")))


def path_from_noise(alpha: Any, uniform: Any) -> Any:
    """`sample_path` in `keras.ops`: the index of `argmax(alpha + g)` per
    row, `g = -log(-log(uniform))` (the Gumbel-max trick: a draw from
    `softmax(alpha)`).

    Args:
        alpha: logits of shape `(..., N)`.
        uniform: numbers in (0, 1) of the same shape.

    Returns:
        int32 indices of shape `(...)`.
    """
    perturbed = ops.cast(alpha, "float32") + _gumbel(uniform)
    return ops.cast(ops.argmax(perturbed, axis=-1), "int32")


def pair_from_noise(alpha: Any, uniform: Any, uniform_active: Any) -> Any:
    """`sample_pair` in `keras.ops`: per row, two distinct paths drawn from
    `softmax(alpha)` without replacement (the two largest `alpha + g`: the
    Gumbel-top-2 trick), the first made active with probability
    `softmax(alpha[pair])[0]` (else they are swapped).

    Args:
        alpha: logits of shape `(..., N)`, `N >= 2`.
        uniform: numbers in (0, 1) of shape `(..., N)`.
        uniform_active: numbers in (0, 1) of shape `(...)`.

    Returns:
        int32 `(active, inactive)` indices of shape `(..., 2)`.
    """
    alpha = ops.cast(alpha, "float32")
    _, pair = ops.top_k(alpha + _gumbel(uniform), 2)
    pair = ops.cast(pair, "int32")
    q = ops.softmax(ops.take_along_axis(alpha, pair, axis=-1), axis=-1)
    keep = ops.expand_dims(ops.cast(uniform_active, "float32") < q[..., 0], -1)
    return ops.where(keep, pair, ops.flip(pair, axis=-1))


def straight_through_gates(alpha: Any, pair: Any) -> Any:
    """Gates `(g_active, g_inactive)` with value `(1, 0)`, differentiable.

    `g = onehot + q - stop_gradient(q)` with `q = softmax(alpha[pair])`:
    the forward value is the binary gate, and the gradient of `g_j` with
    respect to `alpha` is that of `q_j`, so `dL/d alpha` is the
    ProxylessNAS estimator over the two sampled paths.

    Args:
        alpha: logits of shape `(N,)` (one block), or `(..., N)` (a row
            per edge).
        pair: `(active, inactive)` indices of shape `(2,)` (from
            `sample_pair`), or `(..., 2)` (from `pair_from_noise`).

    Returns:
        A tensor of shape `(2,)` (or `(..., 2)`).
    """
    pair = ops.cast(ops.convert_to_tensor(pair), "int32")
    q = ops.softmax(ops.take_along_axis(alpha, pair, axis=-1), axis=-1)
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


def rescale_pairs(old: Any, new: Any, pairs: Any) -> Any:
    """`rescale_pair` in `keras.ops` on rows: `new` `(..., N)` with the two
    entries `pairs` `(..., 2)` of every row shifted by one offset per row,
    so that `logsumexp(new[pair]) == logsumexp(old[pair])`."""
    old = ops.convert_to_tensor(old)
    new = ops.convert_to_tensor(new)
    pairs = ops.cast(ops.convert_to_tensor(pairs), "int32")

    def pair_lse(a):
        return ops.logsumexp(ops.take_along_axis(a, pairs, axis=-1), axis=-1)

    offset = ops.expand_dims(pair_lse(new) - pair_lse(old), -1)
    n = ops.shape(new)[-1]
    mask = ops.maximum(
        ops.one_hot(pairs[..., 0], n, dtype=new.dtype),
        ops.one_hot(pairs[..., 1], n, dtype=new.dtype),
    )
    return new - mask * ops.cast(offset, new.dtype)


def rescale_pair(
    old: Any, new: Any, pair: Sequence[int]
) -> np.ndarray:
    """`new` with its two sampled logits shifted by one offset so that
    `sum(exp(new[pair])) == sum(exp(old[pair]))`: the probabilities of the
    other paths stay as they were before the update (NumPy, one block;
    `rescale_pairs` on rows)."""
    new = np.asarray(new, dtype="float64").reshape(-1)
    if len({int(k) for k in pair}) < 2:
        return new.copy()
    old = np.asarray(old, dtype="float64").reshape(1, -1)
    out = rescale_pairs(old, new[None], np.asarray([pair], "int32"))
    return np.asarray(ops.convert_to_numpy(out), dtype="float64")[0]


def derive_index(alpha: Any) -> int:
    """The derived path: the largest logit (ties: the first)."""
    return int(np.argmax(np.asarray(alpha).reshape(-1)))
