"""The piecewise one-shot step's optimizer update on JAX (`_path_update`).

One function per variable, or per layer's variables (`chunks`), jitted
once per shapes (and rule), on the state's values: no `Variable.assign`,
no per-op dispatch of Keras' eager `update_step`.
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
def _chunk_function(rule: update.Rule, decays: tuple):
    """`fn(variables, slots, grads, lr, iterations, scale) -> (variables,
    slots)`: the update by `rule` (`_path_update`) of one or several
    variables (one flag of `decays` each: whether the weight decay
    applies) in one jitted call (compiled once per shapes)."""

    def run(variables, slots, grads, lr, iterations, scale):
        out = [
            _rule_step(rule, decay, v, s, g, lr, iterations, scale)
            for decay, v, s, g in zip(
                decays, variables, slots, grads, strict=True
            )
        ]
        return [v for v, _ in out], [s for _, s in out]

    return jax.jit(run)


def _rule_step(rule, decay, var, slots, g, lr, iterations, scale):
    """One variable's update by `rule`: Keras' arithmetic term for term
    (the clipping, the weight decay, `SGD` / `Adam`'s `update_step`)."""
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


@jax.jit
def _squared(g):
    return jnp.sum(jnp.square(g))


def _global_scale(rule, grads, squared=None):
    """Keras' `clip_by_global_norm` factor of the path's gradients (1 when
    another or no clipping applies); `squared`, if given, their summed
    squares."""
    if rule.clip != "global_clipnorm":
        return _one()
    if squared is None:
        squared = functools.reduce(jnp.add, [_squared(g) for g in grads])
    return _clip_scale(squared, rule.global_clipnorm)


@functools.partial(jax.jit, static_argnums=1)
def _clip_scale(squared, clip):
    """Keras' `clip_by_global_norm` factor of the summed squares (one
    compile, where its eager ops compiled one each)."""
    norm = jnp.sqrt(squared)
    return clip * jnp.minimum(1.0 / norm, 1.0 / clip) + (norm - norm)


@functools.cache
def _one():
    return jnp.ones((), "float32")


def apply_rule(
    model, step, rule, grads, on, state, chunks=None, squared=None
) -> tuple:
    """The update of `rule` on the variables `on` (positions in
    `step.trainable`) with their gradients: the new `(trainable,
    optimizer_vars)` of `state`, and `iterations + 1`. `chunks`: lists of
    the positions `on` updated by one call each (a layer's variables);
    `squared`: the gradients' summed squares, if known."""
    trainable, optimizer_vars = list(state[0]), list(state[1])
    optimizer = model.optimizer
    for p in step.shared:  # iterations, learning rate: the schedule reads
        step.optimizer_variables[p].assign(optimizer_vars[p])
    lr = keras.ops.convert_to_tensor(optimizer.learning_rate)
    iterations = optimizer.iterations.value
    variables = [step.trainable[i] for i in on]
    path_grads = [grads[i] for i in on]
    scale = _global_scale(rule, path_grads, squared)
    all_slots = update.slots(optimizer, rule, variables)
    decays = update.decays(optimizer, rule, variables)
    slot_at = [[step.at[id(slot)] for slot in slots] for slots in all_slots]
    k = {i: k for k, i in enumerate(on)}
    for chunk in [[i] for i in on] if chunks is None else chunks:
        ks = [k[i] for i in chunk]
        new, new_slots = _chunk_function(rule, tuple(decays[j] for j in ks))(
            [trainable[i] for i in chunk],
            [[optimizer_vars[p] for p in slot_at[j]] for j in ks],
            [path_grads[j] for j in ks],
            lr,
            iterations,
            scale,
        )
        for i, j, value, values in zip(chunk, ks, new, new_slots, strict=True):
            trainable[i] = value
            for p, v in zip(slot_at[j], values, strict=True):
                optimizer_vars[p] = v
    optimizer.iterations.assign(iterations + 1)
    for p in step.shared:
        optimizer_vars[p] = step.optimizer_variables[p].value
    return trainable, optimizer_vars
