"""Shared machinery of the model-based oracles (BO, BANANAS, local search).

- `one_step_neighbours`: every architecture one decision away (the
  neighbourhood of local search and the mutation candidates of BANANAS and
  of Bayesian optimisation over architectures).
- `completed_rewards`: the completed trials with a finite score, in
  completion order, as `(trial_id, values, reward)`.
- `SurrogateOracle`: a keras-tuner oracle that proposes, after
  `num_initial_trials` random trials, the best candidate under an
  acquisition function of a performance predictor fitted on the completed
  trials. Candidates are the one-step neighbours of the best trials plus a
  few random points, never a point proposed before; on a space of at most
  `exhaustive_limit` points, every point not proposed before (the
  acquisition maximised exactly, `_candidates`). Subclasses implement
  `_fit_surrogate(x_train, y_train, seed)` and `_score(batch, rows, seed,
  observed, fresh)`; while other trials run, proposals come in batches
  between refits (`_refit`).
"""

from __future__ import annotations

from typing import Any

import keras_tuner
import numpy as np
from scipy.special import ndtri
from scipy.stats import rankdata
from threadpoolctl import ThreadpoolController

from keras_nas._validation import check_positive_int
from keras_nas.predictors.encodings import ENCODINGS, ArchitectureEncoder
from keras_nas.tuners import _base, _candidates, _oracle, _refit

__all__ = ["SurrogateOracle", "completed_rewards", "one_step_neighbours"]

_THREADPOOLS: list[ThreadpoolController] = []


def _one_blas_thread():
    # Small matrices: BLAS threads only contend with the workers. The
    # controller (a scan of the loaded libraries) is made once.
    if not _THREADPOOLS:
        _THREADPOOLS.append(ThreadpoolController())
    return _THREADPOOLS[0].limit(limits=1)


#: Random steps that stand for the neighbours along a continuous range.
CONTINUOUS_STEPS = 3


def one_step_neighbours(
    hyperparameters: Any, values: dict[str, Any], rng: Any
) -> list[dict[str, Any]]:
    """Every point that differs from `values` in one active decision.

    Finite hyperparameters contribute one neighbour per other value (a
    changed parent re-draws the conditional children it activates);
    continuous ones `CONTINUOUS_STEPS` random steps (`mutate_value`).

    Args:
        hyperparameters: A keras-tuner `HyperParameters`.
        values: The centre's values.
        rng: The generator for re-drawn children and continuous steps.

    Returns:
        The neighbours' values, in the space's order.
    """
    hps = hyperparameters
    centre = _base.random_values(hps, rng, values)
    out = []
    for hp in _base.mutable_decisions(hps, centre):
        candidates = _base.candidate_values(hp)
        if candidates is None:
            moves = [
                _base.mutate_value(hp, centre[hp.name], rng)
                for _ in range(CONTINUOUS_STEPS)
            ]
        else:
            moves = [v for v in candidates if v != centre[hp.name]]
        for value in moves:
            child = dict(centre)
            child[hp.name] = value
            out.append(_base.random_values(hps, rng, child))
    return out


def normal_scores(rewards: np.ndarray) -> np.ndarray:
    """Rewards replaced by the normal quantiles of their ranks.

    A monotone map (ties share their mean rank) that keeps the order and
    turns a few collapsed architectures far below the rest into ordinary
    low values instead of outliers that a Gaussian surrogate must fit.
    """
    ranks = rankdata(rewards)
    return ndtri((ranks - 0.5) / len(rewards))


def completed_rewards(
    oracle: Any, end_order: list[str] | None = None
) -> list[tuple[str, dict, float]]:
    """`(trial_id, values, reward)` of completed trials with finite scores.

    In completion order (`end_order`, each trial once; `oracle.end_order`
    unless given); rewards are in the maximize direction
    (`score_to_maximize`).
    """
    out: list[tuple[str, dict, float]] = []
    _add_completed(
        oracle, oracle.end_order if end_order is None else end_order, out, set()
    )
    return out


def _add_completed(oracle: Any, trial_ids, out: list, seen: set) -> None:
    # A trial counts once, at its first end with a score (a failed trial
    # retried later counts when it completes).
    for trial_id in trial_ids:
        if trial_id in seen:
            continue
        trial = oracle.trials.get(trial_id)
        reward = None if trial is None else _base.trial_reward(oracle, trial)
        if reward is not None:
            seen.add(trial_id)
            out.append((trial_id, dict(trial.hyperparameters.values), reward))


class SurrogateOracle(_oracle.SearchOracle):
    """Base of the predictor-based oracles (see the module docstring).

    The state is the trials, the RNG, the lineage and what the last fit
    depended on; with no other trial running the predictor is refitted
    from the completed trials at every decision; while trials run on other
    workers, once per `refit_policy` (a `_refit.RefitPolicy`: by default
    once per round of the running trials), the proposals in between drawn
    from the last fit given what completed or started since (`_refit`). A
    reloaded oracle rebuilds that fit and continues exactly. It never
    answers `IDLE`.

    Args:
        objective, max_trials, seed, hyperparameters, allow_new_entries,
        tune_new_entries, max_retries_per_trial,
        max_consecutive_failed_trials: As in `keras_tuner.Oracle`.
        encoding: `ArchitectureEncoder` encoding, or None for the
            subclass's default.
        num_initial_trials: Random trials before the predictor is used.
        num_parents: Best trials whose one-step neighbours are candidates.
        num_random_candidates: Random points added to the candidates.
        exhaustive_limit: On a finite space of at most this many points,
            every point not proposed yet is a candidate (0: never).
        score_transform: None (fit the predictor to the scores) or "rank"
            (to `normal_scores` of them).
    """

    #: Encoding used when `encoding=None`, on spaces without / with cells.
    default_encoding = "onehot"
    cell_encoding = "onehot"

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
        seed: int | None = None,
        hyperparameters: keras_tuner.HyperParameters | None = None,
        allow_new_entries: bool = True,
        tune_new_entries: bool = True,
        max_retries_per_trial: int = 0,
        max_consecutive_failed_trials: int = 3,
    ):
        super().__init__(**_oracle.arguments_of(_oracle.SearchOracle, locals()))
        if encoding is not None and encoding not in ENCODINGS:
            raise ValueError(
                f"Expected `encoding` to be None or one of {list(ENCODINGS)}."
                f" Received: encoding={encoding!r}"
            )
        if score_transform not in (None, "rank"):
            raise ValueError(
                "Expected `score_transform` to be None or 'rank'. "
                f"Received: score_transform={score_transform!r}"
            )
        self.encoding = encoding
        self.score_transform = score_transform
        self.num_initial_trials = check_positive_int(
            "num_initial_trials", num_initial_trials
        )
        self.num_parents = check_positive_int("num_parents", num_parents)
        self.num_random_candidates = check_positive_int(
            "num_random_candidates", num_random_candidates, minimum=0
        )
        self.exhaustive_limit = check_positive_int(
            "exhaustive_limit", exhaustive_limit, minimum=0
        )
        self._enumeration = None
        self._encoder = None
        self._encoder_key = None
        self._cache: dict[str, np.ndarray] = {}
        # The last fit per region and what it depended on (`_refit`).
        self._batches: dict[int, _refit.Batch] = {}
        self._refit_marks: dict[int, dict[str, Any]] = {}
        self._done_cache: list | None = None
        if hyperparameters is not None and encoding is not None:
            self._get_encoder()  # Fail early on a space without cells.

    _state_settings = (
        "encoding",
        "num_initial_trials",
        "num_parents",
        "num_random_candidates",
        "exhaustive_limit",
        "score_transform",
        "cell_encoding",
    )
    #: `cell_encoding` of a search saved before it was part of the state.
    saved_cell_encoding = "onehot"

    # -- encodings ----------------------------------------------------------

    def _resolved_encoding(self) -> str:
        if self.encoding is not None:
            return self.encoding
        if ArchitectureEncoder.has_cells(self.hyperparameters):
            return self.cell_encoding
        return self.default_encoding

    def _get_encoder(self) -> ArchitectureEncoder:
        key = tuple(hp.name for hp in self.hyperparameters.space)
        if self._encoder is None or key != self._encoder_key:
            self._encoder = ArchitectureEncoder(
                self.hyperparameters, self._resolved_encoding()
            )
            self._encoder_key = key
            self._cache = {}
            self._enumeration = None
        return self._encoder

    def _encode(self, values_list: list[dict[str, Any]]) -> np.ndarray:
        encoder = self._get_encoder()
        rows = []
        for values in values_list:
            key = _base.values_hash(self, values)
            row = self._cache.get(key)
            if row is None:
                row = self._cache[key] = encoder.encode(values)
            rows.append(row)
        if not rows:
            return np.zeros((0, encoder.size))
        return np.stack(rows)

    # -- proposals ----------------------------------------------------------

    def _propose(self, trial_id: str):
        done = self._completed()
        if len(done) < self.num_initial_trials:
            return self._unique_random(), {"origin": "random"}
        return self._predicted_best(done)

    def _candidates(self, done) -> tuple[list[dict], list[list[str]]]:
        ranked = sorted(done, key=lambda d: d[2], reverse=True)
        candidates, parents, seen = [], [], set()

        def add(values, parent):
            key = _base.values_hash(self, values)
            if key in seen or key in self._tried_so_far:
                return
            seen.add(key)
            candidates.append(values)
            parents.append(parent)

        for trial_id, values, _ in ranked[: self.num_parents]:
            for child in one_step_neighbours(
                self.hyperparameters, values, self._rng
            ):
                add(child, [trial_id])
        for _ in range(self.num_random_candidates):
            add(_base.random_values(self.hyperparameters, self._rng), [])
        return candidates, parents

    # -- proposals in batches (`_refit`) ------------------------------------

    #: When to refit the predictor and what bounds a fit (`_refit`).
    refit_policy = _refit.RefitPolicy()

    def _in_region(self, trial_id: str, region: int) -> bool:
        """Whether a trial belongs to `region` (subclasses with regions)."""
        return True

    def _completed(self, end_order=None) -> list[tuple[str, dict, float]]:
        """`completed_rewards`, extended from the last call's (a chief
        serving many workers asks at every proposal)."""
        if end_order is not None:
            return completed_rewards(self, end_order)
        order, cache = self.end_order, self._done_cache
        if cache is None or cache[0] is not order or cache[1] > len(order):
            cache = self._done_cache = [order, 0, [], set()]
        _add_completed(self, order[cache[1] :], cache[2], cache[3])
        cache[1] = len(order)
        return list(cache[2])

    def _targets(self, rewards: np.ndarray) -> np.ndarray:
        """The predictor's targets for the rewards (`score_transform`)."""
        if self.score_transform == "rank":
            return normal_scores(rewards)
        return rewards

    def _fit_rows(self, x, targets, done) -> np.ndarray:
        """Indices of the completed trials the predictor is fitted on."""
        return np.arange(len(x))

    def _exhaustive_candidates(self):
        """(values, encodings, hashes) of every point not proposed yet, or None
        when the space is not finite or has over `exhaustive_limit`
        points."""
        encoder = self._get_encoder()  # Drops a stale enumeration.
        if (
            self._enumeration is None
            or self._enumeration.limit != self.exhaustive_limit
        ):
            self._enumeration = _candidates.SpaceEnumeration(
                self, self.exhaustive_limit
            )
        space = self._enumeration
        if not space.finite:
            return None
        index = space.unseen(self._tried_so_far)
        x = space.encodings(
            lambda points: np.stack([encoder.encode(v) for v in points])
        )
        return (
            [space.points[i] for i in index],
            x[index],
            [space.hashes[i] for i in index],
        )

    def _predicted_best(self, done, region: int = 0):
        with _one_blas_thread():
            values, origin = _refit.propose(self, done, region)
        if values is None:
            return self._unique_random(), {"origin": "random"}
        return values, origin

    def _fit_surrogate(self, x, y, seed):
        """The predictor fitted on encodings `x` and targets `y`."""
        raise NotImplementedError

    def _score(self, batch, rows, seed, observed, fresh):
        """Acquisition values of the pool's `rows` (larger is better).

        Args:
            batch: The `_refit.Batch` of the last fit.
            rows: Indices of the untried candidates in the pool.
            seed: The seed of this proposal's random draws.
            observed: `(row, target, completed)` of the pool's rows that
                completed (target: their score) or started (target: the
                liar's) since the fit.
            fresh: Whether the batch was fitted for this proposal.
        """
        raise NotImplementedError

    # -- state --------------------------------------------------------------

    def get_state(self) -> dict[str, Any]:
        state = super().get_state()
        state["refit_marks"] = {
            str(region): mark for region, mark in self._refit_marks.items()
        }
        return state

    def set_state(self, state: dict[str, Any]) -> None:
        # A search saved before `exhaustive_limit` existed used mutations,
        # and one saved before `cell_encoding` was kept resumes with the
        # encoding it started with.
        super().set_state(
            {
                "exhaustive_limit": 0,
                "cell_encoding": self.saved_cell_encoding,
                **state,
            }
        )
        self._encoder = None
        self._refit_marks = {
            int(region): mark
            for region, mark in state.get("refit_marks", {}).items()
        }
        self._batches = {}
