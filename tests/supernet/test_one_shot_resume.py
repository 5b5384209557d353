"""Training of a `OneShotSupernet` resumes exactly from a saved file.

The compiled step draws its paths from a seeded `SeedGenerator`, whose
state Keras does not save by itself, the eager step from a NumPy generator;
the supernet saves both with its variables, and a `.keras` file also
restores how it was compiled (so the optimizer's state is loaded too).
"""

import textwrap

import keras
import numpy as np
from _one_shot_testing import TINY, data

from keras_nas.supernet.one_shot import OneShotSupernet


def _optimizer():
    return keras.optimizers.SGD(0.1, momentum=0.9, weight_decay=1e-3)


def _train(net, steps):
    """Trains `steps` batches (one batch an epoch); returns their paths."""
    x, y = data(32)
    paths = []
    record = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: paths.append(net.last_path)
    )
    net.fit(
        x,
        y,
        epochs=steps,
        batch_size=32,
        shuffle=False,
        verbose=0,
        callbacks=[record],
    )
    return paths


def _state(net):
    return [
        np.array(v.numpy()) for v in net.variables + net.optimizer.variables
    ]


def test_training_resumed_from_a_file_continues_the_path_sequence(tmp_path):
    """k steps, save, load, k more steps == 2k steps without interruption:
    the same paths, weights, batch-norm statistics and optimizer slots."""
    net = OneShotSupernet(TINY, seed=0)
    net.compile(optimizer=_optimizer())
    first = _train(net, 2)
    net.save(tmp_path / "supernet.keras")
    net.save_weights(tmp_path / "supernet.weights.h5")
    saved = _state(net)
    uninterrupted = _train(net, 2)
    # A fresh supernet with the same seed would draw `first` again.
    assert uninterrupted != first

    clone = keras.saving.load_model(tmp_path / "supernet.keras")
    assert clone._step == "auto" and clone.optimizer is not None
    resumed = _train(clone, 2)
    assert clone._train_mode == "compiled"
    assert resumed == uninterrupted
    for a, b in zip(_state(clone), _state(net), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)

    # A weights file holds the same state (sampler and optimizer included).
    other = OneShotSupernet(TINY, seed=0)
    other.compile(optimizer=_optimizer())
    other.load_weights(tmp_path / "supernet.weights.h5")
    for a, b in zip(_state(other), saved, strict=True):
        np.testing.assert_array_equal(a, b)


def test_eager_training_resumes_too(tmp_path):
    """The eager step's paths (NumPy generator) continue after a load."""
    net = OneShotSupernet(TINY, seed=0)
    net.compile(optimizer=_optimizer(), step="eager")
    first = _train(net, 2)
    net.save(tmp_path / "eager.keras")
    uninterrupted = _train(net, 2)
    assert uninterrupted != first
    clone = keras.saving.load_model(tmp_path / "eager.keras")
    assert clone._step == "eager"
    assert _train(clone, 2) == uninterrupted
    for a, b in zip(_state(clone), _state(net), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_files_without_the_sampler_state_still_load():
    """Files written before the sampler states were saved: the variables
    load, the samplers keep their seeded initial states."""
    net = OneShotSupernet(TINY, seed=0)
    net._path_seed.state.assign(np.asarray([0, 7], dtype="uint32"))
    net.sample_values()
    store = {}
    net.save_own_variables(store)
    store.pop("path_seed_state")
    store.pop("path_rng_state")
    other = OneShotSupernet(TINY, seed=0)
    initial = other._path_seed.state.numpy().copy()
    rng = other._rng.bit_generator.state
    other.load_own_variables(store)
    np.testing.assert_array_equal(other._path_seed.state.numpy(), initial)
    assert other._rng.bit_generator.state == rng
    np.testing.assert_array_equal(
        other._last_indices.numpy(), net._last_indices.numpy()
    )


def test_jax_saves_the_sampler_state(run_on_backend, tmp_path):
    """On JAX the sampler state lives in the jitted step's state; after
    `fit` it is in the file too (one jitted step: the TensorFlow test above
    checks the resumed training itself)."""
    code = textwrap.dedent(
        f"""
        import keras, numpy as np
        assert keras.backend.backend() == "jax"
        from keras_nas.spaces import CellSearchSpace
        from keras_nas.supernet.one_shot import OneShotSupernet
        space = CellSearchSpace(
            input_shape=(8, 8, 1), num_classes=4, num_nodes=1, num_cells=3,
            ops=("none", "skip_connect", "dil_conv_3x3"), filters=4)
        rng = np.random.default_rng(0)
        x = rng.normal(size=(32, 8, 8, 1)).astype("float32")
        y = rng.integers(0, 4, size=32).astype("int32")
        net = OneShotSupernet(space, seed=0)
        net.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9))
        net.fit(x, y, epochs=2, batch_size=32, shuffle=False, verbose=0)
        assert net._train_mode == "compiled"
        assert np.asarray(net._path_seed.state.value).tolist() != [0, 0]
        file = {str(tmp_path / "jax.keras")!r}
        net.save(file)
        clone = keras.saving.load_model(file)
        pairs = zip(clone.variables + clone.optimizer.variables,
                    net.variables + net.optimizer.variables, strict=True)
        for a, b in pairs:
            np.testing.assert_array_equal(
                np.asarray(a.value), np.asarray(b.value), err_msg=b.path)
        print("JAX_OK")
        """
    )
    assert "JAX_OK" in run_on_backend(code, "jax", timeout=600)
