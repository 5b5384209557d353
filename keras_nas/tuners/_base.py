"""Shared machinery for the keras-nas search strategies.

Every strategy in `keras_nas.tuners` is a `keras_tuner.Oracle` subclass that
works on any keras-tuner `HyperParameters` space (`Choice`, `Int`, `Float`,
`Boolean`, `Fixed` and conditional scopes). This module holds what they
share:

- The hyperparameter values as sequential decisions, their sampling,
  mutation and crossover, and RNG state to and from JSON: defined in
  `keras_nas._hp_values` (a layer below, so that the supernets use them
  too) and re-exported here.
- Duplicate detection through keras-tuner's own values hash
  (`values_hash`, `is_duplicate`, `unique_random_values`).
- Objective direction (`score_to_maximize`, `trial_reward`).
- `NasTuner`: a `keras_tuner.Tuner` that can hand each trial to a
  performance `estimator` instead of building and fitting the model.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import keras_tuner
from keras_tuner.engine import trial as trial_module

# The strategies use `_base.<name>` for these too.
from keras_nas._hp_values import (  # noqa: F401
    MAX_FINITE_CANDIDATES,
    RandomState,
    active_decisions,
    candidate_values,
    crossover_values,
    enumerate_values,
    is_active_given,
    is_valid_value,
    make_rng,
    mutable_decisions,
    mutate_value,
    mutate_values,
    random_index,
    random_values,
    rng_from_json,
    rng_to_json,
    sample_value,
    sequential_values,
)
from keras_nas._validation import check_seed
from keras_nas.estimation._protocol import (
    check_estimator,
    run_estimator,
    runs_estimator,
)
from keras_nas.tensorboard import SearchViewsMixin
from keras_nas.tuners import _distributed, _results
from keras_nas.tuners._build import build_trial_model

__all__ = [
    "NasTuner",
    "first_unique",
    "is_duplicate",
    "score_to_maximize",
    "set_seed",
    "trial_reward",
    "unique_random_values",
    "values_hash",
]


def set_seed(oracle: Any, seed: Any) -> None:
    """Gives `oracle` the seed `seed` after `keras_tuner.Oracle.__init__`.

    keras-tuner's `Oracle` does `self.seed = seed or random.randint(...)`,
    so `seed=0` would draw a random seed; this keeps 0 (and validates the
    seed). `None` keeps keras-tuner's random seed.
    """
    seed = check_seed(seed)
    if seed is not None:
        oracle.seed = oracle._seed_state = seed


def unique_random_values(
    oracle: Any, rng: RandomState, max_collisions: int = 20
) -> dict[str, Any] | None:
    """Random values not proposed before, or `None` if the space is spent.

    Draws up to `max_collisions + 1` random points; if all were proposed
    before and the space is finite (and not huge), picks uniformly among the
    points never proposed, so small spaces are searched exhaustively.
    """
    hps = oracle.hyperparameters
    values = first_unique(
        oracle, lambda: random_values(hps, rng), max_collisions + 1
    )
    if values is not None:
        return values
    points = enumerate_values(hps)
    if not points:
        return None
    fresh = [v for v in points if not is_duplicate(oracle, v)]
    if not fresh:
        return None
    return fresh[random_index(rng, len(fresh))]


def first_unique(
    oracle: Any, draw: Callable[[], dict[str, Any]], attempts: int
) -> dict[str, Any] | None:
    """The first of up to `attempts` calls of `draw()` whose values were
    not proposed before (`is_duplicate`), or `None`."""
    for _ in range(attempts):
        values = draw()
        if not is_duplicate(oracle, values):
            return values
    return None


# ---------------------------------------------------------------------------
# Duplicates and objective direction.
# ---------------------------------------------------------------------------


def values_hash(oracle: Any, values: Mapping[str, Any]) -> str:
    """keras-tuner's hash of a set of (active) values."""
    return oracle._compute_values_hash(dict(values))


def is_duplicate(oracle: Any, values: Mapping[str, Any]) -> bool:
    """Whether `values` were already proposed (running trials included)."""
    return values_hash(oracle, values) in oracle._tried_so_far


def score_to_maximize(oracle: Any, score: float | None) -> float | None:
    """Turns a trial score into a reward where larger is better.

    Returns `None` for a missing or non-finite score.
    """
    if score is None:
        return None
    score = float(score)
    if not math.isfinite(score):
        return None
    return -score if oracle.objective.direction == "min" else score


def trial_reward(oracle: Any, trial: Any) -> float | None:
    """The maximize-direction score of a completed trial, else `None`."""
    if trial.status != trial_module.TrialStatus.COMPLETED:
        return None
    return score_to_maximize(oracle, trial.score)


# ---------------------------------------------------------------------------
# Tuner base.
# ---------------------------------------------------------------------------


class NasTuner(SearchViewsMixin, keras_tuner.Tuner):
    """A `keras_tuner.Tuner` that can delegate trials to an estimator.

    The keras-nas tuners are thin subclasses that only build their oracle.
    Without an `estimator` a trial is run as in keras-tuner (build the
    hypermodel, `fit`, report the objective). With one, `run_trial` returns
    `estimator.estimate(tuner, trial, *fit_args, **fit_kwargs)`, a dict of
    metrics (e.g. from a weight-sharing supernet or a lookup table), which
    is logged to the search's TensorBoard callbacks unless the estimator's
    `logs_to_tensorboard` attribute is true (it trained with `fit`).

    With a `keras.callbacks.TensorBoard` among the `search` callbacks, the
    search itself is logged too (`keras_nas.tensorboard.SearchViews`): each
    trial's architecture as an image and text, and a `search` run with the
    objective per trial, the best so far and the history plot.

    Args:
        oracle: A `keras_tuner.Oracle`.
        hypermodel: A `keras_tuner.HyperModel` or a function `hp -> Model`.
            Optional when an `estimator` evaluates the trials.
        estimator: Optional object with an `estimate(tuner, trial, *args,
            **kwargs)` method returning a dict of metrics that contains the
            objective (the `keras_nas.estimation.Estimator` protocol).
        **kwargs: Passed to `keras_tuner.Tuner` (`directory`,
            `project_name`, `overwrite`, ...).

    Example:

    ```python
    tuner = keras_nas.tuners.AgingEvolution(
        build_model, objective="val_accuracy", max_trials=50, seed=1
    )
    tuner.search(x, y, validation_split=0.2, epochs=3)
    ```
    """

    def __init__(
        self,
        oracle: keras_tuner.Oracle,
        hypermodel: Any = None,
        estimator: Any = None,
        **kwargs: Any,
    ):
        if estimator is not None:
            check_estimator(estimator)
        if (
            hypermodel is None
            and estimator is None
            and type(self).run_trial is NasTuner.run_trial
        ):
            raise ValueError(
                "Expected a `hypermodel` (or an `estimator`, or a subclass "
                "overriding `run_trial`). Received: hypermodel=None"
            )
        self.estimator = estimator
        super().__init__(oracle, hypermodel, **kwargs)
        if _distributed.is_worker():
            # Heartbeats while a trial runs, waits when the chief is idle.
            self.oracle = _distributed.LeasedOracleClient.replacing(self.oracle)

    def search(self, *fit_args, **fit_kwargs):
        if not _distributed.is_chief():
            return super().search(*fit_args, **fit_kwargs)
        # The chief serves the oracle until the search is over, expiring
        # the trials of lost workers (`keras_nas.tuners._distributed`).
        if "verbose" in fit_kwargs:
            self.oracle.verbose = fit_kwargs["verbose"]
        self.save()
        _distributed.serve_oracle(self.oracle)
        return None

    def _try_build(self, hp):
        # One garbage collection per trial, not two (`_build`).
        return build_trial_model(self, hp)

    @runs_estimator
    def run_trial(self, trial, *args, **kwargs):
        if self.estimator is None:
            results = super().run_trial(trial, *args, **kwargs)
        else:
            # Logged to TensorBoard unless the estimator trained with `fit`
            # and the search's callbacks (e.g. `HardwareAware` without an
            # inner estimator), which logged already.
            results = run_estimator(self.estimator, self, trial, args, kwargs)
        # A missing objective stops the search here, at the first trial.
        _results.check_objective_reported(self.oracle.objective, results, trial)
        return results

    def get_best_models(self, num_models: int = 1) -> list[Any]:
        """The models of the best trials, best first.

        Only completed trials whose score and losses are finite count: a
        diverged trial (NaN or infinite) never ranks as best. Returns fewer
        than `num_models` models when fewer trials qualify.

        Raises:
            RuntimeError: trials ran but none has a finite score.
        """
        trials = _results.finite_best_trials(self.oracle, num_models)
        if not trials and self.oracle.trials:
            raise RuntimeError(_results.no_finite_trial_message(self.oracle))
        return [self.load_model(trial) for trial in trials]
