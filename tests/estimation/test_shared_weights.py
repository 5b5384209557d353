"""Tests of the shared-weights estimator and the top-k retraining step."""

import time

import keras
import keras_tuner
import numpy as np
import pytest
from _estimation_testing import NB201 as SPACE
from _estimation_testing import evolution, wrapped_random_search

from keras_nas.estimation.shared_weights import SharedWeights, retrain_top_k
from keras_nas.supernet.one_shot import OneShotSupernet


def _data(n, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 8, 8, 1)).astype("float32")
    y = np.digitize(x[:, 2:6, 2:6].mean(axis=(1, 2, 3)), [-0.1, 0.1])
    return x, y.astype("int32")


@pytest.fixture(scope="module")
def trained():
    x, y = _data(128)
    net = OneShotSupernet(SPACE, seed=0)
    # Eager step: 8 steps would not repay tracing the compiled one.
    net.compile(
        optimizer=keras.optimizers.SGD(0.05, momentum=0.9), step="eager"
    )
    estimator = SharedWeights(net, bn_recalibration_batches=1, batch_size=64)
    estimator.train(x, y, epochs=2, batch_size=32)
    return estimator, x, y


def test_aging_evolution_with_shared_weights_runs_many_trials(
    trained, tmp_path
):
    estimator, x, y = trained
    xv, yv = _data(48, seed=1)
    tuner = evolution(
        SPACE,
        tmp_path,
        estimator,
        objective="val_accuracy",
        max_trials=60,
        population_size=10,
        sample_size=3,
        seed=0,
        project_name="ae",
    )
    start = time.perf_counter()
    tuner.search(x, y, validation_data=(xv, yv))
    elapsed = time.perf_counter() - start
    trials = tuner.oracle.trials.values()
    assert len(trials) == 60
    assert all(t.status == "COMPLETED" for t in trials)
    best = tuner.oracle.get_best_trials(1)[0]
    expected = estimator.supernet.evaluate_path(
        best.hyperparameters.values,
        xv,
        yv,
        bn_recalibration_batches=1,
        train_data=x,
        batch_size=64,
    )
    assert best.score == pytest.approx(expected["accuracy"])
    print(f"60 shared-weight trials in {elapsed:.1f} s")


def test_wrap_keras_tuner_random_search_and_retrain_top_k(trained, tmp_path):
    estimator, x, y = trained
    xv, yv = _data(48, seed=1)
    tuner = wrapped_random_search(
        estimator,
        SPACE,
        tmp_path,
        objective="val_accuracy",
        max_trials=8,
        seed=1,
        project_name="rs",
    )
    tuner.search(x, y, validation_split=0.25)
    assert len(tuner.oracle.trials) == 8
    scores = [t.score for t in tuner.oracle.trials.values()]
    assert all(0.0 <= s <= 1.0 for s in scores)
    results = retrain_top_k(tuner, 2, x, y, (xv, yv), epochs=1, batch_size=64)
    assert len(results) == 2
    assert results[0].score >= results[1].score
    assert isinstance(results[0].model, keras.Model)
    top = {t.trial_id for t in tuner.oracle.get_best_trials(2)}
    assert {r.trial_id for r in results} == top
    with pytest.raises(ValueError, match="k"):
        retrain_top_k(tuner, 0, x, y, (xv, yv), epochs=1)


def test_lazy_training_and_cache(tmp_path):
    x, y = _data(64)
    net = OneShotSupernet(SPACE, seed=2)
    net.compile(
        optimizer=keras.optimizers.SGD(0.05, momentum=0.9), step="eager"
    )
    estimator = SharedWeights(net, bn_recalibration_batches=0, train_epochs=1)

    class Trial:
        def __init__(self, values):
            self.hyperparameters = keras_tuner.HyperParameters()
            self.hyperparameters.values = values

    values = net.sample_values()
    first = estimator.estimate(
        None, Trial(values), x, y, validation_data=(x[:16], y[:16])
    )
    assert estimator.trained and net.optimizer.iterations.numpy() > 0
    again = estimator.estimate(
        None, Trial(values), x, y, validation_data=(x[:16], y[:16])
    )
    assert again == first and estimator.num_estimates == 1
    with pytest.raises(ValueError, match="validation_data"):
        estimator.estimate(None, Trial(net.sample_values()), x, y)
    with pytest.raises(ValueError, match="supernet"):
        SharedWeights(object())
