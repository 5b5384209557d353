"""The piecewise one-shot step's optimizer update on JAX (`_path_update`).

One function per variable, jitted once per shape (and rule), on the
state's values: no `Variable.assign`, no per-op dispatch of Keras'
eager `update_step`.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import keras

from keras_nas.supernet import _path_update as update

__all__ = ["apply_rule"]


def _clip_by_norm(g, clipnorm):
    """Keras' `_clip_by_norm` (the backend-neutral one JAX uses)."""
    l2sum = jnp.sum(jnp.square(g), keepdims=True)
    pred = l2sum > 0
    l2sum_safe = jnp.where(pred, l2sum, jnp.ones_like(l2sum))
    l2norm = jnp.where(pred, jnp.sqrt(l2sum_safe), l2sum)
    return (g * clipnorm) / jnp.maximum(l2norm, clipnorm)


@functools.cache
def _update_function(rule: update.Rule, decay: bool):
    """`fn(variable, slots, grad, lr, iterations, scale) -> (variable,
    slots)`: one variable's update by `rule` (`_path_update`), Keras'
    arithmetic term for term (the clipping, the weight decay, `SGD` /
    `Adam`'s `update_step`), jitted (once per shape)."""

    def run(var, slots, g, lr, iterations, scale):
        if rule.clip == "clipnorm":
            g = _clip_by_norm(g, rule.clipnorm)
        elif rule.clip == "global_clipnorm":
            g = g * scale
        elif rule.clip == "clipvalue":
            g = jnp.clip(g, -rule.clipvalue, rule.clipvalue)
        dtype = var.dtype
        lr = jnp.asarray(lr, dtype)
        g = jnp.asarray(g, dtype)
        if decay:
            var = var - var * jnp.asarray(rule.weight_decay, dtype) * lr
        if rule.kind == "sgd":
            if not slots:
                return var - g * lr, slots
            momentum = jnp.asarray(rule.momentum, dtype)
            m = slots[0] * momentum - g * lr
            if rule.nesterov:
                return var + (m * momentum - g * lr), [m]
            return var + m, [m]
        step = jnp.asarray(iterations + 1, dtype)
        beta_1_power = jnp.power(jnp.asarray(rule.beta_1, dtype), step)
        beta_2_power = jnp.power(jnp.asarray(rule.beta_2, dtype), step)
        alpha = lr * jnp.sqrt(1 - beta_2_power) / (1 - beta_1_power)
        m, v = slots
        m = m + (g - m) * (1 - rule.beta_1)
        v = v + (jnp.square(g) - v) * (1 - rule.beta_2)
        var = var - (m * alpha) / (jnp.sqrt(v) + rule.epsilon)
        return var, [m, v]

    return jax.jit(run)


@jax.jit
def _squared(g):
    return jnp.sum(jnp.square(g))


def _global_scale(rule, grads):
    """Keras' `clip_by_global_norm` factor of the path's gradients (1 when
    another or no clipping applies)."""
    if rule.clip != "global_clipnorm":
        return _one()
    clip = rule.global_clipnorm
    norm = jnp.sqrt(functools.reduce(jnp.add, [_squared(g) for g in grads]))
    return clip * jnp.minimum(1.0 / norm, 1.0 / clip) + (norm - norm)


@functools.cache
def _one():
    return jnp.ones((), "float32")


def apply_rule(model, step, rule, grads, on, state) -> tuple:
    """The update of `rule` on the variables `on` (positions in
    `step.trainable`) with their gradients: the new `(trainable,
    optimizer_vars)` of `state`, and `iterations + 1`."""
    trainable, optimizer_vars = list(state[0]), list(state[1])
    optimizer = model.optimizer
    for p in step.shared:  # iterations, learning rate: the schedule reads
        step.optimizer_variables[p].assign(optimizer_vars[p])
    lr = keras.ops.convert_to_tensor(optimizer.learning_rate)
    iterations = optimizer.iterations.value
    variables = [step.trainable[i] for i in on]
    path_grads = [grads[i] for i in on]
    scale = _global_scale(rule, path_grads)
    all_slots = update.slots(optimizer, rule, variables)
    decays = update.decays(optimizer, rule, variables)
    for i, g, slots, decay in zip(
        on, path_grads, all_slots, decays, strict=True
    ):
        at = [step.at[id(slot)] for slot in slots]
        new, new_slots = _update_function(rule, decay)(
            trainable[i], [optimizer_vars[p] for p in at], g, lr, iterations,
            scale,
        )
        trainable[i] = new
        for p, value in zip(at, new_slots, strict=True):
            optimizer_vars[p] = value
    optimizer.iterations.assign(iterations + 1)
    for p in step.shared:
        optimizer_vars[p] = step.optimizer_variables[p].value
    return trainable, optimizer_vars
