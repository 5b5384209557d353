"""The piecewise one-shot step's optimizer update on TensorFlow
(`_path_update`): eagerly, one fused training kernel per variable."""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from keras_nas.supernet import _path_update as update

__all__ = ["apply_update"]


def _clip(rule, grads) -> tuple[list, Any]:
    """Keras' `_clip_gradients` (TensorFlow's `_clip_by_norm`): `(grads,
    scale)`. The factor of `global_clipnorm` is returned, not applied
    (None: nothing to scale): SGD's kernels take it in the learning rate
    (`g * lr * scale`: the same product, another rounding), Adam's in the
    gradients. The global norm sums each gradient's `L2Loss` (one op per
    gradient; the same squares summed in another order)."""
    if rule.clip == "clipnorm":
        return [tf.clip_by_norm(g, rule.clipnorm) for g in grads], None
    if rule.clip == "global_clipnorm":
        clip = rule.global_clipnorm
        norm = tf.sqrt(2.0 * tf.add_n([tf.raw_ops.L2Loss(t=g) for g in grads]))
        scale = clip * tf.minimum(1.0 / norm, 1.0 / clip) + (norm - norm)
        return grads, scale
    if rule.clip == "clipvalue":
        v = rule.clipvalue
        return [tf.clip_by_value(g, -v, v) for g in grads], None
    return grads, None


def apply_update(optimizer, grads, variables) -> None:
    """`optimizer.apply(grads, variables)` eagerly, for Keras' SGD and
    Adam / AdamW in one fused TensorFlow kernel per variable
    (`ResourceApplyKerasMomentum`, `ResourceApplyGradientDescent`,
    `ResourceApplyAdam`: Keras' update rules, term for term), after the
    clipping and the decoupled weight decay; other optimizers and
    settings, or under a `tf.distribute` strategy: `optimizer.apply`
    (`_path_update`)."""
    rule = update.rule(optimizer)
    if (
        rule is None
        or not grads
        or tf.distribute.has_strategy()
        or not update.supported(grads, variables)
        or any(isinstance(g, tf.IndexedSlices) for g in grads)
    ):
        optimizer.apply(grads, variables)
        return
    f32 = tf.float32
    grads, scale = _clip(rule, [tf.cast(g, f32) for g in grads])
    lr = tf.cast(optimizer.learning_rate, f32)
    step_lr = lr
    if scale is not None:
        if rule.kind == "sgd":
            step_lr = lr * scale
        else:
            grads = [g * scale for g in grads]
    if rule.weight_decay is not None:
        wd = tf.cast(rule.weight_decay, f32)
        for v, decay in zip(
            variables, update.decays(optimizer, rule, variables), strict=True
        ):
            if decay:
                v.value.assign_sub(v.value * wd * lr)
    all_slots = update.slots(optimizer, rule, variables)
    if rule.kind == "adam":
        step = tf.cast(optimizer.iterations + 1, f32)
        beta_1, beta_2 = tf.constant(rule.beta_1, f32), tf.constant(
            rule.beta_2, f32
        )
        powers = tf.pow(beta_1, step), tf.pow(beta_2, step)
        epsilon = tf.constant(rule.epsilon, f32)
    elif rule.momentum:
        momentum = tf.constant(rule.momentum, f32)
    for g, v, slots in zip(grads, variables, all_slots, strict=True):
        handle = v.value.handle
        if rule.kind == "adam":
            tf.raw_ops.ResourceApplyAdam(
                var=handle,
                m=slots[0].value.handle,
                v=slots[1].value.handle,
                beta1_power=powers[0],
                beta2_power=powers[1],
                lr=lr,
                beta1=beta_1,
                beta2=beta_2,
                epsilon=epsilon,
                grad=g,
                use_locking=False,
                use_nesterov=False,
            )
        elif rule.momentum:
            tf.raw_ops.ResourceApplyKerasMomentum(
                var=handle,
                accum=slots[0].value.handle,
                lr=step_lr,
                grad=g,
                momentum=momentum,
                use_locking=False,
                use_nesterov=rule.nesterov,
            )
        else:
            tf.raw_ops.ResourceApplyGradientDescent(
                var=handle, alpha=step_lr, delta=g, use_locking=False
            )
    optimizer.iterations.assign_add(1)
