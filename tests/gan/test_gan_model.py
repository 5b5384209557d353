"""The GAN model: both networks learn in one step, on TensorFlow and JAX."""

import keras
import numpy as np
import pytest

from keras_nas.blocks.gan import build_discriminator, build_generator
from keras_nas.gan import losses
from keras_nas.gan.model import GAN, GanOptimizer, step_module

pytestmark = pytest.mark.usefixtures("eager_functions")


def _extractor(shape=(4, 4, 1), units=3):
    inputs = keras.Input(shape)
    x = keras.layers.Flatten()(inputs)
    return keras.Model(inputs, keras.layers.Dense(units)(x))


def _gan(seed=0, extractor=True):
    keras.utils.set_random_seed(seed)
    g = build_generator((4, 4, 1), [{}, {"skips": [True]}], 4, latent_dim=8)
    d = build_discriminator((4, 4, 1), filters=4)
    return GAN(g, d, _extractor() if extractor else None, seed=seed)


def _images(n=16, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, size=(n, 4, 4, 1)).astype("float32")


def _snapshot(model):
    return [keras.ops.convert_to_numpy(v).copy() for v in model.weights]


def _changed(before, model):
    return [
        not np.allclose(b, keras.ops.convert_to_numpy(v))
        for b, v in zip(before, model.weights, strict=True)
    ]


def test_one_step_updates_both_networks():
    gan = _gan()
    gan.compile()
    g0, d0 = _snapshot(gan.generator), _snapshot(gan.discriminator)
    e0 = _snapshot(gan.feature_extractor)
    history = gan.fit(_images(), epochs=1, batch_size=16, verbose=0)
    assert set(history.history) == {"d_loss", "g_loss"}
    assert all(np.isfinite(v[0]) for v in history.history.values())
    g_changed = _changed(g0, gan.generator)
    assert all(
        c
        for c, v in zip(g_changed, gan.generator.weights, strict=True)
        if v.trainable
    )
    # The score bias gets a zero hinge gradient while all scores lie inside
    # the margin (-1 + 1), so some discriminator weights may stay put.
    assert any(_changed(d0, gan.discriminator))
    assert not any(_changed(e0, gan.feature_extractor))
    assert int(gan.optimizer.generator_optimizer.iterations) == 1
    assert int(gan.optimizer.discriminator_optimizer.iterations) == 1


def test_discriminator_steps():
    gan = _gan()
    gan.discriminator_steps = 3
    gan.compile()
    gan.fit(_images(32), epochs=1, batch_size=16, verbose=0)
    assert int(gan.optimizer.generator_optimizer.iterations) == 2
    assert int(gan.optimizer.discriminator_optimizer.iterations) == 6
    assert GAN.from_config(gan.get_config()).discriminator_steps == 3
    with pytest.raises(ValueError, match="discriminator_steps"):
        GAN(gan.generator, gan.discriminator, discriminator_steps=0)


def test_validation_logs_val_fid():
    gan = _gan()
    gan.compile()
    x = _images(32)
    history = gan.fit(x, validation_data=x, epochs=1, batch_size=16, verbose=0)
    assert history.history["val_fid"][0] > 0
    logs = gan.evaluate(x, batch_size=16, verbose=0, return_dict=True)
    assert set(logs) == {"fid"}


def test_hinge_losses():
    real, fake = np.array([2.0, 0.5]), np.array([-2.0, 0.0])
    # relu(1 - real) = [0, 0.5], relu(1 + fake) = [0, 1].
    d = losses.discriminator_hinge_loss(real, fake)
    assert float(d) == pytest.approx(0.25 + 0.5)
    assert float(losses.generator_hinge_loss(fake)) == pytest.approx(1.0)


def test_errors():
    gan = _gan(extractor=False)
    gan.compile()
    with pytest.raises(ValueError, match="feature_extractor"):
        gan.evaluate(_images(), verbose=0)
    with pytest.raises(ValueError, match="generator"):
        GAN("generator", gan.discriminator)
    with pytest.raises(ValueError, match="GAN.compile"):
        gan.compile(loss="mse", foo=1)
    with pytest.raises(ValueError, match="apply"):
        gan.optimizer.apply([], [])
    with pytest.raises(ValueError, match="backend"):
        original = keras.backend.backend
        keras.backend.backend = lambda: "torch"
        try:
            step_module()
        finally:
            keras.backend.backend = original


def test_gan_keras_round_trip(tmp_path):
    gan = _gan()
    gan.compile()
    gan.fit(_images(), epochs=1, batch_size=16, verbose=0)
    path = str(tmp_path / "gan.keras")
    gan.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded.optimizer, GanOptimizer)
    z = np.random.default_rng(1).normal(size=(3, 8)).astype("float32")
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(loaded(z)),
        keras.ops.convert_to_numpy(gan(z)),
        atol=1e-6,
    )


JAX_CODE = """
import keras, numpy as np
from keras_nas.blocks.gan import build_discriminator, build_generator
from keras_nas.gan.model import GAN
keras.utils.set_random_seed(0)
inputs = keras.Input((4, 4, 1))
ext = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Flatten()(inputs)))
g = build_generator((4, 4, 1), [{}, {"skips": [True]}], 4, latent_dim=8)
gan = GAN(g, build_discriminator((4, 4, 1), filters=4), ext, seed=0,
          discriminator_steps=2)
gan.compile()
x = np.random.default_rng(0).uniform(-1, 1, (32, 4, 4, 1)).astype("float32")
snap = lambda m: [np.array(v) for v in m.trainable_weights]
g0, d0 = snap(gan.generator), snap(gan.discriminator)
h = gan.fit(x, validation_data=x, epochs=1, batch_size=16, verbose=0)
moved = [[not np.allclose(u, np.array(v))
          for u, v in zip(a, m.trainable_weights)]
         for a, m in ((g0, gan.generator), (d0, gan.discriminator))]
# The score bias of D gets a zero hinge gradient while every score lies
# inside the margin (-1 + 1): "any" weight of D, "all" weights of G.
print(keras.backend.backend(), all(moved[0]), any(moved[1]),
      int(gan.optimizer.discriminator_optimizer.iterations),
      int(gan.optimizer.generator_optimizer.iterations),
      np.isfinite(h.history["val_fid"][0]) and h.history["val_fid"][0] > 0)
"""


def test_jax_train_step(run_on_backend):
    out = run_on_backend(JAX_CODE, backend="jax")
    # 2 batches, 2 discriminator steps per generator step.
    assert out.split() == ["jax", "True", "True", "4", "2", "True"]
