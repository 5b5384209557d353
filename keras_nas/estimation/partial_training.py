"""Partial training as a (low-fidelity) performance estimator.

Training every candidate to convergence is the cost NAS tries to avoid. A
classic cheap proxy is to train each candidate for fewer epochs and/or on a
subset of the training data and rank candidates by that low-fidelity score
(e.g. Zoph et al., "Learning Transferable Architectures for Scalable Image
Recognition", CVPR 2018, train children for 20 epochs; Klein et al., "Fast
Bayesian Optimization of Machine Learning Hyperparameters on Large
Datasets", AISTATS 2017, on data subsets). Such scores are biased towards
architectures that learn fast; retrain the best candidates fully (e.g. with
`keras_nas.estimation.retrain_top_k`) before choosing.
"""

from __future__ import annotations

from typing import Any

import keras_tuner
import numpy as np

from keras_nas._validation import check_number, check_positive_int
from keras_nas.estimation._protocol import (
    best_epoch_metrics,
    fit_data,
    wrap_tuner,
)

__all__ = ["PartialTraining"]


class PartialTraining:
    """Scores a trial by training it briefly and/or on a subset of the data.

    Follows the estimator contract of `keras_nas.tuners` (`estimator=` of
    any keras-nas tuner; `wrap` plugs it into keras-tuner's own tuners,
    e.g. `RandomSearch`): `estimate` builds the trial's model with the
    tuner's hypermodel and fits it exactly as keras-tuner does (same
    callbacks, checkpoint of the best epoch so `get_best_models` works,
    `executions_per_trial`), but for `epochs` epochs (overriding the
    `epochs` given to `search`) and on a random `fraction` of the training
    examples (the same subset for every trial; validation data untouched).
    The returned metrics are keras-tuner's: those of the best epoch of the
    short run, averaged over executions.

    These are low-fidelity estimates: they rank architectures by how fast
    they learn, not by their final accuracy. Retrain the top candidates
    fully before choosing one.

    Args:
        epochs: training epochs per trial.
        fraction: fraction of the training examples used, in (0, 1]. Below
            1 the training data must be arrays (`x`, `y`; `validation_split`
            is applied first, on the whole data, as Keras does).
        seed: seed of the subset.

    Example:

    ```python
    tuner = keras_nas.tuners.AgingEvolution(
        space, objective="val_accuracy", max_trials=100, seed=0,
        estimator=PartialTraining(epochs=2, fraction=0.25))
    tuner.search(x, y, validation_split=0.2)
    ```
    """

    #: It trains with `fit` and the search's callbacks (TensorBoard included).
    logs_to_tensorboard = True

    def __init__(self, epochs: int = 1, fraction: float = 1.0, seed: int = 0):
        self.epochs = check_positive_int("epochs", epochs)
        self.fraction = check_number("fraction", fraction, 0, 1, low_open=True)
        self.seed = seed

    def subset(self, fit_args: tuple, fit_kwargs: dict) -> tuple[tuple, dict]:
        """The `search` arguments restricted to the training subset."""
        kwargs = dict(fit_kwargs)
        kwargs["epochs"] = self.epochs
        if self.fraction >= 1.0:
            return tuple(fit_args), kwargs
        x, y, val = fit_data(fit_args, kwargs)
        if not hasattr(x, "__len__") or not hasattr(y, "__len__"):
            raise ValueError(
                "Expected array training data `x, y` when `fraction` < 1. "
                f"Received: x={type(x).__name__}, y={type(y).__name__}"
            )
        n = len(x)
        size = max(1, int(round(self.fraction * n)))
        rng = np.random.default_rng(self.seed)
        index = np.sort(rng.choice(n, size=size, replace=False))
        for key in ("x", "y", "validation_split"):
            kwargs.pop(key, None)
        if val is not None:
            kwargs["validation_data"] = val
        x, y = np.asarray(x)[index], np.asarray(y)[index]
        return (x, y, *tuple(fit_args)[2:]), kwargs

    def estimate(
        self, tuner: Any, trial: Any, *fit_args: Any, **fit_kwargs: Any
    ) -> dict[str, float]:
        """The `estimator` protocol of `keras_nas.tuners`: a metrics dict."""
        if not isinstance(tuner, keras_tuner.Tuner):
            raise ValueError(
                "Expected `tuner` to be a `keras_tuner.Tuner` (with a "
                f"hypermodel). Received: tuner={tuner!r}"
            )
        args, kwargs = self.subset(fit_args, fit_kwargs)
        results = keras_tuner.Tuner.run_trial(tuner, trial, *args, **kwargs)
        objective = tuner.oracle.objective
        if not isinstance(results, list):
            results = [results]
        best = [_result_metrics(r, objective) for r in results]
        return {
            key: float(np.mean([metrics[key] for metrics in best]))
            for key in set.intersection(*(set(m) for m in best))
        }

    def wrap(self, tuner: Any) -> Any:
        """Makes a keras-tuner tuner (e.g. `RandomSearch`) train its trials
        partially; returns the same tuner.

        Example:

        ```python
        tuner = PartialTraining(epochs=2, fraction=0.5).wrap(
            keras_tuner.RandomSearch(space, objective="val_accuracy",
                                     max_trials=50))
        tuner.search(x, y, validation_split=0.2)
        ```
        """
        return wrap_tuner(self, tuner)


def _result_metrics(result: Any, objective: Any) -> dict[str, float]:
    """A `fit` result as metrics: for a `History`, those of the epoch with
    the best objective (as keras-tuner reports them; NaN-safe)."""
    if isinstance(result, dict):
        return {key: float(value) for key, value in result.items()}
    if isinstance(result, (int, float, np.floating)):
        return {objective.name: float(result)}
    return best_epoch_metrics(result.history, objective)
