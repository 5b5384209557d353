"""The DARTS weight update in few graph ops per weight tensor (TensorFlow).

A DARTS supernet has hundreds of weight tensors (891 at the micro
configuration: 8 filters, 5 cells), and its traced training step did
per-tensor work that dwarfed the fused edges (benchmarks/RESULTS.md, issue
#13): Keras' SGD update ~10 graph ops per tensor (reads, multiplies,
assigns, identities), the global-norm clip and the weight decay ~7 more.
TensorFlow's trace time and its first-run graph optimization grow with the
op count. Here the same arithmetic is written with fewer ops:

- `clip_and_decay`: the gradients of equal shape are stacked (one op per
  shape, not per tensor), clipped and decayed as one tensor each, and
  unstacked; the decay reads each weight once. Element for element the
  arithmetic of `_darts_math.clip_and_decay` (the global norm sums the
  same squares in another order: float32 rounding).
- `apply`: PyTorch's SGD (`TorchSGD`, the default weights optimizer) with
  TensorFlow's fused `ResourceApplyMomentum` kernel, one op per tensor
  (`accum = accum * momentum + grad; var -= lr * accum`: `TorchSGD`'s
  rule, same multiplies and adds). Any other optimizer or setting (EMA,
  Keras-side clipping or decay, gradient accumulation, constraints,
  non-float32 weights, a `tf.distribute` strategy) goes through the
  optimizer's own `apply`.
"""

from __future__ import annotations

import tensorflow as tf

from keras_nas import _distribute_tensorflow as distribute
from keras_nas.supernet.torch_style import TorchSGD

__all__ = ["Stacking", "apply", "clip_and_decay"]


def _full_precision(g):
    return tf.cast(g, tf.float32) if g.dtype in (tf.float16, tf.bfloat16) else g


def _groups(tensors):
    """Indices of `tensors` grouped by (shape, dtype), in first-seen order."""
    groups: dict = {}
    for i, t in enumerate(tensors):
        shape = tuple(t.shape)
        if None in shape:  # unknown shape: a group of its own
            groups[("unknown", i)] = [i]
        else:
            groups.setdefault((shape, str(t.dtype)), []).append(i)
    return list(groups.values())


class Stacking:
    """Tensors shaped like `like`, stacked by shape (one op per shape).

    Element-wise arithmetic on the stacked lists (`stack`) is the same
    arithmetic per tensor with one op per shape; `unstack` gives the
    tensors back in `like`'s order.
    """

    def __init__(self, like):
        self.size = len(like)
        self.groups = _groups(like)

    def stack(self, tensors) -> list:
        tensors = list(tensors)
        return [tf.stack([tensors[i] for i in idx]) for idx in self.groups]

    def unstack(self, stacked) -> list:
        out = [None] * self.size
        for s, idx in zip(stacked, self.groups, strict=True):
            for i, t in zip(idx, tf.unstack(s, num=len(idx)), strict=True):
                out[i] = t
        return out


def clip_and_decay(grads, variables, clip, decay):
    """`_darts_math.clip_and_decay` with one op per shape, not per tensor.

    Clips `grads` by their global norm (`clip` None or 0: off), then adds
    `decay * variable` (L2, PyTorch's coupled weight decay).
    """
    grads = [_full_precision(tf.convert_to_tensor(g)) for g in grads]
    if not grads or (not clip and not decay):
        return grads
    stacking = Stacking(grads)
    stacked = stacking.stack(grads)
    if clip:
        norm = tf.sqrt(tf.add_n([tf.reduce_sum(tf.square(s)) for s in stacked]))
        scale = tf.minimum(1.0, clip / tf.maximum(norm, 1e-12))
        stacked = [s * scale for s in stacked]
    if decay:
        values = stacking.stack(
            tf.cast(v.value, g.dtype)
            for v, g in zip(variables, grads, strict=True)
        )
        stacked = [s + decay * v for s, v in zip(stacked, values, strict=True)]
    return stacking.unstack(stacked)


def _fusable(optimizer, grads, variables) -> bool:
    """Whether `apply` may use the fused kernel for `optimizer`."""
    if (
        not isinstance(optimizer, TorchSGD)
        or type(optimizer).update_step is not TorchSGD.update_step
        or not optimizer.built
        or not optimizer.momentum
        or optimizer.use_ema
        or optimizer.clipnorm
        or optimizer.clipvalue
        or optimizer.global_clipnorm
        or optimizer.weight_decay
        or optimizer.gradient_accumulation_steps
        or optimizer.loss_scale_factor is not None
        or tf.distribute.has_strategy()
    ):
        return False
    for g, v in zip(grads, variables, strict=True):
        if (
            g is None
            or isinstance(g, tf.IndexedSlices)
            or v.dtype != "float32"
            or g.dtype != tf.float32
            or v.constraint is not None
            or getattr(v, "overwrite_with_gradient", False)
        ):
            return False
    return True


def apply(optimizer, grads, variables) -> None:
    """`optimizer.apply(grads, variables)`, fused for `TorchSGD`.

    Same learning rate (the schedule at `iterations`), same update, then
    `iterations + 1`, as Keras' `apply`; other optimizers: their `apply`
    (through `_distribute_tensorflow.apply`).
    """
    grads, variables = list(grads), list(variables)
    if not grads:
        return
    if not _fusable(optimizer, grads, variables):
        distribute.apply(optimizer, grads, variables)
        return
    with tf.name_scope(optimizer.name):
        lr = tf.cast(optimizer.learning_rate, tf.float32)
        momentum = tf.constant(optimizer.momentum, tf.float32)
        for g, v in zip(grads, variables, strict=True):
            buf = optimizer.momentums[optimizer._get_variable_index(v)]
            tf.raw_ops.ResourceApplyMomentum(
                var=v.value.handle,
                accum=buf.value.handle,
                lr=lr,
                grad=g,
                momentum=momentum,
                use_locking=False,
                use_nesterov=False,
            )
        optimizer.iterations.assign_add(1)
