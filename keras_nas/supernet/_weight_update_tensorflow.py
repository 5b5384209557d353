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
- `update` (clip, decay and `apply` in one): inside a `tf.function`, for
  `TorchSGD`, the per-tensor work runs in functions traced once per kind
  of layer (`by_layer`: the variables of one edge, one preprocessing block
  ...; the signature is the group's shapes) that take the layer's
  variables, momentum buffers and gradients (`_noinline`, as the edge
  functions of `_darts_graph.py`): the global norm is the sum of the
  groups' partial sums, then one call per group clips, decays and applies
  the fused kernel. The step's graph holds two calls per layer, not a read
  and an update per tensor: grappler and the executor set-up see a graph
  ~1,800 ops smaller (micro configuration), and the shared bodies are
  optimized once per kind (benchmarks/RESULTS.md, branch r13-tf-outer).
  Same arithmetic element for element; the norm's squares summed per
  layer (float32 rounding).
- `weights_for_unrolling`: the second-order step's moves of the weights
  (`w'`, `w +- eps v`, the restore, the norm of `v`) the same way, one
  call per layer (`LayerWeights`), or stacked by shape (`StackedWeights`)
  eagerly and under a `tf.distribute` strategy.
"""

from __future__ import annotations

import tensorflow as tf

from keras_nas import _distribute_tensorflow as distribute
from keras_nas.supernet._darts_math import (
    by_layer,
    clip_factor,
    global_norm,
    virtual_step,
)
from keras_nas.supernet.torch_style import fusable

__all__ = [
    "LayerWeights",
    "StackedWeights",
    "Stacking",
    "apply",
    "by_layer",
    "clip_and_decay",
    "group_call",
    "squared_norm",
    "update",
    "weights_for_unrolling",
]



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
        scale = clip_factor(norm, clip)
        stacked = [s * scale for s in stacked]
    if decay:
        values = stacking.stack(
            tf.cast(v.value, g.dtype)
            for v, g in zip(variables, grads, strict=True)
        )
        stacked = [s + decay * v for s, v in zip(stacked, values, strict=True)]
    return stacking.unstack(stacked)


def _fusable(optimizer, grads, variables) -> bool:
    """Whether `apply` may use the fused kernel for `optimizer`: its step
    is `TorchSGD`'s alone (`torch_style.fusable`) with momentum, outside a
    `tf.distribute` strategy, on dense float32 gradients."""
    if (
        not fusable(optimizer, variables)
        or not optimizer.momentum
        or tf.distribute.has_strategy()
    ):
        return False
    return all(
        g is not None
        and not isinstance(g, tf.IndexedSlices)
        and g.dtype == tf.float32
        for g in grads
    )


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


def _noinline(fn, relaxed: bool = False):
    """`fn` as a `tf.function` that stays one call in its caller's graph,
    traced once per signature (the shapes of its arguments).

    `relaxed` (for functions without outputs shaped by their arguments):
    traced once per structure of the arguments (how many tensors of which
    rank), a second shape of a structure tracing it once more with the
    differing dimensions unknown (`reduce_retracing`), which every later
    shape reuses; each traced body is also instantiated and optimized at
    the first run (micro configuration: 17 -> 8 bodies each for the
    update's two functions; benchmarks/RESULTS.md, branch c15-tf-first).
    Not for the second order's moves: a relaxed trace of a function that
    returns its variables' values failed on TF 2.21 (ranks 4 and 1 mixed).
    """
    return tf.function(
        fn,
        autograph=False,
        reduce_retracing=relaxed,
        experimental_attributes={"_noinline": True},
    )


def group_call(fn, groups, *lists, **kwargs) -> list:
    """`fn(*[l[i] for i in g], **kwargs)` per group `g` of `groups`, for
    each list in `lists` (None: passed as None); the results in order."""
    return [
        fn(*[None if x is None else [x[i] for i in g] for x in lists], **kwargs)
        for g in groups
    ]


def _squared_norm(tensors):
    return tf.add_n([tf.reduce_sum(tf.square(t)) for t in tensors])


_SQUARED_NORM = _noinline(_squared_norm, relaxed=True)


def squared_norm(tensors, groups) -> tf.Tensor:
    """The squared global L2 norm of `tensors`: one call per group."""
    return tf.add_n(group_call(_SQUARED_NORM, groups, tensors))


def _apply_group(variables, momentums, grads, lr, momentum, scale, decay):
    for v, m, g in zip(variables, momentums, grads, strict=True):
        if scale is not None:
            g = g * scale
        if decay:
            g = g + decay * v.read_value()
        tf.raw_ops.ResourceApplyMomentum(
            var=v.handle,
            accum=m.handle,
            lr=lr,
            grad=g,
            momentum=momentum,
            use_locking=False,
            use_nesterov=False,
        )


_APPLY_GROUP = _noinline(_apply_group, relaxed=True)


def update(optimizer, grads, variables, clip, decay) -> None:
    """`apply(optimizer, clip_and_decay(grads, variables, clip, decay),
    variables)`; inside a `tf.function` with the fused kernel, one call per
    layer (module docstring)."""
    grads, variables = list(grads), list(variables)
    if not (
        grads and tf.inside_function() and _fusable(optimizer, grads, variables)
    ):
        grads = clip_and_decay(grads, variables, clip, decay)
        apply(optimizer, grads, variables)
        return
    groups = by_layer(variables)
    scale = None
    if clip:
        norm = tf.sqrt(squared_norm(grads, groups))
        scale = clip_factor(norm, clip)
    with tf.name_scope(optimizer.name):
        momentums = [
            optimizer.momentums[optimizer._get_variable_index(v)].value
            for v in variables
        ]
        group_call(
            _APPLY_GROUP,
            groups,
            [v.value for v in variables],
            momentums,
            grads,
            lr=tf.cast(optimizer.learning_rate, tf.float32),
            # A Python number: a constant input would make grappler
            # specialize the function for every call site.
            momentum=float(optimizer.momentum),
            scale=scale,
            decay=float(decay) if decay else 0.0,
        )
        optimizer.iterations.assign_add(1)


def assign(variables, values) -> None:
    """`variables[i].assign(values[i])`, cast to each variable's dtype."""
    for v, value in zip(variables, values, strict=True):
        v.assign(tf.cast(value, v.dtype))


def _virtual_group(variables, momentums, grads, lr, momentum, decay, in_buf):
    backup = [v.read_value() for v in variables]
    moms = None if momentums is None else [m.read_value() for m in momentums]
    new = virtual_step(
        backup, grads, moms, lr, momentum, decay, lr_in_buffer=in_buf
    )
    assign(variables, new)
    return backup


def _shift(backup, direction, eps, sign):
    if sign > 0:
        return [b + eps * d for b, d in zip(backup, direction, strict=True)]
    return [b - eps * d for b, d in zip(backup, direction, strict=True)]


def _shift_group(variables, backup, direction, eps, sign):
    assign(variables, _shift(backup, direction, eps, sign))


_VIRTUAL_GROUP = _noinline(_virtual_group)
_SHIFT_GROUP = _noinline(_shift_group)
_ASSIGN_GROUP = _noinline(assign)


class StackedWeights:
    """The weights' moves of the unrolled step, on the weights stacked by
    shape (`Stacking`: one op per shape, not per tensor)."""

    def __init__(self, variables, momentums):
        self.variables, self.momentums = variables, momentums
        self.stacking = Stacking(variables)

    def virtual_step(self, grads, lr, momentum, decay, lr_in_buffer):
        """Saves the weights and moves them to `w'` (`virtual_step`)."""
        stack = self.stacking.stack
        self.backup = stack(v.value for v in self.variables)
        moms = None
        if self.momentums is not None:
            moms = stack(m.value for m in self.momentums)
        new = virtual_step(
            self.backup,
            stack(grads),
            moms,
            lr,
            momentum,
            decay,
            lr_in_buffer=lr_in_buffer,
        )
        assign(self.variables, self.stacking.unstack(new))

    def norm(self, tensors):
        """The global L2 norm of `tensors` (shaped as the weights)."""
        return global_norm(self.stacking.stack(tensors))

    def shift(self, direction, eps, sign):
        """Sets the weights to `backup + eps * direction` (sign > 0) or
        `backup - eps * direction`."""
        shifted = _shift(self.backup, self.stacking.stack(direction), eps, sign)
        assign(self.variables, self.stacking.unstack(shifted))

    def restore(self):
        assign(self.variables, self.stacking.unstack(self.backup))


class LayerWeights(StackedWeights):
    """`StackedWeights`' moves in one call per layer (`by_layer`)."""

    def __init__(self, variables, momentums):
        self.variables, self.momentums = variables, momentums
        self.groups = by_layer(variables)
        self.handles = [v.value for v in variables]

    def virtual_step(self, grads, lr, momentum, decay, lr_in_buffer):
        moms = None
        if self.momentums is not None:
            moms = [m.value for m in self.momentums]
        backups = group_call(
            _VIRTUAL_GROUP,
            self.groups,
            self.handles,
            moms,
            list(grads),
            lr=lr,
            momentum=float(momentum),
            decay=float(decay),
            in_buf=bool(lr_in_buffer),
        )
        self.backup = [None] * len(self.variables)
        for idx, values in zip(self.groups, backups, strict=True):
            for i, value in zip(idx, values, strict=True):
                self.backup[i] = value

    def norm(self, tensors):
        return tf.sqrt(squared_norm(list(tensors), self.groups))

    def shift(self, direction, eps, sign):
        group_call(
            _SHIFT_GROUP,
            self.groups,
            self.handles,
            self.backup,
            list(direction),
            eps=eps,
            sign=1 if sign > 0 else -1,
        )

    def restore(self):
        group_call(_ASSIGN_GROUP, self.groups, self.handles, self.backup)


def weights_for_unrolling(variables, momentums) -> StackedWeights:
    """`LayerWeights` inside a `tf.function` without a `tf.distribute`
    strategy, else `StackedWeights`."""
    if tf.inside_function() and not tf.distribute.has_strategy():
        return LayerWeights(variables, momentums)
    return StackedWeights(variables, momentums)
