"""Bad tuner arguments fail at construction; bad trial results fail clearly.

- `max_trials` and `objective` are checked when a tuner is built.
- An objective the model never reports stops the search at the first
  trial, naming the metrics that exist.
- A diverged trial (NaN or infinite score or loss) never ranks as best;
  when every trial diverged, `get_best_models()` says so.
"""

import math

import keras_tuner
import numpy as np
import pytest
from _oracle_testing import build_tiny_model, tiny_digits_tuner

from keras_nas.tuners import (
    AgingEvolution,
    ArchitectureBayesianOptimization,
    Bananas,
    Darts,
    Enas,
    EnasOracle,
    LocalSearch,
    MonteCarloTreeSearch,
    Reinforce,
)

TUNERS = [
    AgingEvolution,
    MonteCarloTreeSearch,
    Reinforce,
    ArchitectureBayesianOptimization,
    Bananas,
    LocalSearch,
]


@pytest.mark.parametrize("tuner_cls", TUNERS)
@pytest.mark.parametrize(
    "kwargs, received",
    [
        ({"max_trials": 0}, "max_trials=0"),
        ({"max_trials": -5}, "max_trials=-5"),
        ({"max_trials": "10"}, "max_trials='10'"),
        ({"max_trials": 2.0}, "max_trials=2.0"),
        ({"objective": 42}, "objective=42"),
        ({"objective": []}, r"objective=\[\]"),
    ],
)
def test_bad_arguments_fail_at_construction(
    tuner_cls, kwargs, received, tmp_path
):
    kwargs = {"objective": "val_accuracy", "max_trials": 3, **kwargs}
    with pytest.raises(ValueError, match=f"Received: {received}$"):
        tuner_cls(build_tiny_model, directory=str(tmp_path), **kwargs)
    assert not list(tmp_path.iterdir())  # nothing written


def test_one_shot_tuners_check_their_objective_and_max_trials(tmp_path):
    with pytest.raises(ValueError, match="Received: max_trials=0"):
        EnasOracle(max_trials=0)
    with pytest.raises(ValueError, match="Received: objective=42"):
        EnasOracle(objective=42)
    # Their metrics are fixed: another objective can never be reported.
    for cls, args in [(Darts, ((8, 8, 1), 10)), (Enas, ())]:
        with pytest.raises(
            ValueError, match="reports: .*Received: objective='val_auc'"
        ):
            cls(*args, objective="val_auc", directory=str(tmp_path))


@pytest.mark.usefixtures("eager_functions")  # 1 epoch: tracing costs more
def test_unreported_objective_stops_at_the_first_trial(tmp_path, digits):
    tuner = tiny_digits_tuner(AgingEvolution, tmp_path)
    tuner.oracle.objective = keras_tuner.Objective("val_auc", "max")
    x, y = digits
    with pytest.raises(ValueError) as info:
        tuner.search(x, y, epochs=1, validation_split=0.3, verbose=0)
    message = str(info.value)
    assert "Trial 0 did not report the objective 'val_auc'" in message
    assert "['accuracy', 'loss', 'val_accuracy', 'val_loss']" in message
    assert len(tuner.oracle.trials) == 1


@pytest.mark.usefixtures("eager_functions")  # 1 epoch: tracing costs more
def test_all_diverged_search_has_no_best_model(tmp_path, digits):
    x, y = digits
    x = x.copy()
    x[::50, 0, 0, 0] = np.nan  # a NaN input: every weight becomes NaN
    tuner = tiny_digits_tuner(AgingEvolution, tmp_path, max_trials=2)
    tuner.search(x, y, epochs=1, validation_split=0.3, verbose=0)
    trials = tuner.oracle.trials.values()
    assert len(trials) == 2
    assert all(t.status == "COMPLETED" for t in trials)
    assert tuner.oracle.get_best_trials(2) == []
    assert tuner.get_best_hyperparameters() == []
    with pytest.raises(RuntimeError, match="No trial has a finite score") as e:
        tuner.get_best_models()
    assert "2 completed trial(s) diverged" in str(e.value)


class _Table:
    """An estimator reporting fixed metrics per trial id."""

    def __init__(self, rows):
        self.rows = rows

    def estimate(self, tuner, trial, *args, **kwargs):
        return self.rows[int(trial.trial_id)]


@pytest.mark.parametrize("tuner_cls", TUNERS)
def test_diverged_trials_never_rank_as_best(tuner_cls, tmp_path):
    nan, inf = math.nan, math.inf
    rows = [
        {"val_accuracy": nan, "val_loss": nan},
        {"val_accuracy": 0.9, "val_loss": nan},  # NaN weights
        {"val_accuracy": 0.5, "val_loss": 1.0},
        {"val_accuracy": inf, "val_loss": 1.0},
        {"val_accuracy": 0.7, "val_loss": 0.8, "loss": inf},
        {"val_accuracy": 0.6, "val_loss": 0.9},
    ]
    hp = keras_tuner.HyperParameters()
    hp.Int("k", 0, 100)
    tuner = tuner_cls(
        hyperparameters=hp,
        estimator=_Table(rows),
        objective="val_accuracy",
        max_trials=len(rows),
        seed=0,
        directory=str(tmp_path),
    )
    tuner.search(verbose=0)
    best = tuner.oracle.get_best_trials(len(rows))
    assert [t.trial_id for t in best] == ["5", "2"]
    assert np.isclose(best[0].score, 0.6)
