"""Bayesian optimisation over architectures as a keras-tuner oracle.

A Gaussian process whose kernel acts on an architecture encoding (not on
independent hyperparameter axes), expected improvement, and candidates made
by mutating the best architectures, as Bayesian optimisation is done for
NAS: Kandasamy et al., "Neural Architecture Search with Bayesian
Optimisation and Optimal Transport" (NASBOT), NeurIPS 2018; Jin et al.,
"Auto-Keras", KDD 2019; White et al., "BANANAS", AAAI 2021.
"""

from __future__ import annotations

from typing import Any

import keras_tuner
import numpy as np
from scipy.special import ndtr

from keras_nas._validation import check_positive_int
from keras_nas.predictors.models import GaussianProcessPredictor
from keras_nas.tuners import _base, _model_based, _oracle, _refit

__all__ = [
    "ArchitectureBayesianOptimization",
    "ArchitectureBayesianOptimizationOracle",
]

_BATCH_MODES = ("constant_liar", "thompson")


def expected_improvement(
    mean: np.ndarray, std: np.ndarray, best: float, xi: float = 0.0
) -> np.ndarray:
    """Expected improvement over `best` of N(mean, std^2) (maximising)."""
    std = np.maximum(std, 1e-12)
    gain = mean - best - xi
    z = gain / std
    return gain * ndtr(z) + std * np.exp(-0.5 * z * z) / np.sqrt(2 * np.pi)


class ArchitectureBayesianOptimizationOracle(_model_based.SurrogateOracle):
    """Bayesian optimisation with a GP on an architecture encoding.

    After `num_initial_trials` random trials, every decision fits a
    `keras_nas.predictors.GaussianProcessPredictor` to the completed trials
    (their `ArchitectureEncoder` encodings and scores) and proposes the
    candidate of highest expected improvement over the best score. The
    candidates are the one-step neighbours of the `num_parents` best trials
    (mutations) plus `num_random_candidates` random points, never a point
    already proposed (or, with `exhaustive_limit`, every point not
    proposed yet of a small finite space: the acquisition maximised
    exactly). Works on any keras-tuner space (one-hot encoding of the
    active decisions); on the cell spaces the GP uses the reduced path
    encoding by default (`keras_nas.predictors.ArchitectureEncoder`).

    With `num_regions > 1` the budget is shared in turns by that many
    independent searches ("regions"), each with its own random start, GP,
    parents and best score (a portfolio of restarts, as the several trust
    regions of TuRBO: Eriksson et al., "Scalable Global Optimization via
    Local Bayesian Optimization", NeurIPS 2019): a search drawn into a
    poor basin by its early trials then decides only its own share of the
    budget. Proposals never repeat a point of any region.

    Several workers (keras-tuner's distributed mode) get different proposals
    without waiting: with `batch="constant_liar"` the trials still running
    enter the GP with the worst score seen so far as a stand-in (Ginsbourger
    et al., 2010), which lowers the expected improvement around them; with
    `batch="thompson"` each proposal is the best candidate of one joint draw
    from the posterior. While trials run, the GP (kernel and candidates) is
    refitted once per round of the running trials (`refit_policy`, see
    `keras_nas.tuners._refit`); the proposals in between condition its
    joint posterior over the candidates on the trials completed since (and
    the liars), with the kernel fixed, as batch BO does. Beyond 256
    completed trials the GP is fitted on the 256 nearest the parents.

    Args:
        objective: A string, `keras_tuner.Objective` or list of them.
        max_trials: Maximum number of trials.
        encoding: "onehot", "path", "reduced_path" or "adjacency".
            Defaults to None: "reduced_path" on the cell spaces (cells that
            route a skip differently encode alike, so the GP sees past
            them; benchmarks/RESULTS.md), "onehot" on other spaces.
        num_initial_trials: Random trials before the GP, in all (split
            evenly among the regions). Defaults to 10, as in BANANAS.
        num_parents: Best trials whose one-step neighbours are candidates.
            Defaults to 5: local moves around several good points, not one.
        num_random_candidates: Random candidates per decision. Defaults to
            20: a little global exploration next to ~100+ mutations.
        exhaustive_limit: On a finite space of at most this many points
            (e.g. 20,000), every point not proposed yet is a candidate
            instead. Defaults to 0 (never): scoring all NAS-Bench-201 cells
            found no better cells than the mutations (benchmarks/RESULTS.md).
        score_transform: None or "rank": the GP is fitted to the normal
            quantiles of the scores' ranks (`_model_based.normal_scores`).
            Defaults to "rank": a few collapsed architectures (e.g. a cut-off
            cell) are otherwise outliers that flatten the Gaussian fit
            among the good ones.
        batch: "constant_liar" or "thompson" (see above). Defaults to
            "constant_liar": deterministic given the running trials.
        num_regions: Independent searches sharing the budget (see above).
            Defaults to 1: a region must have trials enough to climb a
            basin alone, which depends on the budget (2 regions at 100
            NAS-Bench-201 queries: no clear gain; benchmarks/RESULTS.md).
        seed: Integer seed; the same seed gives the same trials (0 is a
            seed too).
        hyperparameters, allow_new_entries, tune_new_entries,
        max_retries_per_trial, max_consecutive_failed_trials: As in
            `keras_tuner.Oracle`.

    Example:

    ```python
    oracle = ArchitectureBayesianOptimizationOracle(
        objective="val_accuracy", max_trials=50, seed=1
    )
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
        score_transform: str | None = "rank",
        batch: str = "constant_liar",
        num_regions: int = 1,
        seed: int | None = None,
        hyperparameters: keras_tuner.HyperParameters | None = None,
        allow_new_entries: bool = True,
        tune_new_entries: bool = True,
        max_retries_per_trial: int = 0,
        max_consecutive_failed_trials: int = 3,
    ):
        if batch not in _BATCH_MODES:
            raise ValueError(
                f"Expected `batch` to be one of {list(_BATCH_MODES)}. "
                f"Received: batch={batch!r}"
            )
        self.batch = batch
        self.num_regions = check_positive_int("num_regions", num_regions)
        super().__init__(
            **_oracle.arguments_of(_model_based.SurrogateOracle, locals())
        )

    cell_encoding = "reduced_path"

    _state_settings = (
        *_model_based.SurrogateOracle._state_settings,
        "batch",
        "num_regions",
    )

    def _region(self, trial_id: str) -> int:
        return int(self._lineage.get(trial_id, {}).get("region", 0))

    def _propose(self, trial_id: str):
        # Regions take proposals in turns (one lineage entry per proposal,
        # saved with the state, so a reloaded oracle continues the turns).
        region = len(self._lineage) % self.num_regions
        done = self._completed()
        if self.num_regions > 1:
            done = [d for d in done if self._region(d[0]) == region]
        initial = -(-self.num_initial_trials // self.num_regions)
        if len(done) < initial:
            values, origin = self._unique_random(), {"origin": "random"}
        else:
            values, origin = self._predicted_best(done, region)
        if self.num_regions > 1:
            origin["region"] = region
        return values, origin

    def _in_region(self, trial_id: str, region: int) -> bool:
        return self._region(trial_id) == region

    def _fit_rows(self, x, targets, done) -> np.ndarray:
        # A local GP beyond `max_fit_points` trials: those nearest the
        # parents of the candidates (ties: the better first).
        limit = self.refit_policy.max_fit_points
        if len(x) <= limit:
            return np.arange(len(x))
        parents = np.argsort(-targets, kind="stable")[: self.num_parents]
        distance = np.min(
            ((x[:, None, :] - x[None, parents, :]) ** 2).sum(axis=-1), axis=1
        )
        return np.sort(np.lexsort((-targets, distance))[:limit])

    def _fit_surrogate(self, x, y, seed):
        return GaussianProcessPredictor(seed=seed).fit(x, y)

    def _score(self, batch, rows, seed, observed, fresh):
        gp = batch.model
        if self.batch == "thompson":
            # Pending trials are not fantasised: the draws differ.
            observed = [o for o in observed if o[2]]
            if fresh and not observed:
                return gp.sample(batch.x[rows], np.random.default_rng(seed))
            return _thompson(batch, rows, seed, observed)
        if not observed:
            mean, std = gp.predict(batch.x[rows])
            return expected_improvement(mean, std, batch.best)
        mean, cov = _joint(batch)
        at = np.asarray([o[0] for o in observed])
        values = np.asarray([o[1] for o in observed])
        mean, gain = _refit.condition(mean, cov, at, values)
        var = np.diag(cov)[rows] - np.einsum(
            "ij,ji->i", gain[rows], cov[at][:, rows]
        )
        best = max([batch.best] + [v for _, v, done in observed if done])
        return expected_improvement(
            mean[rows], np.sqrt(np.maximum(var, 0.0)), best
        )


def _joint(batch) -> tuple[np.ndarray, np.ndarray]:
    """The GP's joint posterior over the batch's pool (computed once)."""
    if "joint" not in batch.cache:
        batch.cache["joint"] = batch.model.predict_joint(batch.x)
    return batch.cache["joint"]


def _thompson(batch, rows, seed, observed) -> np.ndarray:
    """One joint posterior draw over the pool, conditioned on the trials
    completed since the fit by Matheron's rule (the draw plus the gain
    times the draw's residuals at the observed rows)."""
    mean, cov = _joint(batch)
    if "eigh" not in batch.cache:
        vals, vecs = np.linalg.eigh(cov + 1e-9 * np.eye(len(mean)))
        batch.cache["eigh"] = vecs * np.sqrt(np.maximum(vals, 0.0))
    draw = mean + batch.cache["eigh"] @ np.random.default_rng(
        seed
    ).standard_normal(len(mean))
    if observed:
        at = np.asarray([o[0] for o in observed])
        values = np.asarray([o[1] for o in observed])
        draw, _ = _refit.condition(draw, cov, at, values)
    return draw[rows]


class ArchitectureBayesianOptimization(_base.NasTuner):
    """Tuner running `ArchitectureBayesianOptimizationOracle`.

    Args:
        hypermodel: A `keras_tuner.HyperModel` (e.g. a `keras_nas.spaces`
            space) or a function `hp -> compiled keras.Model`.
        objective: The objective, e.g. `"val_accuracy"`.
        max_trials: Maximum number of trials.
        encoding, num_initial_trials, num_parents, num_random_candidates,
        exhaustive_limit, score_transform, batch,
        num_regions: See `ArchitectureBayesianOptimizationOracle`.
        seed: Integer seed.
        hyperparameters, tune_new_entries, allow_new_entries,
        max_retries_per_trial, max_consecutive_failed_trials: As in
            `keras_tuner.RandomSearch`.
        estimator: Optional performance estimator (see `NasTuner`).
        **kwargs: Passed to `keras_tuner.Tuner` (`directory`,
            `project_name`, `overwrite`, ...).

    Example:

    ```python
    tuner = ArchitectureBayesianOptimization(
        keras_nas.spaces.CellSearchSpace(), objective="val_accuracy",
        max_trials=30, seed=1, directory="runs", project_name="bo",
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
        score_transform: str | None = "rank",
        batch: str = "constant_liar",
        num_regions: int = 1,
        seed: int | None = None,
        hyperparameters: keras_tuner.HyperParameters | None = None,
        tune_new_entries: bool = True,
        allow_new_entries: bool = True,
        max_retries_per_trial: int = 0,
        max_consecutive_failed_trials: int = 3,
        estimator: Any = None,
        **kwargs: Any,
    ):
        oracle = _oracle.make_oracle(
            ArchitectureBayesianOptimizationOracle, locals()
        )
        super().__init__(oracle, hypermodel, estimator=estimator, **kwargs)
