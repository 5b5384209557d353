"""Tests of the SMASH estimator (`HyperNetworkScores`) in real searches."""

import os

import keras
import numpy as np
import pytest
from _estimation_testing import NB201 as SPACE
from _estimation_testing import evolution, wrapped_random_search

from keras_nas.estimation.hypernetwork_scores import HyperNetworkScores
from keras_nas.supernet.hypernetwork import HyperNetwork


def _data(n, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 8, 8, 1)).astype("float32")
    y = np.digitize(x[:, 2:6, 2:6].mean(axis=(1, 2, 3)), [-0.1, 0.1])
    return x, y.astype("int32")


def test_search_trains_once_saves_and_a_new_search_resumes(tmp_path):
    x, y = _data(64)
    xv, yv = _data(32, seed=1)
    net = HyperNetwork(SPACE, seed=0)
    net.compile(optimizer=keras.optimizers.Adam(1e-2))
    estimator = HyperNetworkScores(net, batch_size=32, train_epochs=1)
    tuner = evolution(
        SPACE,
        tmp_path,
        estimator,
        objective="val_accuracy",
        max_trials=12,
        population_size=4,
        sample_size=2,
        seed=0,
        project_name="smash",
    )
    tuner.search(x, y, validation_data=(xv, yv))
    trials = list(tuner.oracle.trials.values())
    assert len(trials) == 12
    assert all(t.status == "COMPLETED" for t in trials)
    assert net.trained_epochs == 1
    steps = int(net.optimizer.iterations.numpy())
    assert steps == 1  # 64 images, batches of 64.
    best = tuner.oracle.get_best_trials(1)[0]
    expected = net.evaluate_architecture(
        best.hyperparameters.values, xv, yv, batch_size=32
    )
    assert best.score == pytest.approx(expected["accuracy"])
    state = os.path.join(tuner.project_dir, "hypernetwork")
    assert HyperNetwork.has_state(state)

    # A new estimator of the same project (a resumed search), with a new,
    # untrained hypernetwork, loads the trained one instead of training.
    fresh = HyperNetwork(SPACE, seed=0)
    again = HyperNetworkScores(fresh, batch_size=32, train_epochs=1)
    score = again.estimate(tuner, best, x, y, validation_data=(xv, yv))
    assert score["val_accuracy"] == pytest.approx(expected["accuracy"])
    assert fresh.trained_epochs == 1
    assert int(fresh.optimizer.iterations.numpy()) == steps
    for a, b in zip(net.weights, fresh.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())

    # keras-tuner's own RandomSearch, wrapped.
    wrapped = wrapped_random_search(
        again, SPACE, tmp_path, objective="val_accuracy", max_trials=2,
        project_name="random",
    )
    wrapped.search(x, y, validation_data=(xv, yv))
    statuses = [t.status for t in wrapped.oracle.trials.values()]
    assert statuses == ["COMPLETED"] * 2


def test_bad_arguments():
    with pytest.raises(ValueError, match="hypernetwork"):
        HyperNetworkScores(object())
    with pytest.raises(ValueError, match="train_epochs"):
        HyperNetworkScores(HyperNetwork(SPACE, seed=0), train_epochs=-1)
