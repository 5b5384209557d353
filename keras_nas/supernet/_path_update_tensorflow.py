"""The piecewise one-shot step's optimizer update on TensorFlow
(`_path_update`): eagerly, one fused training kernel per variable.

Each variable's handle, its slots' handles, its shape and its weight
decay flag are read once per optimizer (`_Variables`), and the kernels
are run as the generated op wrappers run them, without `tf.raw_ops`'
dispatch: Keras' `Variable.value`, the slot lookup by the variable's key
and the checks per variable cost more Python than the kernels (~5 ms CPU
a step at the tiny configuration, ~80 variables; RESULTS.md, #13 p17).
`global_clipnorm`'s squares are summed per shape (`_squares`). Eager ops, not a
function: a function's call runs on TensorFlow's inter-op thread, ~90 us
CPU a call inside a step, against ~10 us for an eager kernel, and
TensorFlow instantiates a function again for every new combination of its
resource inputs' shapes.
"""

from __future__ import annotations

import weakref
from typing import Any, NamedTuple

import tensorflow as tf
from tensorflow.python.ops import (
    gen_math_ops,
    gen_nn_ops,
    gen_resource_variable_ops,
    gen_training_ops,
)

from keras_nas.supernet import _path_update as update
from keras_nas.supernet.torch_style import plain_variable

__all__ = ["apply_update"]

# optimizer -> _Variables
_TABLES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_F32 = tf.float32


def _squares(grads, shapes) -> Any:
    """The gradients' summed `L2Loss`: those of one shape stacked and
    reduced in one op (~25 shapes among ~190 gradients at the micro
    configuration: ~50 eager ops instead of ~190; the same squares summed
    in another order)."""
    groups: dict = {}
    for g, shape in zip(grads, shapes, strict=True):
        groups.setdefault(shape, []).append(g)
    squares = [
        gen_nn_ops.l2_loss(group[0] if len(group) == 1 else tf.stack(group))
        for group in groups.values()
    ]
    return squares[0] if len(squares) == 1 else gen_math_ops.add_n(squares)


def _clip(rule, grads, shapes) -> tuple[list, Any]:
    """Keras' `_clip_gradients` (TensorFlow's `_clip_by_norm`): `(grads,
    scale)`. The factor of `global_clipnorm` is returned, not applied
    (None: nothing to scale): SGD's kernels take it in the learning rate
    (`g * lr * scale`: the same product, another rounding), Adam's in the
    gradients; its norm is from `_squares` (`shapes`: the variables')."""
    if rule.clip == "clipnorm":
        return [tf.clip_by_norm(g, rule.clipnorm) for g in grads], None
    if rule.clip == "global_clipnorm":
        clip = rule.global_clipnorm
        norm = tf.sqrt(2.0 * _squares(grads, shapes))
        scale = clip * tf.minimum(1.0 / norm, 1.0 / clip) + (norm - norm)
        return grads, scale
    if rule.clip == "clipvalue":
        v = rule.clipvalue
        return [tf.clip_by_value(g, -v, v) for g in grads], None
    return grads, None


class _Entry(NamedTuple):
    """One variable of an optimizer, as the update reads it."""

    variable: Any
    handle: Any
    slots: tuple  # the slots' handles, in the rule's order
    decay: bool  # the weight decay applies
    plain: bool  # the update may run on it (`plain_variable`)
    shape: tuple


class _Variables:
    """Per variable of one optimizer its `_Entry`, read once
    (`_path_update`: `supported`, `slots`, `decays`); made again when the
    optimizer's rule or its list of variables changes."""

    def __init__(self, optimizer, rule):
        self.optimizer, self.rule = weakref.ref(optimizer), rule
        self.indices = optimizer._trainable_variables_indices
        self.size = len(self.indices)
        self.entries: dict = {}

    def valid(self, optimizer, rule) -> bool:
        indices = optimizer._trainable_variables_indices
        return (
            rule == self.rule
            and indices is self.indices
            and len(indices) == self.size
        )

    def entry(self, v) -> _Entry:
        e = self.entries.get(id(v))
        if e is not None and e.variable is v:
            return e
        optimizer, rule = self.optimizer(), self.rule
        slots = update.slots(optimizer, rule, [v])[0]
        e = self.entries[id(v)] = _Entry(
            v,
            v.value.handle,
            tuple(s.value.handle for s in slots),
            update.decays(optimizer, rule, [v])[0],
            plain_variable(v),
            tuple(v.shape),
        )
        return e


def _table(optimizer, rule) -> _Variables:
    table = _TABLES.get(optimizer)
    if table is None or not table.valid(optimizer, rule):
        table = _TABLES[optimizer] = _Variables(optimizer, rule)
    return table


def _dense(g) -> bool:
    """Whether `g`, not a `tf.Tensor`, is a dense gradient (as
    `_path_update.supported` reads it)."""
    return (
        g is not None
        and hasattr(g, "shape")
        and not isinstance(g, tf.IndexedSlices)
    )


def apply_update(optimizer, grads, variables) -> None:
    """`optimizer.apply(grads, variables)` eagerly, for Keras' SGD and
    Adam / AdamW in one fused TensorFlow kernel per variable
    (`ResourceApplyKerasMomentum`, `ResourceApplyGradientDescent`,
    `ResourceApplyAdam`: Keras' update rules, term for term), after the
    clipping and the decoupled weight decay; other optimizers and
    settings, or under a `tf.distribute` strategy: `optimizer.apply`
    (`_path_update`)."""
    rule = update.rule(optimizer)
    if rule is None or not grads or tf.distribute.has_strategy():
        optimizer.apply(grads, variables)
        return
    table = _table(optimizer, rule)
    entries, cast = [], []
    for g, v in zip(grads, variables, strict=True):
        e = table.entry(v)
        # A tensor's `shape` is made per access (~20 us): checked only
        # for other values.
        tensor = isinstance(g, tf.Tensor)
        if not e.plain or not (tensor or _dense(g)):
            optimizer.apply(grads, variables)
            return
        if not tensor or g.dtype != _F32:
            g = tf.cast(g, _F32)
        entries.append(e)
        cast.append(g)
    grads, scale = _clip(rule, cast, [e.shape for e in entries])
    lr = tf.cast(optimizer.learning_rate, _F32)
    step_lr = lr
    if scale is not None:
        if rule.kind == "sgd":
            step_lr = lr * scale
        else:
            grads = [g * scale for g in grads]
    if rule.weight_decay is not None:
        wd = tf.constant(rule.weight_decay, _F32)
        for e in entries:
            if e.decay:
                v = e.variable.value
                v.assign_sub(v * wd * lr)
    if rule.kind == "adam":
        step = tf.cast(optimizer.iterations + 1, _F32)
        beta_1 = tf.constant(rule.beta_1, _F32)
        beta_2 = tf.constant(rule.beta_2, _F32)
        powers = tf.pow(beta_1, step), tf.pow(beta_2, step)
        epsilon = tf.constant(rule.epsilon, _F32)
        for g, e in zip(grads, entries, strict=True):
            gen_training_ops.resource_apply_adam(
                e.handle,
                e.slots[0],
                e.slots[1],
                powers[0],
                powers[1],
                lr,
                beta_1,
                beta_2,
                epsilon,
                g,
                use_locking=False,
                use_nesterov=False,
            )
    elif rule.momentum:
        momentum = tf.constant(rule.momentum, _F32)
        nesterov = rule.nesterov
        for g, e in zip(grads, entries, strict=True):
            gen_training_ops.resource_apply_keras_momentum(
                e.handle,
                e.slots[0],
                step_lr,
                g,
                momentum,
                use_locking=False,
                use_nesterov=nesterov,
            )
    else:
        for g, e in zip(grads, entries, strict=True):
            gen_training_ops.resource_apply_gradient_descent(
                e.handle, step_lr, g, use_locking=False
            )
    gen_resource_variable_ops.assign_add_variable_op(
        optimizer.iterations.value.handle,
        tf.constant(1, optimizer.iterations.dtype),
    )
