"""Learning-curve early stopping and partial training (low fidelity)."""

import gc

import keras
import keras_tuner
import numpy as np
import pytest
from keras_tuner.engine import trial as trial_module

from keras_nas.estimation.early_stopping import (
    LearningCurveStopping,
    MedianStopping,
    median_running_average,
    trial_curve,
)
from keras_nas.estimation.learning_curves import (
    fit_learning_curve,
    probability_to_beat,
)
from keras_nas.estimation.partial_training import PartialTraining
from keras_nas.tuners._base import NasTuner

EPOCHS = 4


@pytest.fixture
def frozen_gc():
    """keras-tuner calls `gc.collect()` per trial; skip the old objects."""
    gc.freeze()
    yield
    gc.unfreeze()


def _trial(trial_id, values, status="COMPLETED", name="val_accuracy"):
    trial = trial_module.Trial(
        keras_tuner.HyperParameters(), trial_id=trial_id, status=status
    )
    trial.metrics.register(name, direction="max")
    for step, value in enumerate(values):
        trial.metrics.update(name, value, step=step)
    trial.score = max(values) if values else None
    return trial


class _FakeTuner:
    """Just what the callbacks read: an oracle with trials."""

    def __init__(self, trials, objective="val_accuracy", direction="max"):
        self.tuner_id = "tuner0"
        self.oracle = type("Oracle", (), {})()
        self.oracle.objective = keras_tuner.Objective(objective, direction)
        self.oracle.trials = {t.trial_id: t for t in trials}
        self.oracle.ongoing_trials = {}
        self.oracle.update_trial = lambda *a, **k: None


# --------------------------------------------------------------------------
# Median stopping rule on synthetic histories (no training).
# --------------------------------------------------------------------------


def test_median_running_average_of_synthetic_curves():
    curves = [
        (np.arange(4.0), np.array([0.2, 0.4, 0.6, 0.8])),
        (np.arange(4.0), np.array([0.4, 0.6, 0.8, 1.0])),
        (np.arange(2.0), np.array([0.1, 0.1])),  # stopped after 2 epochs
    ]
    # Running averages up to step 2: 0.4, 0.6, 0.1 -> median 0.4.
    assert median_running_average(curves, 2) == pytest.approx(0.4)
    # At step 0: 0.2, 0.4, 0.1 -> 0.2.
    assert median_running_average(curves, 0) == pytest.approx(0.2)
    assert median_running_average(curves, 2, min_trials=4) is None
    # Minimized objective: the scale is flipped.
    assert median_running_average(curves, 2, sign=-1.0) == pytest.approx(-0.4)
    # A curve with no step <= the step is left out.
    late = [(np.array([5.0]), np.array([0.9]))] + curves[:2]
    assert median_running_average(late, 1) == pytest.approx(0.4)


def test_median_stopping_decision_on_trial_histories():
    completed = [
        _trial("a", [0.5, 0.7, 0.8, 0.9]),
        _trial("b", [0.6, 0.8, 0.9, 0.95]),
        _trial("c", [0.4, 0.6, 0.7, 0.8]),
        _trial("running", [], status="RUNNING"),
        _trial("failed", [0.99], status="FAILED"),
    ]
    stopping = MedianStopping(_FakeTuner(completed), min_trials=3)
    steps = np.arange(3.0)
    # Median of running averages at step 2: (0.667, 0.767, 0.567) -> 0.667.
    assert stopping.should_stop(steps, np.array([0.3, 0.5, 0.6]))
    assert not stopping.should_stop(steps, np.array([0.3, 0.7, 0.6]))
    assert trial_curve(completed[0], "val_accuracy")[1].tolist() == [
        0.5, 0.7, 0.8, 0.9,
    ]  # fmt: skip
    # Not enough completed trials: never stop.
    few = MedianStopping(_FakeTuner(completed[:2]), min_trials=3)
    assert not few.should_stop(steps, np.array([0.0, 0.0, 0.0]))


def test_median_stopping_minimized_objective():
    trials = []
    for i, curve in enumerate([[1.0, 0.5], [0.9, 0.4], [1.1, 0.6]]):
        trial = trial_module.Trial(
            keras_tuner.HyperParameters(), trial_id=str(i), status="COMPLETED"
        )
        for step, value in enumerate(curve):
            trial.metrics.update("val_loss", value, step=step)
        trials.append(trial)
    stopping = MedianStopping(_FakeTuner(trials, "val_loss", "min"))
    # Median running average at step 1 = 0.75: a best loss of 0.8 is worse.
    assert stopping.should_stop(np.arange(2.0), np.array([1.2, 0.8]))
    assert not stopping.should_stop(np.arange(2.0), np.array([1.2, 0.7]))


# --------------------------------------------------------------------------
# Learning-curve fits.
# --------------------------------------------------------------------------


def test_pow3_fit_recovers_parameters_and_final_value():
    epochs = np.arange(1, 13, dtype="float64")
    c, a, alpha = 0.92, 0.6, 0.8
    curve = c - a * epochs ** (-alpha)
    fits = fit_learning_curve(curve, epochs)
    best = fits[0]
    assert best.family == "pow3"
    assert best.theta[0] == pytest.approx(alpha, rel=1e-3)
    assert best.beta == pytest.approx((c, a), rel=1e-3)
    final = c - a * 100.0 ** (-alpha)
    # Fitted on the first 6 epochs only, pow3 still extrapolates epoch 100.
    early = fit_learning_curve(curve[:6], epochs[:6], families=("pow3",))
    assert early[0].predict([100])[0] == pytest.approx(final, abs=1e-3)
    # The probability of beating a value just above/below the final one.
    assert probability_to_beat(early, epochs[:6], 100, final + 0.02) < 0.01
    assert probability_to_beat(early, epochs[:6], 100, final - 0.02) > 0.99


def test_fit_validates_arguments():
    with pytest.raises(ValueError, match="families"):
        fit_learning_curve([0.1, 0.2, 0.3], families=("nope",))
    with pytest.raises(ValueError, match="same, non-zero length"):
        fit_learning_curve([0.1, 0.2], epochs=[1])
    # Too few points for any 3-parameter family: those are skipped.
    assert {f.family for f in fit_learning_curve([0.1, 0.2, 0.3])} == {"ilog2"}


def test_learning_curve_stopping_decision():
    tuner = _FakeTuner([_trial("best", [0.6, 0.8, 0.9, 0.95])])
    stopping = LearningCurveStopping(tuner, value_range=(0.0, 1.0))
    stopping.set_params({"epochs": 20})
    steps = np.arange(5.0)
    epochs = steps + 1
    plateau = 0.6 - 0.3 * epochs ** (-1.5)  # converges to 0.6 < 0.95
    assert stopping.should_stop(steps, plateau)
    assert stopping.last_probability < 0.05
    rising = 1.0 - 0.5 * epochs ** (-0.5)  # reaches ~0.89 at 20, > 0.95 later
    stopping.set_params({"epochs": 400})
    assert not stopping.should_stop(steps, rising)
    with pytest.raises(ValueError, match="threshold"):
        LearningCurveStopping(tuner, threshold=1.5)


# --------------------------------------------------------------------------
# A real keras-tuner search with scripted good and bad trials.
# --------------------------------------------------------------------------


def _data():
    rng = np.random.default_rng(0)
    n = 96
    y = np.tile([0, 1], n // 2)
    x = rng.normal(size=(n, 4)).astype("float32")
    x[:, 0] = np.where(y == 1, 1.0, -1.0) * (np.abs(x[:, 0]) + 1.0)
    return (x[:64], y[:64]), (x[64:], y[64:])


class _ScriptedModel(keras_tuner.HyperModel):
    """Trials learn (good) or stay at chance, 0.5 (bad), in script order."""

    def __init__(self, script):
        super().__init__()
        self.script = list(script)
        self.kinds = []

    def build(self, hp):
        hp.Int("x", 0, 10**6)
        return keras.Sequential(
            [
                keras.Input((4,)),
                keras.layers.Dense(2, "softmax", kernel_initializer="zeros"),
            ]
        )

    def fit(self, hp, model, *args, **kwargs):
        kind = self.script[len(self.kinds)]
        self.kinds.append(kind)
        rate = 0.1 if kind == "good" else 0.0
        model.compile(
            optimizer=keras.optimizers.Adam(rate),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
            run_eagerly=True,  # tiny model: no tracing per trial
        )
        return model.fit(*args, **kwargs)


def _search(directory, hypermodel, max_trials, overwrite, tuner_class=None):
    (x, y), val = _data()
    tuner = (tuner_class or keras_tuner.RandomSearch)(
        hypermodel,
        objective="val_accuracy",
        max_trials=max_trials,
        seed=1,
        directory=directory,
        project_name="p",
        overwrite=overwrite,
    )
    stopping = MedianStopping(tuner, min_epochs=2, min_trials=3)
    tuner.search(
        x,
        y,
        validation_data=val,
        epochs=EPOCHS,
        batch_size=16,
        verbose=0,
        callbacks=[stopping],
    )
    return tuner, stopping


def test_random_search_stops_bad_trials_and_resumes(tmp_path, frozen_gc):
    script = ["good", "bad", "good", "bad", "bad", "good"]
    hypermodel = _ScriptedModel(script)
    tuner, stopping = _search(tmp_path, hypermodel, 4, overwrite=True)
    trials = tuner.oracle.get_best_trials(10)
    assert len(trials) == 4
    assert hypermodel.kinds == script[:4]
    by_order = sorted(trials, key=lambda t: int(t.trial_id))
    lengths = [len(trial_curve(t, "val_accuracy")[0]) for t in by_order]
    # The bad trial 1 runs in full (only one completed trial before it);
    # bad trial 3 (three completed before) is stopped after min_epochs.
    assert lengths == [EPOCHS, EPOCHS, EPOCHS, 2]
    stopped = by_order[3]
    assert stopping.stopped_trials == {stopped.trial_id: 2}
    assert stopped.status == "COMPLETED"
    assert stopped.score == pytest.approx(0.5)
    assert "Stopped early" in stopped.message
    assert trials[0].score == pytest.approx(1.0)
    assert tuner.get_best_models(1)[0] is not None
    # Other metrics are recorded per epoch too.
    assert len(trial_curve(by_order[0], "loss")[0]) == EPOCHS

    # Resume: the curves come back from disk; the next bad trial is stopped.
    resumed, stopping = _search(tmp_path, hypermodel, 6, overwrite=False)
    assert hypermodel.kinds == script
    trials = sorted(
        resumed.oracle.trials.values(), key=lambda t: int(t.trial_id)
    )
    assert len(trials) == 6
    lengths = [len(trial_curve(t, "val_accuracy")[0]) for t in trials]
    assert lengths == [EPOCHS] * 3 + [2, 2, EPOCHS]
    assert list(stopping.stopped_trials) == [trials[4].trial_id]
    assert all(t.status == "COMPLETED" for t in trials)


def test_keras_nas_tuner_with_median_stopping(tmp_path, frozen_gc):
    from keras_nas.tuners import AgingEvolution

    script = ["good", "good", "good", "bad"]
    hypermodel = _ScriptedModel(script)
    tuner, stopping = _search(tmp_path, hypermodel, 4, True, AgingEvolution)
    trials = sorted(tuner.oracle.trials.values(), key=lambda t: int(t.trial_id))
    lengths = [len(trial_curve(t, "val_accuracy")[0]) for t in trials]
    assert hypermodel.kinds == script
    assert lengths == [EPOCHS, EPOCHS, EPOCHS, 2]
    assert list(stopping.stopped_trials) == [trials[3].trial_id]
    assert [t.status for t in trials] == ["COMPLETED"] * 4
    assert trials[3].score == pytest.approx(0.5)


def test_multi_objective_is_rejected():
    tuner = _FakeTuner([])
    # keras-tuner's MultiObjective: a "min" objective holding `objectives`.
    tuner.oracle.objective = type(
        "MultiObjective",
        (),
        {"name": "multi_objective", "direction": "min", "objectives": []},
    )()
    with pytest.raises(ValueError, match="single objective"):
        MedianStopping(tuner)


# --------------------------------------------------------------------------
# Partial training as an estimator.
# --------------------------------------------------------------------------


class _CountEpochs(keras.callbacks.Callback):
    seen = []

    def on_train_begin(self, logs=None):
        _CountEpochs.seen.append(dict(self.params))


def test_partial_training_reports_low_fidelity_metrics(tmp_path, frozen_gc):
    (x, y), val = _data()
    hypermodel = _ScriptedModel(["good"] * 2)
    oracle = keras_tuner.oracles.RandomSearchOracle(
        objective="val_accuracy", max_trials=2, seed=0
    )
    tuner = NasTuner(
        oracle,
        hypermodel,
        estimator=PartialTraining(epochs=1, fraction=0.5),
        directory=tmp_path,
        project_name="p",
    )
    _CountEpochs.seen = []
    tuner.search(
        x,
        y,
        validation_data=val,
        epochs=50,
        batch_size=8,
        verbose=0,
        callbacks=[_CountEpochs(), MedianStopping(tuner)],
    )
    # One epoch on 32 of the 64 examples: 4 steps of 8, not 50 epochs.
    assert [(p["epochs"], p["steps"]) for p in _CountEpochs.seen] == [
        (1, 4),
        (1, 4),
    ]
    for trial in oracle.trials.values():
        assert trial.status == "COMPLETED"
        assert 0.0 <= trial.score <= 1.0
        assert trial.metrics.exists("val_loss")
        # Composes with the stopping callbacks: the curve is recorded.
        assert len(trial_curve(trial, "val_accuracy")[0]) == 1
    assert tuner.get_best_models(1)[0] is not None


def test_partial_training_validates_arguments():
    with pytest.raises(ValueError, match="fraction"):
        PartialTraining(fraction=0.0)
    with pytest.raises(ValueError, match="epochs"):
        PartialTraining(epochs=0)
    args, kwargs = PartialTraining(2, 0.25, seed=1).subset(
        (np.arange(100), np.arange(100)), {"validation_split": 0.2}
    )
    assert len(args[0]) == 20 and np.all(args[0] == args[1])
    assert args[0].max() < 80 and kwargs["epochs"] == 2
    assert len(kwargs["validation_data"][0]) == 20
    assert "validation_split" not in kwargs
