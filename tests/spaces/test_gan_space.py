"""The AutoGAN generator search space on digits, scored by val_fid."""

import keras
import keras_tuner
import numpy as np
import pytest

from keras_nas.data import load_digits_arrays
from keras_nas.gan.fid import FrechetDistance, train_feature_extractor
from keras_nas.gan.model import GAN
from keras_nas.spaces.gan_space import (
    FID_OBJECTIVE,
    GanSearchSpace,
    gan_cells_from_hyperparameters,
)
from keras_nas.tuners import AgingEvolution


@pytest.fixture(scope="module")
def digits():
    x, y = load_digits_arrays()
    x = 2.0 * x - 1.0  # the generator's tanh range
    rng = np.random.default_rng(0)
    order = rng.permutation(len(x))
    train, val = order[:1200], order[1200:1456]
    extractor = train_feature_extractor(x[train], y[train], epochs=4, seed=0)
    return x[train], x[val], extractor


def _tiny_extractor():
    inputs = keras.Input((8, 8, 1))
    features = keras.layers.Dense(4)(keras.layers.Flatten()(inputs))
    return keras.Model(inputs, features)


def test_declares_autogan_choices_per_cell():
    space = GanSearchSpace(_tiny_extractor(), num_cells=(1, 2, 3))
    hp = keras_tuner.HyperParameters()
    cells = space.declare_hyperparameters(hp)
    names = {p.name for p in hp.space}
    for i in range(3):
        for key in ("upsample", "norm", "conv", "shortcut"):
            assert f"cell{i}/{key}" in names
    assert {"cell1/skip0", "cell2/skip0", "cell2/skip1"} <= names
    assert "cell0/skip0" not in names
    assert hp.values["num_cells"] == 1 and len(cells) == 1
    choices = {p.name: list(getattr(p, "values", [])) for p in hp.space}
    assert choices["cell0/upsample"] == ["nearest", "bilinear", "deconv"]
    assert choices["cell0/norm"] == ["batch", "instance", "none"]
    assert choices["cell0/conv"] == ["post", "pre"]
    hp.values["num_cells"] = 2
    assert not hp.is_active("cell2/skip1") and hp.is_active("cell1/skip0")


def test_build_follows_the_hyperparameters():
    space = GanSearchSpace(
        _tiny_extractor(), filters=(4, 8), latent_dim=8, discriminator_steps=5
    )
    hp = keras_tuner.HyperParameters()
    space.declare_hyperparameters(hp)
    values = {
        "filters": 8,
        "cell0/upsample": "deconv",
        "cell1/norm": "instance",
        "cell2/conv": "pre",
        "cell2/shortcut": False,
        "cell2/skip0": True,
    }
    hp.values.update(values)
    model = space.build(hp)
    assert isinstance(model, GAN) and model.compiled
    assert model.discriminator_steps == 5
    g = model.generator
    assert g.output.shape[1:] == (8, 8, 1)
    assert g.get_layer("cell0").upsample == "deconv"
    assert g.get_layer("cell1").norm == "instance"
    cell2 = g.get_layer("cell2")
    assert (cell2.conv_type, cell2.shortcut) == ("pre", False)
    assert cell2.skips == (True, False)
    assert g.get_layer("cell0").filters == 8
    # The extractor is copied (same weights, own variables), frozen.
    assert model.feature_extractor is not space.feature_extractor
    assert not model.feature_extractor.trainable_weights
    cells = gan_cells_from_hyperparameters(hp)
    assert cells[2]["skips"] == [True, False]


def test_rejects_bad_arguments():
    with pytest.raises(ValueError, match="num_cells"):
        GanSearchSpace(_tiny_extractor(), num_cells=4)
    with pytest.raises(ValueError, match="feature_extractor"):
        GanSearchSpace("inception")
    with pytest.raises(ValueError, match="input shape"):
        GanSearchSpace(_tiny_extractor(), image_shape=(16, 16, 1))
    with pytest.raises(ValueError, match="norms"):
        GanSearchSpace(_tiny_extractor(), norms=("layer",))
    with pytest.raises(ValueError, match="num_cells"):
        gan_cells_from_hyperparameters({})


def _fid(extractor, a, b):
    metric = FrechetDistance(int(extractor.output_shape[-1]))
    metric.update_state(extractor(a), extractor(b))
    return float(metric.result())


def test_random_search_scores_val_fid(digits, tmp_path):
    x_train, x_val, extractor = digits
    real = _fid(extractor, x_val, x_train[: len(x_val)])
    rng = np.random.default_rng(0)
    noise = rng.uniform(-1, 1, size=x_val.shape).astype("float32")
    noise_fid = _fid(extractor, x_val, noise)
    assert real < 0.1 * noise_fid

    keras.utils.set_random_seed(0)  # the same weights whatever ran before
    space = GanSearchSpace(
        extractor, num_cells=(2, 3), filters=(8, 16), latent_dim=16, seed=0
    )
    tuner = keras_tuner.RandomSearch(
        space,
        objective=FID_OBJECTIVE,
        max_trials=2,
        seed=3,
        directory=str(tmp_path),
    )
    tuner.search(
        x_train[:512],
        validation_data=x_val,
        epochs=3,
        batch_size=64,
        verbose=0,
    )
    trials = list(tuner.oracle.trials.values())
    assert len(trials) == 2
    scores = [t.score for t in trials]
    assert all(np.isfinite(s) and s > 0 for s in scores)
    # 24 steps already beat uniform noise by far (deterministic here:
    # val_fid 11.7 and 10.7 against 27.8 for noise, 0.16 real vs real).
    assert min(scores) < 0.5 * noise_fid
    best = tuner.get_best_models(1)[0]
    images = best.generate(4)
    assert images.shape == (4, 8, 8, 1)
    assert np.all(np.abs(images) <= 1.0)


TUNERS = {
    "evolution": lambda space, d: AgingEvolution(
        space,
        objective=FID_OBJECTIVE,
        max_trials=3,
        population_size=2,
        seed=0,
        directory=d,
    ),
    "hyperband": lambda space, d: keras_tuner.Hyperband(
        space,
        objective=FID_OBJECTIVE,
        max_epochs=1,
        hyperband_iterations=1,
        seed=0,
        directory=d,
    ),
}


@pytest.mark.parametrize("name", sorted(TUNERS))
def test_other_tuners_run_on_the_space(name, tmp_path):
    # One training step per trial: only that every strategy can sample,
    # build, fit and score the space's (conditional, boolean) choices.
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, size=(32, 8, 8, 1)).astype("float32")
    space = GanSearchSpace(
        _tiny_extractor(), num_cells=(1, 2), filters=(4,), latent_dim=4
    )
    tuner = TUNERS[name](space, str(tmp_path))
    tuner.search(x, validation_data=x, epochs=1, batch_size=32, verbose=0)
    scores = [t.score for t in tuner.oracle.trials.values()]
    assert scores and all(np.isfinite(s) for s in scores)
