"""BANANAS as a keras-tuner oracle.

White, Neiswanger & Savani, "BANANAS: Bayesian Optimization with Neural
Architectures for Neural Architecture Search", AAAI 2021: an ensemble of
small neural networks predicts an architecture's score from its path
encoding; the next architecture is the best of a set of candidates, made by
mutating the best architectures so far, under independent Thompson
sampling.
"""

from __future__ import annotations

from typing import Any

import keras_tuner
import numpy as np

from keras_nas._validation import check_positive_int
from keras_nas.predictors.encodings import ArchitectureEncoder
from keras_nas.predictors.models import MLPEnsemblePredictor
from keras_nas.tuners import _base, _model_based, _oracle

__all__ = ["Bananas", "BananasOracle"]


class BananasOracle(_model_based.SurrogateOracle):
    """BANANAS (White et al., AAAI 2021).

    After `num_initial_trials` random trials, every decision trains a
    `keras_nas.predictors.MLPEnsemblePredictor` on the completed trials'
    encodings and scores and proposes the candidate with the best
    independent Thompson sample: for every candidate one draw from the
    normal of the ensemble's mean and standard deviation (BANANAS' "ITS"
    acquisition). The candidates are the one-step neighbours of the
    `num_parents` best trials plus `num_random_candidates` random points,
    never a point already proposed. The draws differ from one proposal to
    the next, so several workers get different candidates without waiting
    for each other.

    Args:
        objective: A string, `keras_tuner.Objective` or list of them.
        max_trials: Maximum number of trials.
        encoding: "onehot", "path" or "adjacency". Defaults to None: the
            path encoding on the cell spaces (BANANAS' own), one-hot on
            other spaces.
        num_initial_trials: Random trials before the predictor. Defaults
            to 10, as in BANANAS.
        num_parents: Best trials whose one-step neighbours are candidates.
            Defaults to 5: local moves around several good points, not one.
        num_random_candidates: Random candidates per decision. Defaults to
            20: a little global exploration next to ~100+ mutations.
        score_transform: None or "rank" (the ensemble is fitted to the
            normal quantiles of the scores' ranks). Defaults to None, as in
            BANANAS: the ensemble's absolute-error loss is robust to the
            outliers a Gaussian process suffers from.
        num_networks: Networks in the ensemble. Defaults to 5, as in
            BANANAS.
        seed: Integer seed; the same seed gives the same trials (0 is a
            seed too).
        hyperparameters, allow_new_entries, tune_new_entries,
        max_retries_per_trial, max_consecutive_failed_trials: As in
            `keras_tuner.Oracle`.

    Example:

    ```python
    oracle = BananasOracle(objective="val_accuracy", max_trials=50, seed=1)
    tuner = keras_nas.tuners.NasTuner(oracle, hypermodel=space)
    ```
    """

    def __init__(
        self,
        objective: Any = None,
        max_trials: int = 100,
        encoding: str | None = None,
        num_initial_trials: int = 10,
        num_parents: int = 5,
        num_random_candidates: int = 20,
        score_transform: str | None = None,
        num_networks: int = 5,
        seed: int | None = None,
        hyperparameters: keras_tuner.HyperParameters | None = None,
        allow_new_entries: bool = True,
        tune_new_entries: bool = True,
        max_retries_per_trial: int = 0,
        max_consecutive_failed_trials: int = 3,
    ):
        self.num_networks = check_positive_int("num_networks", num_networks)
        super().__init__(
            **_oracle.arguments_of(_model_based.SurrogateOracle, locals())
        )

    def _resolved_encoding(self) -> str:
        if self.encoding is not None:
            return self.encoding
        return (
            "path"
            if ArchitectureEncoder.has_cells(self.hyperparameters)
            else "onehot"
        )

    _state_settings = (
        *_model_based.SurrogateOracle._state_settings,
        "num_networks",
    )

    def _acquisition(self, x, y, x_pending, x_candidates, seed):
        mlp = MLPEnsemblePredictor(seed=seed, num_networks=self.num_networks)
        mean, std = mlp.fit(x, y).predict(x_candidates)
        rng = np.random.default_rng(seed)
        return mean + std * rng.standard_normal(len(mean))



class Bananas(_base.NasTuner):
    """Tuner running `BananasOracle` (White et al., AAAI 2021).

    Args:
        hypermodel: A `keras_tuner.HyperModel` (e.g. a `keras_nas.spaces`
            space) or a function `hp -> compiled keras.Model`.
        objective: The objective, e.g. `"val_accuracy"`.
        max_trials: Maximum number of trials.
        encoding, num_initial_trials, num_parents, num_random_candidates,
        score_transform,
        num_networks: See `BananasOracle`.
        seed: Integer seed.
        hyperparameters, tune_new_entries, allow_new_entries,
        max_retries_per_trial, max_consecutive_failed_trials: As in
            `keras_tuner.RandomSearch`.
        estimator: Optional performance estimator (see `NasTuner`).
        **kwargs: Passed to `keras_tuner.Tuner` (`directory`,
            `project_name`, `overwrite`, ...).

    Example:

    ```python
    tuner = Bananas(
        keras_nas.spaces.CellSearchSpace(), objective="val_accuracy",
        max_trials=30, seed=1, directory="runs", project_name="bananas",
    )
    tuner.search(x, y, epochs=2, validation_split=0.2)
    ```
    """

    def __init__(
        self,
        hypermodel: Any = None,
        objective: Any = None,
        max_trials: int = 100,
        encoding: str | None = None,
        num_initial_trials: int = 10,
        num_parents: int = 5,
        num_random_candidates: int = 20,
        score_transform: str | None = None,
        num_networks: int = 5,
        seed: int | None = None,
        hyperparameters: keras_tuner.HyperParameters | None = None,
        tune_new_entries: bool = True,
        allow_new_entries: bool = True,
        max_retries_per_trial: int = 0,
        max_consecutive_failed_trials: int = 3,
        estimator: Any = None,
        **kwargs: Any,
    ):
        oracle = _oracle.make_oracle(BananasOracle, locals())
        super().__init__(oracle, hypermodel, estimator=estimator, **kwargs)
