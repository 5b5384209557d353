"""GAN steps for the TensorFlow backend (one GradientTape per network).

Under a `tf.distribute` strategy the gradients are averaged over the
replicas (`keras_nas._distribute_tensorflow`), and each replica takes its
share of latent vectors drawn for the global batch from the mirrored seed,
so that N replicas draw what one device draws. Batch norm keeps per-replica
statistics, as in plain Keras models.
"""

from __future__ import annotations

import tensorflow as tf
from keras import ops

from keras_nas import _distribute_tensorflow as distribute
from keras_nas.gan import losses


def _gradients(loss_fn, z, variables):
    with tf.GradientTape() as tape:
        loss = loss_fn(z)
    grads = tape.gradient(
        loss, variables, unconnected_gradients=tf.UnconnectedGradients.ZERO
    )
    return loss, distribute.mean_gradients(grads)


def _latent(model, n):
    """This replica's `n` latent vectors of the global batch's draw."""
    draw = model.sample_latent(n * distribute.num_replicas())
    return distribute.replica_share(draw, n)


def train_step(model, data):
    x = losses.real_images(data)
    n = ops.shape(x)[0]
    generator, discriminator = model.generator, model.discriminator

    def d_loss_fn(z_d):
        fake = generator(z_d, training=True)
        scores = discriminator(ops.concatenate([x, fake], 0), training=True)
        return losses.discriminator_hinge_loss(scores[:n], scores[n:])

    def g_loss_fn(z_g):
        fake = generator(z_g, training=True)
        return losses.generator_hinge_loss(
            discriminator(fake, training=True)
        )

    pair = model.optimizer
    d_vars = discriminator.trainable_variables
    for _ in range(model.discriminator_steps):
        d_loss, grads = _gradients(d_loss_fn, _latent(model, n), d_vars)
        distribute.apply(pair.discriminator_optimizer, grads, d_vars)
    g_vars = generator.trainable_variables
    g_loss, grads = _gradients(g_loss_fn, _latent(model, n), g_vars)
    distribute.apply(pair.generator_optimizer, grads, g_vars)
    model.d_loss_tracker.update_state(d_loss)
    model.g_loss_tracker.update_state(g_loss)
    return {
        "d_loss": model.d_loss_tracker.result(),
        "g_loss": model.g_loss_tracker.result(),
    }


def test_step(model, data):
    x = losses.real_images(data)
    fake = model.generator(model.sample_latent(ops.shape(x)[0]), training=False)
    extractor = model.feature_extractor
    model.fid_metric.update_state(
        extractor(x, training=False), extractor(fake, training=False)
    )
    return {"fid": model.fid_metric.result()}
