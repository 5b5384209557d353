"""BANANAS as a keras-tuner oracle.

White, Neiswanger & Savani, "BANANAS: Bayesian Optimization with Neural
Architectures for Neural Architecture Search", AAAI 2021: an ensemble of
small neural networks predicts an architecture's score from its path
encoding; the next architecture is the best of a set of candidates, made by
mutating the best architectures so far, under independent Thompson
sampling.
"""

from __future__ import annotations

import glob
import os
from typing import Any

import keras_tuner
import numpy as np

from keras_nas._validation import check_positive_int
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
    for each other. While trials run, the ensemble is refitted once per
    round of the running trials (`refit_policy`, see
    `keras_nas.tuners._refit`), the proposals in between drawn afresh from
    the same fit and candidates, as BANANAS proposes k = 10 per fit; beyond
    256 completed trials each Adam step takes a random minibatch of 256.

    The first fit trains every network from its random initialisation;
    every later decision continues from the previous decision's networks
    for `refit_steps` steps on all completed trials (a warm start), or, when
    no trial has completed since, reuses them as they are. The networks are
    saved with the oracle (`bananas_ensemble_<n>.npz` next to
    `oracle.json`), so a resumed search continues exactly.

    Args:
        objective: A string, `keras_tuner.Objective` or list of them.
        max_trials: Maximum number of trials.
        encoding: "onehot", "path", "reduced_path" or "adjacency".
            Defaults to None: the path encoding on the cell spaces
            (BANANAS' own; the reduced one was not better here), one-hot on
            other spaces.
        num_initial_trials: Random trials before the predictor. Defaults
            to 10, as in BANANAS.
        num_parents: Best trials whose one-step neighbours are candidates.
            Defaults to 5: local moves around several good points, not one.
        num_random_candidates: Random candidates per decision. Defaults to
            20: a little global exploration next to ~100+ mutations.
        exhaustive_limit: On a finite space of at most this many points
            (e.g. 20,000), every point not proposed yet is a candidate
            instead. Defaults to 0 (never): scoring all NAS-Bench-201 cells
            found no better cells than the mutations (benchmarks/RESULTS.md).
        score_transform: None or "rank" (the ensemble is fitted to the
            normal quantiles of the scores' ranks). Defaults to None, as in
            BANANAS: the ensemble's absolute-error loss is robust to the
            outliers a Gaussian process suffers from.
        num_networks: Networks in the ensemble. Defaults to 5, as in
            BANANAS.
        refit_steps: Adam steps of a warm-started refit, or None to train
            every fit from scratch (150 steps, as the first fit). Defaults
            to 60: as good as a cold refit on NAS-Bench-201 at ~2/5 of its
            cost (30 lost quality; benchmarks/RESULTS.md).
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
        exhaustive_limit: int = 0,
        score_transform: str | None = None,
        num_networks: int = 5,
        refit_steps: int | None = 60,
        seed: int | None = None,
        hyperparameters: keras_tuner.HyperParameters | None = None,
        allow_new_entries: bool = True,
        tune_new_entries: bool = True,
        max_retries_per_trial: int = 0,
        max_consecutive_failed_trials: int = 3,
    ):
        self.num_networks = check_positive_int("num_networks", num_networks)
        self.refit_steps = check_positive_int(
            "refit_steps", refit_steps, allow_none=True
        )
        super().__init__(
            **_oracle.arguments_of(_model_based.SurrogateOracle, locals())
        )
        # The ensemble of the last decision (None before the first fit), the
        # number of completed trials it was fitted on, and its file's
        # version (`_ensemble_fname`).
        self._weights: list[np.ndarray] | None = None
        self._fitted_on = 0
        self._weights_version = 0
        self._saved_weights: str | None = None

    cell_encoding = "path"
    saved_cell_encoding = "path"

    _state_settings = (
        *_model_based.SurrogateOracle._state_settings,
        "num_networks",
        "refit_steps",
    )

    def _fit_surrogate(self, x, y, seed):
        previous = self._weights
        if (
            self.refit_steps is None
            or previous is None
            or previous[0].shape[1] != x.shape[1]  # A new encoding.
        ):
            initial, steps = None, _COLD_STEPS
        else:
            initial = previous
            steps = 0 if len(x) == self._fitted_on else self.refit_steps
        mlp = MLPEnsemblePredictor(
            seed=seed,
            num_networks=self.num_networks,
            steps=steps,
            initial_weights=initial,
            batch_size=self.refit_policy.max_batch_rows,
        ).fit(x, y)
        if self.refit_steps is not None and (steps or initial is None):
            self._weights = mlp.weights
            self._fitted_on = len(x)
            self._weights_version += 1
        return mlp

    def _score(self, batch, rows, seed, observed, fresh):
        # Independent Thompson sampling: a fresh draw per candidate from
        # the ensemble's mean and spread (the same fit for the whole batch).
        if "mean_std" not in batch.cache:
            batch.cache["mean_std"] = batch.model.predict(
                batch.x[: len(batch.candidates)]
            )
        mean, std = batch.cache["mean_std"]
        rng = np.random.default_rng(seed)
        return mean[rows] + std[rows] * rng.standard_normal(len(rows))

    # -- state --------------------------------------------------------------

    def _ensemble_fname(self, version: int) -> str:
        return os.path.join(
            self._project_dir, f"bananas_ensemble_{version}.npz"
        )

    def get_state(self) -> dict[str, Any]:
        state = super().get_state()
        state["ensemble_fitted_on"] = self._fitted_on
        state["ensemble_version"] = self._weights_version
        state["ensemble_file"] = (
            None
            if self._weights is None
            else os.path.basename(self._ensemble_fname(self._weights_version))
        )
        return state

    def set_state(self, state: dict[str, Any]) -> None:
        super().set_state(state)
        self._fitted_on = state.get("ensemble_fitted_on", 0)
        self._weights_version = state.get("ensemble_version", 0)
        self._weights = self._saved_weights = None
        if state.get("ensemble_file"):
            path = os.path.join(self._project_dir, state["ensemble_file"])
            with np.load(path) as arrays:
                self._weights = [
                    arrays[f"w{i}"] for i in range(len(arrays.files))
                ]
            self._saved_weights = path

    def save(self) -> None:
        current = None
        if self._weights is not None:
            current = self._ensemble_fname(self._weights_version)
            if current != self._saved_weights:
                _save_npz_atomic(current, self._weights)
        super().save()  # `oracle.json`, atomically.
        # The previous file is no longer referenced by `oracle.json`.
        if self._saved_weights not in (None, current) and os.path.exists(
            self._saved_weights
        ):
            os.remove(self._saved_weights)
        self._saved_weights = current

    def reload(self) -> None:
        super().reload()
        # Files left by a crash between writing the weights and the state.
        pattern = os.path.join(self._project_dir, "bananas_ensemble_*.npz")
        for path in glob.glob(pattern):
            if path != self._saved_weights:
                os.remove(path)


#: Adam steps of a fit from random initialisations (the predictor's default).
_COLD_STEPS = 150


def _save_npz_atomic(path: str, arrays: list[np.ndarray]) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as f:
        np.savez(f, **{f"w{i}": a for i, a in enumerate(arrays)})
    os.replace(tmp, path)


class Bananas(_base.NasTuner):
    """Tuner running `BananasOracle` (White et al., AAAI 2021).

    Args:
        hypermodel: A `keras_tuner.HyperModel` (e.g. a `keras_nas.spaces`
            space) or a function `hp -> compiled keras.Model`.
        objective: The objective, e.g. `"val_accuracy"`.
        max_trials: Maximum number of trials.
        encoding, num_initial_trials, num_parents, num_random_candidates,
        exhaustive_limit, score_transform, num_networks,
        refit_steps: See `BananasOracle`.
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
        exhaustive_limit: int = 0,
        score_transform: str | None = None,
        num_networks: int = 5,
        refit_steps: int | None = 60,
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
