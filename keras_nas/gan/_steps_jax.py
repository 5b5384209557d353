"""GAN steps for the JAX backend (stateless, as Keras' JAX trainer).

`train_step(model, state, data)` receives and returns Keras' JAX trainer
state `(trainable, non_trainable, optimizer, metrics)` values. The values
of the generator, the discriminator, the feature extractor and the latent
seed are picked out of the model's lists by variable identity; gradients
come from `jax.value_and_grad` of losses built on each network's
`stateless_call`, and each optimizer updates through `stateless_apply`.
"""

from __future__ import annotations

import jax
import keras
from keras import ops

from keras_nas._jax_state import update_metrics
from keras_nas.gan import losses


def _take(values, variables, subset):
    index = {id(v): i for i, v in enumerate(variables)}
    return [values[index[id(v)]] for v in subset]


def _put(values, variables, subset, new):
    index = {id(v): i for i, v in enumerate(variables)}
    values = list(values)
    for v, value in zip(subset, new, strict=True):
        values[index[id(v)]] = value
    return values


def _latents(model, ntv, n, count):
    """`count` latent batches and the advanced seed state in `ntv`."""
    state = model.seed_generator.state
    (seed,) = _take(ntv, model.non_trainable_variables, [state])
    with keras.StatelessScope(state_mapping=[(state, seed)]) as scope:
        zs = [model.sample_latent(n) for _ in range(count)]
    seed = scope.get_current_value(state)
    return zs, _put(ntv, model.non_trainable_variables, [state], [seed])


def train_step(model, state, data):
    tv, ntv, ov, mv = state
    x = losses.real_images(data)
    n = x.shape[0]
    steps = model.discriminator_steps
    (*z_ds, z_g), ntv = _latents(model, ntv, n, steps + 1)
    g, d = model.generator, model.discriminator
    all_t, all_nt = model.trainable_variables, model.non_trainable_variables
    g_tv = _take(tv, all_t, g.trainable_variables)
    d_tv = _take(tv, all_t, d.trainable_variables)
    g_ntv = _take(ntv, all_nt, g.non_trainable_variables)
    d_ntv = _take(ntv, all_nt, d.non_trainable_variables)
    gov, dov = model.optimizer.split(ov)

    def d_loss_fn(d_tv, d_ntv, g_ntv, z_d):
        fake, g_ntv = g.stateless_call(g_tv, g_ntv, z_d, training=True)
        scores, d_ntv = d.stateless_call(
            d_tv, d_ntv, ops.concatenate([x, fake], 0), training=True
        )
        loss = losses.discriminator_hinge_loss(scores[:n], scores[n:])
        return loss, (d_ntv, g_ntv)

    d_grad_fn = jax.value_and_grad(d_loss_fn, has_aux=True)
    for z_d in z_ds:
        (d_loss, (d_ntv, g_ntv)), grads = d_grad_fn(d_tv, d_ntv, g_ntv, z_d)
        d_tv, dov = model.optimizer.discriminator_optimizer.stateless_apply(
            dov, grads, d_tv
        )

    def g_loss_fn(g_tv, g_ntv, d_ntv):
        fake, g_ntv = g.stateless_call(g_tv, g_ntv, z_g, training=True)
        scores, d_ntv = d.stateless_call(d_tv, d_ntv, fake, training=True)
        return losses.generator_hinge_loss(scores), (g_ntv, d_ntv)

    (g_loss, (g_ntv, d_ntv)), grads = jax.value_and_grad(
        g_loss_fn, has_aux=True
    )(g_tv, g_ntv, d_ntv)
    g_tv, gov = model.optimizer.generator_optimizer.stateless_apply(
        gov, grads, g_tv
    )
    tv = _put(tv, all_t, g.trainable_variables, g_tv)
    tv = _put(tv, all_t, d.trainable_variables, d_tv)
    ntv = _put(ntv, all_nt, g.non_trainable_variables, g_ntv)
    ntv = _put(ntv, all_nt, d.non_trainable_variables, d_ntv)
    logs, mv = update_metrics(
        model,
        mv,
        [(model.d_loss_tracker, (d_loss,)), (model.g_loss_tracker, (g_loss,))],
    )
    return logs, (tv, ntv, gov + dov, mv)


def test_step(model, state, data):
    tv, ntv, mv = state
    x = losses.real_images(data)
    (z,), ntv = _latents(model, ntv, x.shape[0], 1)
    g, fe = model.generator, model.feature_extractor
    all_t, all_nt = model.trainable_variables, model.non_trainable_variables
    fake, _ = g.stateless_call(
        _take(tv, all_t, g.trainable_variables),
        _take(ntv, all_nt, g.non_trainable_variables),
        z,
        training=False,
    )
    fe_ntv = _take(ntv, all_nt, fe.non_trainable_variables)
    real_features, _ = fe.stateless_call([], fe_ntv, x, training=False)
    fake_features, _ = fe.stateless_call([], fe_ntv, fake, training=False)
    logs, mv = update_metrics(
        model, mv, [(model.fid_metric, (real_features, fake_features))]
    )
    return logs, (tv, ntv, mv)
