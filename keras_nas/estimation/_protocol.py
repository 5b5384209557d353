"""Shared plumbing of the performance estimators (`estimator=` protocol).

An estimator has `estimate(tuner, trial, *fit_args, **fit_kwargs) -> dict`
(see `keras_nas.tuners._base.NasTuner`). `fit_data` recovers the data of a
`tuner.search(...)` call from those arguments and `wrap_tuner` makes a
keras-tuner tuner call an estimator instead of building and fitting.
`provides_metrics` lets an estimator that wraps another (`HardwareAware`)
declare the metrics it adds, so that the inner one accepts an objective
named after them.
"""

from __future__ import annotations

import contextlib
import contextvars
import types
from collections.abc import Iterable, Iterator
from typing import Any

from keras_nas.tensorboard import log_trial_metrics

__all__ = [
    "fit_data",
    "plain_run_trial",
    "provided_metrics",
    "provides_metrics",
    "run_estimator",
    "runs_estimator",
    "wrap_tuner",
]

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
    if not callable(getattr(estimator, "estimate", None)):
        raise ValueError(
            "Expected `estimator` to have an `estimate(tuner, trial, *args, "
            f"**kwargs)` method. Received: estimator={estimator!r}"
        )

    def run_trial(self, trial, *fit_args, **fit_kwargs):
        return run_estimator(estimator, self, trial, fit_args, fit_kwargs)

    tuner.run_trial = types.MethodType(run_trial, tuner)
    tuner.estimator = estimator
    return tuner
