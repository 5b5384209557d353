"""Numerics of the DARTS bilevel step shared by the backend modules.

`_darts_tensorflow.py` and `_darts_jax.py` import these (never `darts.py`,
which picks them): the loss, gradient clipping and weight decay in the
DARTS code's order, and the unrolled weights of the second-order step (Liu
et al., "DARTS: Differentiable Architecture Search", ICLR 2019, eq. 6-8).
Backend-neutral (`keras.ops`).
"""

from __future__ import annotations

import keras
from keras import ops

from keras_nas.supernet.torch_style import TorchSGD

__all__ = [
    "LAYER_DEPTH",
    "by_layer",
    "clip_and_decay",
    "clip_factor",
    "cross_entropy",
    "flat_norm",
    "global_norm",
    "lr_in_buffer",
    "moving_average",
    "sgd_momentums",
    "unpack_search",
    "virtual_step",
]


def _full_precision(x):
    dtype = keras.backend.standardize_dtype(x.dtype)
    return ops.cast(x, "float32") if dtype in ("float16", "bfloat16") else x


#: Path components that name a group's layer (`by_layer`): the model, a
#: cell, a layer of the cell (an edge, a preprocessing block).
LAYER_DEPTH = 3


def by_layer(variables, depth: int = LAYER_DEPTH) -> list:
    """Indices of `variables` grouped by the first `depth` components of
    their paths (the layer that holds them), in first-seen order."""
    groups: dict = {}
    for i, v in enumerate(variables):
        key = "/".join(v.path.split("/")[:depth])
        groups.setdefault(key, []).append(i)
    return list(groups.values())


def cross_entropy(y, logits):
    """Mean sparse categorical cross-entropy of logits (at least float32)."""
    logits = _full_precision(logits)
    return ops.mean(
        ops.sparse_categorical_crossentropy(y, logits, from_logits=True)
    )


def clip_and_decay(
    grads, values, clip: float | None, decay: float, norm_fn=None
):
    """Clips `grads` by global norm, then adds `decay * values` (L2).

    The order of the DARTS code: `clip_grad_norm_`, then PyTorch SGD's
    coupled weight decay. `clip` of None or 0 disables clipping.
    `norm_fn`: how the global norm is computed (`global_norm` when None,
    or `flat_norm`).
    """
    grads = [_full_precision(g) for g in grads]
    if clip:
        scale = clip_factor((norm_fn or global_norm)(grads), clip)
        grads = [g * scale for g in grads]
    if decay:
        grads = [
            g + decay * ops.cast(v, g.dtype)
            for g, v in zip(grads, values, strict=False)
        ]
    return grads


def clip_factor(norm, clip: float):
    """`clip_grad_norm_`'s factor of gradients of global norm `norm`:
    `min(1, clip / norm)` (the norm at least 1e-12)."""
    return ops.minimum(1.0, clip / ops.maximum(norm, 1e-12))


def virtual_step(
    values,
    grads,
    momentums,
    lr,
    momentum: float,
    decay: float,
    lr_in_buffer: bool = True,
):
    """The unrolled weights `w' = w - xi * (momentum term + grad + wd * w)`.

    Eq. 6 of Liu et al. with the momentum and weight decay of the DARTS code
    (`_compute_unrolled_model`): `w - lr * (momentum * buf + g + wd * w)`.
    With `TorchSGD` (`lr_in_buffer=False`) the buffers are PyTorch's, and
    this is exact. Keras' SGD stores `m = momentum * m - lr * g` instead,
    so the term is taken as `-momentum * m`: exact only while the learning
    rate has been constant (under a schedule, `m` holds past rates).
    """
    out = []
    for k, (w, g) in enumerate(zip(values, grads, strict=False)):
        step = lr * (g + decay * w)
        if momentums is not None:
            if lr_in_buffer:
                step = step - momentum * momentums[k]
            else:
                step = step + lr * momentum * momentums[k]
        out.append(w - step)
    return out


def lr_in_buffer(optimizer) -> bool:
    """Whether `optimizer`'s momentum buffers include the learning rate
    (Keras' SGD) or not (`TorchSGD`, PyTorch's rule)."""
    return not isinstance(optimizer, TorchSGD)


def global_norm(tensors):
    """The global L2 norm of a list of tensors."""
    return ops.sqrt(sum(ops.sum(ops.square(t)) for t in tensors))


def flat_norm(tensors):
    """`global_norm` as one reduction over the tensors concatenated: one
    kernel for XLA to compile, not one per tensor and a chain of adds (the
    paper configuration's ~1,400 weights: the JAX weights update's compile
    8.4 -> 4.2 s CPU; benchmarks/RESULTS.md, #13 z13)."""
    flat = [ops.reshape(t, (-1,)) for t in tensors]
    flat = flat[0] if len(flat) == 1 else ops.concatenate(flat)
    return ops.sqrt(ops.sum(ops.square(flat)))


def sgd_momentums(optimizer):
    """The momentum variables of a Keras SGD optimizer, else None."""
    if (
        isinstance(optimizer, keras.optimizers.SGD)
        and optimizer.momentum
        and getattr(optimizer, "momentums", None)
    ):
        return list(optimizer.momentums), float(optimizer.momentum)
    return None, 0.0


def unpack_search(data):
    """`(x_train, y_train, x_val, y_val)` of a DARTS training element."""
    try:
        (xt, yt), (xv, yv) = data
    except (TypeError, ValueError) as e:
        structure = keras.tree.map_structure(lambda t: "T", data)
        raise ValueError(
            "Expected each DARTS training element to be "
            "((x_train, y_train), (x_val, y_val)); see "
            "keras_nas.supernet.search_data. Received: an element of "
            f"structure {structure}"
        ) from e
    return xt, yt, xv, yv


def moving_average(moving, value, momentum):
    """A batch normalization's moving statistic updated as Keras does:
    `moving * momentum + value * (1 - momentum)`."""
    return moving * momentum + value * (1.0 - momentum)


def batch_normalize(x, epsilon):
    """Training-mode batch normalization of `x`'s last axis, without
    scale or offset: the outputs, the batch mean and the biased batch
    variance (what Keras' moving averages take)."""
    mean, variance = ops.moments(x, axes=list(range(len(x.shape) - 1)))
    outputs = ops.batch_normalization(
        x, mean, variance, axis=-1, epsilon=epsilon
    )
    return outputs, mean, variance
