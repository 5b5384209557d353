"""Proposals between surrogate refits: BO and BANANAS with many workers.

The predictor-based oracles (`_model_based.SurrogateOracle`) fit a
predictor on the completed trials and propose the best candidate under an
acquisition function. With no other trial running, every proposal refits:
the sequential method of the papers, unchanged. With several workers busy,
a refit per proposal is both costly (a chief serving 32 workers spent about
1 s a trial at a few hundred trials, RESULTS.md) and not what the methods
do: BANANAS (White et al., AAAI 2021) proposes a batch of k = 10
architectures from one fit by independent Thompson sampling, and batch BO
proposes several points from one fitted GP, its kernel fixed, with a
constant liar (Ginsbourger et al., 2010) or Thompson draws (Kandasamy et
al., "Parallelised Bayesian Optimisation via Thompson Sampling", AISTATS
2018).

So a fit leaves a `Batch`: the candidate pool it scored (the mutations of
the best trials at that time plus random points) and the fitted surrogate.
Until a refit is due (`RefitPolicy.due`), a proposal is the best untried
candidate of that pool under the oracle's acquisition given what happened
since the fit (`SurrogateOracle._score`): for the Gaussian process, the
joint posterior over the pool conditioned (exact Gaussian conditioning on a
few rows, the kernel fixed) on the trials completed since the fit and, for
the constant liar, on the running ones at the liar's score; for the MLP
ensemble, a fresh independent Thompson draw per candidate.

What a fit depends on is recorded (`mark`: the RNG before it, how many
trials had started and ended, the running ones), so a reloaded oracle
rebuilds the same batch (`replay`) and continues exactly.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
from scipy.linalg import cho_factor, cho_solve

from keras_nas.tuners import _base

__all__ = ["Batch", "RefitPolicy", "condition", "propose"]


@dataclasses.dataclass(frozen=True)
class RefitPolicy:
    """When the predictor-based oracles refit, and what bounds a fit.

    Attributes:
        workers_per_refit: A refit is due once the trials completed since
            the last fit number at least this many times the running trials
            (and at least 1; with none running, every proposal refits).
            Defaults to 1.0: one refit per round of the workers, so every
            worker's result is in the next fit, and the GP sees the others
            through conditioning in between.
        max_fit_points: The Gaussian process is fitted on at most this many
            completed trials, those nearest the parents of the candidates
            (a local GP, as TuRBO fits the data of its trust region).
            Defaults to 256: its kernel grid then costs ~0.1 s a fit, and
            searches of up to 256 trials fit on all of them.
        max_batch_rows: Each Adam step of the MLP ensemble uses a random
            minibatch of this many completed trials once there are more.
            Defaults to 256: a refit's cost stops growing with the history
            (BANANAS trains on minibatches too), and searches of up to 256
            trials train full-batch as before.
    """

    workers_per_refit: float = 1.0
    max_fit_points: int = 256
    max_batch_rows: int = 256

    def due(self, new_results: int, running: int) -> bool:
        """Whether a refit is due with `new_results` completed trials since
        the last fit and `running` trials running."""
        if running == 0:
            return True
        return new_results >= max(
            1, math.ceil(self.workers_per_refit * running)
        )


@dataclasses.dataclass
class Batch:
    """What one fit leaves for the proposals until the next.

    Attributes:
        num_done: Completed trials (with a score) the fit saw.
        candidates, parents: The candidate pool and each one's parents.
        keys: The hashes of the pool's rows: the candidates, then the
            trials running at the fit that are not candidates.
        x: The encodings of those rows.
        model: The fitted surrogate (the oracle's `_fit_surrogate`).
        best, lie: The largest and smallest fitted target.
        rewards, targets: The fitted rewards and their targets, sorted
            (to map a later reward onto the fitted targets' scale).
        seed: The seed of the fit (and of the proposal made with it).
        cache: Quantities of the surrogate computed on first use.
    """

    num_done: int
    candidates: list[dict[str, Any]]
    parents: list[list[str] | None]  # None: from the enumeration.
    keys: list[str]
    x: np.ndarray
    model: Any
    best: float
    lie: float
    rewards: np.ndarray
    targets: np.ndarray
    seed: int
    cache: dict[str, Any] = dataclasses.field(default_factory=dict)

    def target(self, reward: float) -> float:
        """A reward on the scale of the fitted targets (ranks: linear
        interpolation between the fitted rewards' targets)."""
        if np.array_equal(self.rewards, self.targets):
            return float(reward)
        return float(np.interp(reward, self.rewards, self.targets))


def condition(
    mean: np.ndarray,
    cov: np.ndarray,
    rows: np.ndarray,
    values: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """A joint normal `N(mean, cov)` conditioned on `x[rows] = values`.

    Returns:
        The conditioned mean and the gain `cov[:, rows] @ inv(cov[rows,
        rows])`, whose product with `cov[rows, :]` is the reduction of the
        covariance.
    """
    factor = cho_factor(
        cov[np.ix_(rows, rows)] + 1e-10 * np.eye(len(rows)), lower=True
    )
    gain = cho_solve(factor, cov[rows, :]).T
    return mean + gain @ (values - mean[rows]), gain


def _running(oracle: Any, region: int) -> list[Any]:
    return [
        t
        for t in oracle.ongoing_trials.values()
        if oracle._in_region(t.trial_id, region)
    ]


def _fit(oracle: Any, done: list, region: int, running: list) -> Batch | None:
    """Fits the surrogate on `done`; None when no candidate is left."""
    mark = {
        "rng": _base.rng_to_json(oracle._rng),
        "starts": len(oracle.start_order),
        "ends": len(oracle.end_order),
        "done": len(done),
        "running": [t.trial_id for t in running],
    }
    exhaustive = oracle._exhaustive_candidates()
    if exhaustive is not None:  # Every untried point of a small space.
        candidates, x_candidates, keys = exhaustive
        parents = [None] * len(candidates)
    else:
        candidates, parents = oracle._candidates(done)
        x_candidates = keys = None
    if not candidates:
        return None
    if keys is None:
        x_candidates = oracle._encode(candidates)
        keys = [_base.values_hash(oracle, v) for v in candidates]
    seed = int(oracle._rng.integers(2**31 - 1))
    rewards = np.asarray([d[2] for d in done], dtype=np.float64)
    targets = oracle._targets(rewards)
    x_done = oracle._encode([d[1] for d in done])
    rows = oracle._fit_rows(x_done, targets, done)
    model = oracle._fit_surrogate(x_done[rows], targets[rows], seed)
    pool, extra = set(keys), {}
    for trial in running:
        values = dict(trial.hyperparameters.values)
        key = _base.values_hash(oracle, values)
        if key not in extra and key not in pool:
            extra[key] = values
    order = np.argsort(rewards, kind="stable")
    batch = Batch(
        num_done=len(done),
        candidates=candidates,
        parents=parents,
        keys=keys + list(extra),
        x=(
            np.concatenate([x_candidates, oracle._encode(list(extra.values()))])
            if extra
            else x_candidates
        ),
        model=model,
        best=float(np.max(targets)),
        lie=float(np.min(targets)),
        rewards=rewards[order],
        targets=targets[order],
        seed=seed,
    )
    oracle._batches[region] = batch
    oracle._refit_marks[region] = mark
    return batch


def replay(oracle: Any, region: int) -> Batch | None:
    """The batch of the last fit, rebuilt from its mark (after a reload)."""
    mark = oracle._refit_marks[region]
    rng, tried = oracle._rng, oracle._tried_so_far
    try:
        oracle._rng = _base.rng_from_json(mark["rng"])
        oracle._tried_so_far = {
            _base.values_hash(oracle, oracle.trials[t].hyperparameters.values)
            for t in oracle.start_order[: mark["starts"]]
        }
        done = [
            d
            for d in oracle._completed(oracle.end_order[: mark["ends"]])
            if oracle._in_region(d[0], region)
        ]
        running = [oracle.trials[t] for t in mark["running"]]
        return _fit(oracle, done, region, running)
    finally:
        oracle._rng, oracle._tried_so_far = rng, tried


def _observed(oracle: Any, batch: Batch, done: list, running: list) -> list:
    """`(row, target, completed)` of the pool's rows with news since the
    fit: completed trials at their score, running ones (no score yet)."""
    index = batch.cache.get("index")
    if index is None:
        index = batch.cache["index"] = {k: i for i, k in enumerate(batch.keys)}

    def row(trial_id, values):
        # keras-tuner keeps each trial's hash (`_record_values`).
        key = oracle._id_to_hash.get(trial_id)
        return index.get(key or _base.values_hash(oracle, values))

    out = []
    for trial_id, values, reward in done[batch.num_done :]:
        at = row(trial_id, values)
        if at is not None:
            out.append((at, batch.target(reward), True))
    for trial in running:
        at = row(trial.trial_id, trial.hyperparameters.values)
        if at is not None:
            out.append((at, batch.lie, False))
    return out


def propose(oracle: Any, done: list, region: int = 0):
    """The next proposal of a predictor-based oracle (module docstring).

    Returns:
        `(values, origin)`, or `(None, None)` when no candidate is left
        (the caller proposes a random point).
    """
    running = _running(oracle, region)
    batch = oracle._batches.get(region)
    mark = oracle._refit_marks.get(region)
    fresh = False
    if mark is None or oracle.refit_policy.due(
        len(done) - mark["done"], len(running)
    ):
        batch, fresh = _fit(oracle, done, region, running), True
    elif batch is None:
        batch = replay(oracle, region)
    for attempt in range(2):
        if batch is None:
            return None, None
        tried = oracle._tried_so_far
        rows = np.asarray(
            [i for i, k in enumerate(batch.keys[: len(batch.candidates)])
             if k not in tried],
            dtype=np.int64,
        )
        if len(rows):
            break
        if attempt:  # A fresh pool has untried candidates by construction.
            return None, None
        batch, fresh = _fit(oracle, done, region, running), True
    seed = batch.seed if fresh else int(oracle._rng.integers(2**31 - 1))
    observed = _observed(oracle, batch, done, running)
    scores = oracle._score(batch, rows, seed, observed, fresh)
    best = int(rows[int(np.argmax(scores))])
    parents = batch.parents[best]
    if parents is None:
        origin = "exhaustive"
    else:
        origin = "mutation" if parents else "candidate"
    return dict(batch.candidates[best]), {
        "origin": origin,
        "parents": list(parents or []),
    }
