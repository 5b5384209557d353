"""The GAN losses and batch unpacking shared by the model and its steps.

The hinge loss of AutoGAN (Gong et al., ICCV 2019; from Lim & Ye,
"Geometric GAN", 2017). `keras_nas.gan.model` and the per-backend step
modules (`_steps_tensorflow.py`, `_steps_jax.py`) import them from here.
"""

from __future__ import annotations

import keras
from keras import ops

__all__ = ["discriminator_hinge_loss", "generator_hinge_loss", "real_images"]


def discriminator_hinge_loss(real_scores, fake_scores):
    """`mean(relu(1 - D(x))) + mean(relu(1 + D(G(z))))`."""
    return ops.mean(ops.relu(1.0 - real_scores)) + ops.mean(
        ops.relu(1.0 + fake_scores)
    )


def generator_hinge_loss(fake_scores):
    """`-mean(D(G(z)))`."""
    return -ops.mean(fake_scores)


def real_images(data):
    """The images of a batch `x`, `(x,)`, `(x, y)` or `(x, y, w)`."""
    x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
    return x
