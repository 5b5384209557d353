"""What a trial reports, checked: the objective is there, scores are finite.

- `check_objective_reported`: a trial's results must contain the objective.
  Otherwise keras-tuner fails every trial with a `KeyError` traceback and
  stops after `max_consecutive_failed_trials` with a `RuntimeError`; this
  stops the search at the first trial, naming the metrics that exist.
- `diverged` and `finite_best_trials`: a trial whose score, or any loss it
  reported, is NaN or infinite diverged, and its model holds non-finite
  weights; it never ranks as best. `FiniteBestTrials` is the oracle mixin
  that ranks this way (keras-tuner's `get_best_trials` sorts NaN scores
  anywhere and pads a short list with failed trials).
"""

from __future__ import annotations

import math
from typing import Any

import keras
from keras_tuner import errors
from keras_tuner.engine import trial as trial_module
from keras_tuner.src.engine import objective as objective_module

from keras_nas._validation import short_repr

__all__ = [
    "FiniteBestTrials",
    "check_objective_reported",
    "diverged",
    "finite_best_trials",
    "no_finite_trial_message",
]


def _reported_names(results: Any) -> set[str] | None:
    """Metric names in what `run_trial` returned; None if not known."""
    if isinstance(results, list):
        names = [_reported_names(r) for r in results]
        known = [n for n in names if n is not None]
        return set.intersection(*known) if known else None
    if isinstance(results, keras.callbacks.History):
        return set(results.history)
    if isinstance(results, dict):
        return set(results)
    return None  # a bare number is the objective's value


def check_objective_reported(objective: Any, results: Any, trial: Any) -> None:
    """Raises a `keras_tuner.errors.FatalValueError` (the search stops at
    once) when `results` lack the objective."""
    if isinstance(objective, objective_module.DefaultObjective):
        return  # keras-tuner checks this case itself
    reported = _reported_names(results)
    if reported is None:
        return
    wanted = getattr(objective, "objectives", [objective])
    missing = [o.name for o in wanted if o.name not in reported]
    if missing:
        raise errors.FatalValueError(
            f"Trial {trial.trial_id} did not report the objective "
            f"{', '.join(map(repr, missing))}; it reported "
            f"{sorted(reported)}. Expected `objective` to be one of these "
            "(a 'val_' metric needs validation data; other metrics must be "
            "compiled into the model). "
            f"Received: objective={short_repr(missing[0])}"
        )


def _finite(value: Any) -> bool:
    try:
        return value is not None and math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def diverged(trial: Any) -> bool:
    """Whether a completed trial's score or any reported loss is not finite."""
    if not _finite(trial.score):
        return True
    for name in trial.metrics.metrics:
        if name == "loss" or name.endswith("_loss"):
            value = trial.metrics.get_last_value(name)
            if value is not None and not _finite(value):
                return True
    return False


def finite_best_trials(oracle: Any, num_trials: int = 1) -> list[Any]:
    """The best completed trials that did not diverge, best first.

    Fewer than `num_trials` (possibly none) when fewer trials qualify;
    failed, running and diverged trials are never returned.
    """
    trials = [
        t
        for t in oracle.trials.values()
        if t.status == trial_module.TrialStatus.COMPLETED and not diverged(t)
    ]
    trials.sort(
        key=lambda t: float(t.score),
        reverse=oracle.objective.direction == "max",
    )
    return trials[:num_trials]


def no_finite_trial_message(oracle: Any) -> str:
    """Why `finite_best_trials` is empty although trials ran."""
    ended = [
        t
        for t in oracle.trials.values()
        if t.status == trial_module.TrialStatus.COMPLETED
    ]
    failed = len(oracle.trials) - len(ended)
    examples = ", ".join(
        f"trial {t.trial_id}: score={t.score}" for t in ended[:3]
    )
    return (
        "No trial has a finite score: "
        f"{len(ended)} completed trial(s) diverged (NaN or infinite score "
        f"or loss{'; ' + examples if examples else ''}) and {failed} did "
        "not complete. Check the data for NaN/inf values and large "
        "magnitudes, or lower the learning rate."
    )


class FiniteBestTrials:
    """Oracle mixin: `get_best_trials` returns `finite_best_trials`.

    Put it before the oracle class in the bases.
    """

    def get_best_trials(self, num_trials: int = 1) -> list[Any]:
        return finite_best_trials(self, num_trials)
