"""Learning-curve early stopping of trials, for any keras-tuner tuner.

Two Keras callbacks that stop a trial's `fit` when its learning curve makes
it unlikely to beat the trials completed before it:

- `MedianStopping`: the median stopping rule of Golovin et al., "Google
  Vizier: A Service for Black-Box Optimization", KDD 2017.
- `LearningCurveStopping`: learning-curve extrapolation after Domhan et al.,
  "Speeding up Automatic Hyperparameter Optimization of Deep Neural Networks
  by Extrapolation of Learning Curves", IJCAI 2015, simplified (least-squares
  fits, see `keras_nas.estimation.learning_curves`).

Pass one to `search` of any tuner built on `keras_tuner.Tuner` (keras-tuner's
`RandomSearch`, `BayesianOptimization`, `Hyperband`, and the keras-nas
tuners): `tuner.search(x, y, epochs=10, callbacks=[MedianStopping(tuner)])`.

How it fits keras-tuner: at each epoch end the callback reports the epoch's
logs to the oracle (`oracle.update_trial(trial_id, logs, step=epoch)`), so
every trial's `trial.metrics` holds its whole learning curve (one
`MetricObservation` per epoch, saved in the trial's JSON and reloaded when
a search resumes). keras-tuner then takes these metrics as the trial's
result (it skips its own end-of-trial report once the objective exists; it
emits a `DeprecationWarning` about that path) and scores the trial by its
best epoch, as it does without the callback. A stopped trial therefore ends
`COMPLETED`, scored by the best value it reached, and the oracle carries on
normally. Only single-process searches are supported (the running trial is
looked up in `oracle.ongoing_trials`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
from keras_tuner.engine import trial as trial_module

from keras_nas._validation import check_number, check_positive_int
from keras_nas.estimation.learning_curves import (
    CURVE_FAMILIES,
    fit_learning_curve,
    probability_to_beat,
)

__all__ = ["LearningCurveStopping", "MedianStopping", "trial_curve"]


def trial_curve(trial: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
    """The `(steps, values)` of metric `name` recorded for a trial.

    Values are averaged over executions at each step. A trial run without a
    stopping callback has a single step (keras-tuner reports the best epoch
    only); a trial without the metric has empty arrays.
    """
    if not trial.metrics.exists(name):
        return np.zeros(0), np.zeros(0)
    history = trial.metrics.get_history(name)
    steps = np.asarray([obs.step for obs in history], dtype="float64")
    values = np.asarray([obs.mean() for obs in history], dtype="float64")
    return steps, values


class _TrialStopping(keras.callbacks.Callback):
    """Records the running trial's curve in the oracle; stops it if told."""

    def __init__(self, tuner: Any, min_epochs: int, verbose: int):
        super().__init__()
        if not hasattr(getattr(tuner, "oracle", None), "update_trial"):
            raise ValueError(
                "Expected `tuner` to be a keras-tuner tuner (with an "
                f"`oracle`). Received: tuner={tuner!r}"
            )
        objective = tuner.oracle.objective
        if hasattr(objective, "objectives") or getattr(
            objective, "direction", None
        ) not in ("min", "max"):
            raise ValueError(
                "Expected a single objective with a direction 'min' or "
                f"'max'. Received: objective={objective!r}"
            )
        self.tuner = tuner
        self.min_epochs = check_positive_int("min_epochs", min_epochs)
        self.verbose = int(verbose)
        # Shared by the deep copies keras-tuner makes for every execution.
        self._shared: dict[str, Any] = {"stopped": {}, "started": set()}
        self._reset()

    def _reset(self) -> None:
        self._trial = None
        self._steps: list[int] = []
        self._values: list[float] = []

    def __deepcopy__(self, memo):
        # keras-tuner deep-copies the search callbacks for every execution:
        # share the tuner and the records, start a fresh curve.
        clone = self.__class__.__new__(self.__class__)
        clone.__dict__.update(self.__dict__)
        clone._model = None
        clone.params = None
        clone._reset()
        return clone

    @property
    def stopped_trials(self) -> dict[str, int]:
        """`{trial_id: epochs trained}` of the trials this callback stopped
        (in this process)."""
        return dict(self._shared["stopped"])

    @property
    def objective_name(self) -> str:
        return self.tuner.oracle.objective.name

    @property
    def sign(self) -> float:
        """+1 when larger objective values are better, else -1."""
        return 1.0 if self.tuner.oracle.objective.direction == "max" else -1.0

    def completed_trials(self) -> list[Any]:
        """The oracle's completed trials that have the objective."""
        name = self.objective_name
        return [
            t
            for t in self.tuner.oracle.trials.values()
            if t.status == trial_module.TrialStatus.COMPLETED
            and t is not self._trial
            and t.metrics.exists(name)
        ]

    def on_train_begin(self, logs=None):
        oracle = self.tuner.oracle
        ongoing = getattr(oracle, "ongoing_trials", {})
        trial = ongoing.get(getattr(self.tuner, "tuner_id", None))
        if trial is None:
            raise ValueError(
                f"Expected {type(self).__name__} to be passed to "
                "`tuner.search(..., callbacks=[...])` of the tuner it was "
                "built with (no running trial found). Received: "
                f"oracle.ongoing_trials={ongoing!r}"
            )
        self._reset()
        self._trial = trial
        started = self._shared["started"]
        if trial.trial_id not in started:
            # A trial resumed after a crash restarts its curve from scratch.
            started.add(trial.trial_id)
            trial.metrics = type(trial.metrics)()

    def on_epoch_end(self, epoch, logs=None):
        metrics = {}
        for key, value in (logs or {}).items():
            try:
                metrics[key] = float(value)
            except (TypeError, ValueError):
                continue
        name = self.objective_name
        if name not in metrics or self._trial is None:
            return
        self.tuner.oracle.update_trial(
            self._trial.trial_id, metrics, step=int(epoch)
        )
        self._steps.append(int(epoch))
        self._values.append(metrics[name])
        if len(self._values) < self.min_epochs:
            return
        if not self.should_stop(
            np.asarray(self._steps, "float64"),
            np.asarray(self._values, "float64"),
        ):
            return
        self.model.stop_training = True
        trained = int(epoch) + 1
        self._shared["stopped"][self._trial.trial_id] = trained
        total = (self.params or {}).get("epochs")
        self._trial.message = (
            f"Stopped early by {type(self).__name__} after {trained} of "
            f"{total} epochs."
        )
        if self.verbose:
            print(f"Trial {self._trial.trial_id}: {self._trial.message}")

    def should_stop(self, steps: np.ndarray, values: np.ndarray) -> bool:
        """Whether to stop the running trial, given its curve so far.

        Args:
            steps: the 0-based epochs observed so far.
            values: the objective at those epochs.
        """
        raise NotImplementedError


class MedianStopping(_TrialStopping):
    """Stops a trial whose best value is worse than the median running
    average of the completed trials at the same epoch.

    The median stopping rule of Golovin et al., "Google Vizier: A Service
    for Black-Box Optimization" (KDD 2017): a running trial is stopped at
    epoch `s` if its best objective value up to `s` is strictly worse than
    the median, over the completed trials, of the running averages of their
    objective up to `s` (epochs `0..s`; a trial stopped earlier contributes
    the average of the epochs it reached). The rule needs no model of the
    curves and only compares like with like (the same epoch).

    It works with every tuner built on `keras_tuner.Tuner` (keras-tuner's
    `RandomSearch`, `BayesianOptimization`, ... and the keras-nas tuners):
    the callback records each epoch's metrics in the trial
    (`trial.metrics`, one step per epoch) and reads the completed trials'
    curves from there, so resuming a search keeps them. A stopped trial is
    `COMPLETED`, scored by the best value it reached; `trial.message` says
    that it was stopped. Completed trials run without the callback have
    only their best epoch recorded and count from that epoch on.

    Args:
        tuner: the tuner whose `search` gets this callback.
        min_epochs: epochs every trial trains before it can be stopped.
        min_trials: completed trials (with a value at the epoch) needed
            before any trial is stopped.
        verbose: print a line when a trial is stopped.

    Example:

    ```python
    tuner = keras_tuner.RandomSearch(space, objective="val_accuracy",
                                     max_trials=20, seed=0)
    stopping = MedianStopping(tuner, min_epochs=2)
    tuner.search(x, y, validation_split=0.2, epochs=10,
                 callbacks=[stopping])
    stopping.stopped_trials  # {trial_id: epochs trained}
    ```
    """

    def __init__(
        self,
        tuner: Any,
        min_epochs: int = 1,
        min_trials: int = 3,
        verbose: int = 0,
    ):
        super().__init__(tuner, min_epochs, verbose)
        self.min_trials = check_positive_int("min_trials", min_trials)

    def should_stop(self, steps: np.ndarray, values: np.ndarray) -> bool:
        step = steps[-1]
        best = float(np.max(self.sign * values))
        median = median_running_average(
            [
                trial_curve(t, self.objective_name)
                for t in self.completed_trials()
            ],
            step,
            self.sign,
            self.min_trials,
        )
        return median is not None and best < median


def median_running_average(
    curves: Sequence[tuple[np.ndarray, np.ndarray]],
    step: float,
    sign: float = 1.0,
    min_trials: int = 1,
) -> float | None:
    """Median over curves of `sign * mean(values up to step)` (Vizier).

    Args:
        curves: `(steps, values)` pairs, e.g. from `trial_curve`.
        step: the step to compare at (curves count with their values at
            steps `<= step`; a curve with none is left out).
        sign: +1 for a maximized objective, -1 for a minimized one.
        min_trials: return `None` when fewer curves count.

    Returns:
        The median running average (in the `sign * value` scale), or None.
    """
    averages = []
    for steps, values in curves:
        mask = steps <= step
        if np.any(mask):
            averages.append(float(np.mean(sign * values[mask])))
    if len(averages) < min_trials:
        return None
    return float(np.median(averages))


class LearningCurveStopping(_TrialStopping):
    """Stops a trial whose extrapolated curve is unlikely to beat the best.

    After Domhan et al., "Speeding up Automatic Hyperparameter Optimization
    of Deep Neural Networks by Extrapolation of Learning Curves" (IJCAI
    2015). At each epoch end (from `min_epochs` on) the running trial's
    objective curve is fitted with parametric families (`pow3`, `exp3`,
    `ilog2`, `log_power`), extrapolated to the last epoch of the `fit`, and
    the trial is stopped when the probability that this final value beats
    the best completed trial's score is below `threshold`.

    Simplified from the paper (see `keras_nas.estimation.learning_curves`):
    least-squares fits (NumPy) instead of MCMC, families combined with equal
    weights, Gaussian predictive distributions that ignore the uncertainty
    of the nonlinear parameters, and no increasing-curve prior. With few
    epochs of a noisy curve the fits are rough: keep `min_epochs` >= 4 and
    `threshold` small. Recording and resuming work as for `MedianStopping`.

    Args:
        tuner: the tuner whose `search` gets this callback.
        threshold: stop when P(final value beats the best) < threshold.
        min_epochs: epochs observed before the first extrapolation (at least
            one more than the families' 3 parameters to fit them all).
        families: names from `keras_nas.estimation.learning_curves.
            CURVE_FAMILIES`.
        value_range: optional `(low, high)` of the metric, e.g. `(0, 1)` for
            accuracy; extrapolated means are clipped to it.
        verbose: print a line when a trial is stopped.

    Example:

    ```python
    tuner = keras_tuner.RandomSearch(space, objective="val_accuracy",
                                     max_trials=20, seed=0)
    tuner.search(x, y, validation_split=0.2, epochs=20, callbacks=[
        LearningCurveStopping(tuner, threshold=0.05, value_range=(0, 1))])
    ```
    """

    def __init__(
        self,
        tuner: Any,
        threshold: float = 0.05,
        min_epochs: int = 4,
        families: Sequence[str] = ("pow3", "exp3", "ilog2", "log_power"),
        value_range: tuple[float, float] | None = None,
        verbose: int = 0,
    ):
        super().__init__(tuner, min_epochs, verbose)
        check_number(
            "threshold", threshold, 0, 1, low_open=True, high_open=True
        )
        families = tuple(families)
        if not families or any(f not in CURVE_FAMILIES for f in families):
            raise ValueError(
                f"Expected `families` among {sorted(CURVE_FAMILIES)}. "
                f"Received: families={families!r}"
            )
        if value_range is not None and not (
            len(value_range) == 2 and value_range[0] < value_range[1]
        ):
            raise ValueError(
                "Expected `value_range` to be `(low, high)` with low < high. "
                f"Received: value_range={value_range!r}"
            )
        self.threshold = float(threshold)
        self.families = families
        self.value_range = value_range
        self.last_probability: float | None = None

    def best_score(self) -> float | None:
        """The best completed trial's score (sign-adjusted), or None."""
        scores = [
            self.sign * float(t.score)
            for t in self.completed_trials()
            if t.score is not None and math.isfinite(float(t.score))
        ]
        return max(scores) if scores else None

    def should_stop(self, steps: np.ndarray, values: np.ndarray) -> bool:
        best = self.best_score()
        total = (self.params or {}).get("epochs")
        if best is None or not total or steps[-1] + 1 >= total:
            return False
        if float(np.max(self.sign * values)) >= best:
            return False
        epochs = steps + 1.0
        fits = fit_learning_curve(values, epochs, self.families)
        direction = self.tuner.oracle.objective.direction
        self.last_probability = probability_to_beat(
            fits,
            epochs,
            float(total),
            self.sign * best,
            direction=direction,
            value_range=self.value_range,
        )
        return self.last_probability < self.threshold
