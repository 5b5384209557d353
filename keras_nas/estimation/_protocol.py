"""Shared plumbing of the performance estimators (`estimator=` protocol).

An estimator has `estimate(tuner, trial, *fit_args, **fit_kwargs) -> dict`
(the `Estimator` protocol, checked in one place: `check_estimator`, which
`keras_nas.tuners.NasTuner` and `wrap_tuner` call). Every estimator also
has `wrap(tuner)`, which is `wrap_tuner(self, tuner)`. `fit_data` recovers
the data of a
`tuner.search(...)` call from those arguments and `wrap_tuner` makes a
keras-tuner tuner call an estimator instead of building and fitting.
`provides_metrics` lets an estimator that wraps another (`HardwareAware`)
declare the metrics it adds, so that the inner one accepts an objective
named after them.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import types
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from keras_nas.tensorboard import log_trial_metrics

__all__ = [
    "Estimator",
    "best_epoch",
    "best_epoch_metrics",
    "check_estimator",
    "fit_data",
    "plain_run_trial",
    "provided_metrics",
    "provides_metrics",
    "run_estimator",
    "runs_estimator",
    "wrap_tuner",
]

@runtime_checkable
class Estimator(Protocol):
    """What `estimator=` of a keras-nas tuner (and `wrap_tuner`) needs.

    `estimate` scores one trial from the arguments of `tuner.search(...)`
    and returns a dict of metrics holding the objective. Optional
    attributes: `logs_to_tensorboard` (true when `estimate` trained with
    `fit` and the search's callbacks, which logged already) and a
    `wrap(tuner)` method (every keras-nas estimator has one).
    """

    def estimate(
        self, tuner: Any, trial: Any, *fit_args: Any, **fit_kwargs: Any
    ) -> Mapping[str, float]: ...


def check_estimator(estimator: Any) -> Any:
    """`estimator` if it follows the `Estimator` protocol, else a
    `ValueError`. The one check of the estimator contract."""
    if not isinstance(estimator, Estimator) or not callable(
        estimator.estimate
    ):
        raise ValueError(
            "Expected `estimator` to have an `estimate(tuner, trial, *args, "
            "**kwargs)` method returning a dict of metrics. "
            f"Received: estimator={estimator!r}"
        )
    return estimator


def best_epoch(history: Mapping[str, Sequence[float]], objective: Any) -> int:
    """The epoch of `history` (a `History.history` dict) with the best
    objective, ignoring epochs where it is NaN or infinite.

    One diverged epoch does not spoil a trial's score (a plain `max` would
    return NaN). If no epoch is finite, the last one is returned (its
    non-finite score marks the trial as diverged). `objective` is a
    `keras_tuner.Objective` (or `MultiObjective`): its `get_value` reads an
    epoch's metrics, its `direction` says which is best.
    """
    names = [getattr(o, "name", o) for o in _objectives(objective)]
    missing = [n for n in names if n not in history]
    if missing:
        raise ValueError(
            f"Expected the objective {missing[0]!r} among the metrics of "
            f"`fit`. Received: metrics={sorted(history)}"
        )
    num_epochs = min(len(history[n]) for n in names)
    best, best_value = num_epochs - 1, None
    sign = 1.0 if objective.direction == "max" else -1.0
    for epoch in range(num_epochs):
        logs = {n: history[n][epoch] for n in names}
        value = float(objective.get_value(logs))
        if math.isfinite(value) and (
            best_value is None or sign * value > sign * best_value
        ):
            best, best_value = epoch, value
    return max(best, 0)


def best_epoch_metrics(
    history: Mapping[str, Sequence[float]], objective: Any
) -> dict[str, float]:
    """Every metric of `history` at its `best_epoch` (NaN-safe)."""
    epoch = best_epoch(history, objective)
    return {
        key: float(values[epoch])
        for key, values in history.items()
        if epoch < len(values)
    }


def _objectives(objective: Any) -> list[Any]:
    # A `MultiObjective` holds its objectives in `objectives`.
    return list(getattr(objective, "objectives", None) or [objective])


_PROVIDED: contextvars.ContextVar[frozenset] = contextvars.ContextVar(
    "keras_nas_provided_metrics", default=frozenset()
)


@contextlib.contextmanager
def provides_metrics(names: Iterable[str]) -> Iterator[None]:
    """Declares metrics an enclosing estimator adds to the inner one's."""
    token = _PROVIDED.set(_PROVIDED.get() | frozenset(names))
    try:
        yield
    finally:
        _PROVIDED.reset(token)


def provided_metrics() -> frozenset:
    """The metrics enclosing estimators add (see `provides_metrics`)."""
    return _PROVIDED.get()


def fit_data(fit_args: tuple, fit_kwargs: dict) -> tuple[Any, Any, Any]:
    """`(x, y, validation_data)` from `search(...)` arguments.

    A `validation_split` is applied as `fit` would (the last fraction of
    `x, y` becomes the validation data).
    """
    args = list(fit_args)
    x = fit_kwargs.get("x", args[0] if args else None)
    y = fit_kwargs.get("y", args[1] if len(args) > 1 else None)
    val = fit_kwargs.get("validation_data")
    split = fit_kwargs.get("validation_split")
    if val is None and split and x is not None:
        n = int(len(x) * (1.0 - float(split)))
        x, val = x[:n], (x[n:], y[n:])
        y = y[:n]
    return x, y, val


def run_estimator(
    estimator: Any, tuner: Any, trial: Any, fit_args: tuple, fit_kwargs: dict
) -> Any:
    """`estimator.estimate(...)` for a trial, logged to TensorBoard.

    The metrics go to the search's TensorBoard callbacks as the trial's
    HParams session and scalars (`keras_nas.tensorboard.log_trial_metrics`)
    unless the estimator's `logs_to_tensorboard` attribute is true (it
    trained with `fit` and the callbacks, which logged already).
    """
    metrics = estimator.estimate(tuner, trial, *fit_args, **fit_kwargs)
    if not getattr(estimator, "logs_to_tensorboard", False):
        log_trial_metrics(tuner, trial, fit_kwargs.get("callbacks"), metrics)
    return metrics


def runs_estimator(run_trial: Any) -> Any:
    """Marks a tuner class's `run_trial` that hands trials to an estimator.

    `NasTuner.run_trial` is marked, so that `plain_run_trial` can skip it
    without this module importing the tuners (a layer above it).
    """
    run_trial.runs_estimator = True
    return run_trial


def plain_run_trial(tuner: Any, trial: Any, *args: Any, **kwargs: Any):
    """keras-tuner's own build-and-fit `run_trial` of `tuner`'s class.

    Skips an estimator: the `run_trial` marked with `runs_estimator`
    (`NasTuner`'s, which would call the estimator back) and the classes
    before it in the MRO, and a `run_trial` set on the instance by
    `wrap_tuner`.
    """
    for cls in type(tuner).__mro__:
        if getattr(vars(cls).get("run_trial"), "runs_estimator", False):
            return super(cls, tuner).run_trial(trial, *args, **kwargs)
    return type(tuner).run_trial(tuner, trial, *args, **kwargs)


def wrap_tuner(estimator: Any, tuner: Any) -> Any:
    """Makes `tuner` (any keras-tuner tuner) score trials with `estimator`.

    Replaces `tuner.run_trial` on this instance only by
    `estimator.estimate` (through `run_estimator`, which logs estimated
    trials to TensorBoard as `NasTuner` does), and sets `tuner.estimator`.
    Returns the tuner.
    """
    check_estimator(estimator)

    def run_trial(self, trial, *fit_args, **fit_kwargs):
        return run_estimator(estimator, self, trial, fit_args, fit_kwargs)

    tuner.run_trial = types.MethodType(run_trial, tuner)
    tuner.estimator = estimator
    return tuner
