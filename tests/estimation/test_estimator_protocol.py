"""The estimator contract (issue 14): one `Estimator` protocol checked in
one place, every estimator attaches with `wrap`, and the best epoch is
NaN-safe everywhere (one shared helper)."""

import json
import os
import types

import keras
import keras_tuner
import numpy as np
import pytest
from keras_tuner.src.engine.objective import create_objective

from keras_nas.estimation import (
    Estimator,
    HardwareAware,
    PartialTraining,
    SharedWeights,
    WeightInheritance,
    ZeroCost,
    retrain_top_k,
)
from keras_nas.estimation._protocol import (
    best_epoch,
    best_epoch_metrics,
    check_estimator,
    wrap_tuner,
)
from keras_nas.estimation.partial_training import _result_metrics
from keras_nas.tuners.evolution import AgingEvolution

pytestmark = pytest.mark.usefixtures("eager_functions")

MAX = keras_tuner.Objective("val_accuracy", "max")
MIN = keras_tuner.Objective("val_loss", "min")
NAN = float("nan")


def test_every_estimator_follows_the_protocol_and_has_wrap():
    for cls in (SharedWeights, PartialTraining, WeightInheritance,
                ZeroCost, HardwareAware):
        assert callable(getattr(cls, "estimate", None)), cls
        assert callable(getattr(cls, "wrap", None)), cls
    assert isinstance(PartialTraining(), Estimator)
    assert isinstance(WeightInheritance(), Estimator)
    assert not isinstance(object(), Estimator)


def test_the_contract_is_checked_in_one_place(tmp_path):
    bad = types.SimpleNamespace(estimate=3)
    for attempt in (
        lambda: check_estimator(bad),
        lambda: wrap_tuner(bad, object()),
        lambda: AgingEvolution(
            lambda hp: None, objective="val_accuracy", estimator=bad,
            directory=str(tmp_path)),
    ):
        with pytest.raises(
            ValueError, match=r"`estimate\(tuner, trial.*Received: estimator="
        ):
            attempt()


def test_best_epoch_skips_nan_epochs():
    history = {"val_accuracy": [NAN, 0.5, 0.75, NAN, 0.25],
               "val_loss": [NAN, 2.0, 1.0, np.inf, 3.0]}
    assert best_epoch(history, MAX) == 2
    assert best_epoch(history, MIN) == 2
    assert best_epoch_metrics(history, MAX) == {
        "val_accuracy": 0.75, "val_loss": 1.0}
    # No finite epoch: the last one, whose NaN marks the trial diverged.
    assert best_epoch({"val_accuracy": [NAN, NAN]}, MAX) == 1
    multi = create_objective([MAX, MIN])
    assert best_epoch(history, multi) == 2
    with pytest.raises(ValueError, match="Expected the objective 'acc'"):
        best_epoch(history, keras_tuner.Objective("acc", "max"))


def test_partial_training_and_retrain_top_k_are_nan_safe():
    history = {"val_accuracy": [NAN, 0.5, 0.75], "loss": [NAN, 2.0, 1.5]}
    result = types.SimpleNamespace(history=history)
    assert _result_metrics(result, MAX) == {"val_accuracy": 0.75,
                                            "loss": 1.5}

    class Model:
        def fit(self, *args, **kwargs):
            return types.SimpleNamespace(history=history)

    trial = types.SimpleNamespace(
        trial_id="0", hyperparameters=keras_tuner.HyperParameters(),
        score=0.5)
    tuner = types.SimpleNamespace(
        hypermodel=types.SimpleNamespace(build=lambda hp: Model()),
        oracle=types.SimpleNamespace(
            objective=MAX, get_best_trials=lambda k: [trial]),
    )
    (result,) = retrain_top_k(tuner, 1, None, None, None, epochs=3)
    assert result.score == 0.75  # a plain max() gave NaN


def _build(hp):
    model = keras.Sequential([
        keras.Input((4,)),
        keras.layers.Dense(hp.Choice("units", [2, 3])),
        keras.layers.Dense(2, activation="softmax"),
    ])
    model.compile(
        "sgd", "sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    return model


def test_weight_inheritance_wraps_a_keras_tuner_tuner(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")
    estimator = WeightInheritance(epochs=1, full_epochs=2)
    tuner = keras_tuner.RandomSearch(
        _build, objective="val_accuracy", max_trials=1, seed=0,
        directory=str(tmp_path))
    assert estimator.wrap(tuner) is tuner and tuner.estimator is estimator
    tuner.search(x, y, validation_data=(x, y), batch_size=16, verbose=0)
    (trial,) = tuner.oracle.trials.values()
    # No parent with keras-tuner's oracle: the full schedule.
    assert estimator.reports[trial.trial_id]["trained_epochs"] == 2
    path = os.path.join(tuner.get_trial_dir(trial.trial_id),
                        "inheritance.json")
    with open(path) as f:
        assert json.load(f)["parent"] is None
    assert trial.metrics.get_last_value("trained_epochs") == 2.0
