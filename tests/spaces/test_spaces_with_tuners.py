"""keras-tuner's built-in tuners run unchanged on every search space."""

import warnings

import keras_tuner
import numpy as np
import pytest
from sklearn.datasets import load_digits

from keras_nas.blocks.genotypes import Genotype, NasBench201Genotype
from keras_nas.spaces import (
    CellSearchSpace,
    ChainSearchSpace,
    NasBench201SearchSpace,
)

SPACES = {
    "cell": lambda: CellSearchSpace(
        (8, 8, 1), 10, num_nodes=1, num_cells=(1, 2), filters=4
    ),
    "chain": lambda: ChainSearchSpace(
        (8, 8, 1),
        10,
        max_layers=2,
        layer_types=("conv", "pool", "dense"),
        filters=(4, 8),
        units=(8,),
        kernel_sizes=(3,),
        strides=(1, 2),
        activations=("relu",),
        dropout_rates=(0.0,),
    ),
    "nb201": lambda: NasBench201SearchSpace(
        (8, 8, 1), 10, filters=4, cells_per_stage=1
    ),
}

OBJ = "val_accuracy"
TUNERS = {
    "random": lambda space, d: keras_tuner.RandomSearch(
        space, max_trials=2, seed=0, directory=d, objective=OBJ
    ),
    "bayesian": lambda space, d: keras_tuner.BayesianOptimization(
        space,
        max_trials=2,
        num_initial_points=1,
        seed=0,
        directory=d,
        objective=OBJ,
    ),
    "hyperband": lambda space, d: keras_tuner.Hyperband(
        space,
        max_epochs=1,
        hyperband_iterations=2,
        seed=0,
        directory=d,
        objective=OBJ,
    ),
    "grid": lambda space, d: keras_tuner.GridSearch(
        space, max_trials=2, seed=0, directory=d, objective=OBJ
    ),
}


@pytest.fixture(scope="module")
def digits():
    data = load_digits()
    x = (data.images[:80] / 16.0).reshape(-1, 8, 8, 1).astype("float32")
    return x, data.target[:80]


@pytest.mark.parametrize("tuner_name", sorted(TUNERS))
@pytest.mark.parametrize("space_name", sorted(SPACES))
def test_tuner_runs_on_space(space_name, tuner_name, digits, tmp_path):
    x, y = digits
    space = SPACES[space_name]()
    tuner = TUNERS[tuner_name](space, str(tmp_path))
    tuner.search(
        x, y, epochs=1, batch_size=64, validation_split=0.25, verbose=0
    )
    trials = tuner.oracle.get_best_trials(num_trials=10)
    assert len(trials) == 2
    for trial in trials:
        assert np.isfinite(trial.score)
        assert 0.0 <= trial.score <= 1.0
    best = tuner.get_best_hyperparameters()[0]
    if space_name == "cell":
        assert isinstance(space.genotype(best), Genotype)
    elif space_name == "nb201":
        assert isinstance(space.genotype(best), NasBench201Genotype)
    with warnings.catch_warnings():  # the optimizer state loads too
        warnings.filterwarnings("error", message="Skipping variable loading")
        model = tuner.get_best_models()[0]
    assert int(model.optimizer.iterations) > 0
    assert model.predict(x[:4], verbose=0).shape == (4, 10)



@pytest.mark.parametrize("space_name", sorted(SPACES))
def test_training_state_waits_for_the_first_fit(space_name, digits):
    """keras-tuner builds a space many times only to discover its
    conditional hyperparameters: those builds create no optimizer or
    metric variables; the first `fit` (or `evaluate`) of a model does."""
    space = SPACES[space_name]()
    model = space.build(keras_tuner.HyperParameters())
    assert not model.optimizer.built
    x, y = digits
    model.evaluate(x[:8], y[:8], verbose=0)
    assert model.optimizer.built and model.optimizer.variables
    assert model.metrics_names


def test_tuner_construction_builds_no_training_state(tmp_path, monkeypatch):
    from keras_nas.spaces import _common

    calls = []
    build = _common.build_training_state
    monkeypatch.setattr(
        _common, "build_training_state", lambda m: calls.append(1) or build(m)
    )
    tuner = keras_tuner.RandomSearch(
        SPACES["chain"](), objective="val_accuracy", max_trials=1,
        directory=str(tmp_path),
    )  # fmt: skip
    assert len(tuner.oracle.get_space().space) > 5  # all conditions found
    assert calls == []


@pytest.mark.parametrize("auxiliary", [False, True])
def test_first_fit_traces_the_train_step_once(auxiliary, digits):
    """The model's optimizer and metrics are built before `fit` traces the
    step, so `tf.function` does not trace it a second time to create them
    (each trial's first epoch: about a third less CPU time); with the
    space's `fit` (keras-tuner's path) and with the model's own."""
    import tensorflow as tf

    # Traced, as users run it (the autouse fixture of this folder restores
    # its eager setting afterwards).
    tf.config.run_functions_eagerly(False)
    if auxiliary:  # two outputs, a loss each: the labels are a dict
        space = CellSearchSpace(
            (8, 8, 1), 10, num_nodes=1, num_cells=3, filters=4, auxiliary=True
        )
    else:
        space = SPACES["chain"]()
    hp = keras_tuner.HyperParameters()
    model = space.build(hp)
    traces = []
    step = model.train_step
    model.train_step = lambda data: traces.append(1) or step(data)
    x, y = digits
    if auxiliary:
        history = space.fit(hp, model, x, y, batch_size=40, verbose=0)
    else:
        history = model.fit(x, y, batch_size=40, epochs=1, verbose=0)
    assert len(traces) == 1
    assert np.isfinite(history.history["loss"]).all()
    assert "accuracy" in history.history
