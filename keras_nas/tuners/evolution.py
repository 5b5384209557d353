"""Aging (regularized) evolution as a keras-tuner oracle.

Real, Aggarwal, Huang & Le, "Regularized Evolution for Image Classifier
Architecture Search", AAAI 2019, Algorithm 1: fill a population with random
architectures; then repeatedly sample `sample_size` members uniformly, copy
the best of the sample, mutate one hyperparameter of the copy, evaluate it,
add it to the population and discard the *oldest* member.
"""

from __future__ import annotations

from typing import Any

import keras_tuner
from keras_tuner.engine import trial as trial_module

from keras_nas._validation import check_objective, check_positive_int
from keras_nas.tuners import _base, _persistence, _results

__all__ = ["AgingEvolution", "AgingEvolutionOracle"]


class AgingEvolutionOracle(
    _results.FiniteBestTrials, _persistence.ResumableOracle, keras_tuner.Oracle
):
    """Regularized evolution (Real et al., 2019, Algorithm 1).

    Works on any keras-tuner space. A mutation changes one active
    hyperparameter (for the cell spaces of `keras_nas.spaces`, an op or an
    input of a node: the paper's "op" and "hidden state" mutations); a
    changed parent re-draws the conditional children it activates.

    The oracle is asynchronous, as in the paper's distributed setting: while
    the population plus the running trials are fewer than `population_size`
    it proposes random trials, afterwards it evolves the completed ones, so
    several workers never wait on each other and it never answers `IDLE`.
    The population is the `population_size` most recently completed trials
    (failed trials and non-finite scores are skipped), so it is rebuilt
    exactly from keras-tuner's own records on reload.

    It never proposes a point already proposed: when a mutation of the
    parent was tried before, it re-draws it, then walks the parent's whole
    one-step neighbourhood in random order, then mutates more
    hyperparameters at once, then falls back to random points; it stops the
    search when the space looks exhausted.

    Args:
        objective: A string, `keras_tuner.Objective` or list of them (see
            `keras_tuner.Oracle`).
        max_trials: Maximum number of trials.
        population_size: Number of trials in the population (the paper's P).
            Defaults to 10.
        sample_size: Members sampled for each tournament (the paper's S).
            Defaults to `population_size`: the best of the population is
            mutated.
        num_mutations: Hyperparameters changed per mutation. Defaults to 1.
        crossover_rate: Probability of building the child by uniform
            crossover of the two best sampled members before mutating it.
            Defaults to 0 (the paper's algorithm has no crossover).
        seed: Integer seed; the same seed gives the same trials.
        hyperparameters, allow_new_entries, tune_new_entries,
        max_retries_per_trial, max_consecutive_failed_trials: As in
            `keras_tuner.Oracle`.

    Example:

    ```python
    oracle = AgingEvolutionOracle(
        objective="val_accuracy", max_trials=100, seed=1
    )
    tuner = keras_nas.tuners.NasTuner(oracle, hypermodel=space)
    ```

    Defaults: the paper's P=100, S=25 suit thousands of trials; for the
    budgets typical of keras-tuner (tens to a few hundred trials) a small
    population and a greedy tournament (S = P: always mutate the best of the
    living population) spend few trials on random initialisation and climb
    quickly, like the local search that White et al. ("Exploring the Loss
    Landscape in Neural Architecture Search", UAI 2021) found strong, while
    aging still drops a stale parent after P newer trials so the search
    moves on instead of stalling. The sweep behind the default (on the
    NAS-Bench-201 table) is in `benchmarks/RESULTS.md`, "Aging evolution:
    population and tournament sweep".
    """

    def __init__(
        self,
        objective: Any = None,
        max_trials: int = 100,
        population_size: int = 10,
        sample_size: int | None = None,
        num_mutations: int = 1,
        crossover_rate: float = 0.0,
        seed: int | None = None,
        hyperparameters: keras_tuner.HyperParameters | None = None,
        allow_new_entries: bool = True,
        tune_new_entries: bool = True,
        max_retries_per_trial: int = 0,
        max_consecutive_failed_trials: int = 3,
    ):
        super().__init__(
            objective=check_objective(objective),
            max_trials=check_positive_int("max_trials", max_trials),
            hyperparameters=hyperparameters,
            allow_new_entries=allow_new_entries,
            tune_new_entries=tune_new_entries,
            seed=seed,
            max_retries_per_trial=max_retries_per_trial,
            max_consecutive_failed_trials=max_consecutive_failed_trials,
        )
        _base.set_seed(self, seed)
        _check_int("population_size", population_size, 1)
        if sample_size is None:
            sample_size = population_size
        _check_int("sample_size", sample_size, 1)
        _check_int("num_mutations", num_mutations, 1)
        if sample_size > population_size:
            raise ValueError(
                "Expected `sample_size` <= `population_size` "
                f"({population_size}). Received: sample_size={sample_size}"
            )
        if not 0.0 <= crossover_rate <= 1.0:
            raise ValueError(
                "Expected `crossover_rate` in [0, 1]. "
                f"Received: crossover_rate={crossover_rate!r}"
            )
        self.population_size = int(population_size)
        self.sample_size = int(sample_size)
        self.num_mutations = int(num_mutations)
        self.crossover_rate = float(crossover_rate)
        self._rng = _base.make_rng(self.seed)
        # trial_id -> {"origin": "random"|"mutation"|..., "parents": [...]}
        self._lineage: dict[str, dict[str, Any]] = {}

    # -- population ---------------------------------------------------------

    def _reward(self, trial_id: str) -> float | None:
        trial = self.trials.get(trial_id)
        return None if trial is None else _base.trial_reward(self, trial)

    @property
    def population(self) -> list[str]:
        """Trial ids of the population, oldest first.

        The `population_size` most recently completed trials with a finite
        score, in completion order (aging: the oldest leaves first).
        """
        members, seen = [], set()
        for trial_id in reversed(self.end_order):
            # A trial re-run after a reload appears twice in `end_order`.
            if trial_id not in seen and self._reward(trial_id) is not None:
                seen.add(trial_id)
                members.append(trial_id)
                if len(members) == self.population_size:
                    break
        return members[::-1]

    # -- proposals ----------------------------------------------------------

    def populate_space(self, trial_id: str) -> dict[str, Any]:
        population = self.population
        running = len(self.ongoing_trials)
        if not population or len(population) + running < self.population_size:
            values = self._new_random()
            origin = {"origin": "random", "parents": []}
        else:
            values, origin = self._evolve(population)
        if values is None:
            return {"status": trial_module.TrialStatus.STOPPED, "values": None}
        self._lineage[trial_id] = origin
        return {"status": trial_module.TrialStatus.RUNNING, "values": values}

    def _new_random(self) -> dict[str, Any] | None:
        return _base.unique_random_values(self, self._rng, self._max_collisions)

    def _tournament(self, population: list[str]) -> list[str]:
        size = min(self.sample_size, len(population))
        picks = self._rng.choice(len(population), size=size, replace=False)
        # Best first; ties go to the younger member.
        sample = [population[int(i)] for i in sorted(picks, reverse=True)]
        return sorted(sample, key=self._reward, reverse=True)

    def _evolve(self, population: list[str]):
        ranked = self._tournament(population)
        parent = self.trials[ranked[0]].hyperparameters.values
        parents = [ranked[0]]
        origin = "mutation"
        if (
            self.crossover_rate > 0.0
            and len(ranked) > 1
            and self._rng.random() < self.crossover_rate
        ):
            other = self.trials[ranked[1]].hyperparameters.values
            parent = _base.crossover_values(
                self.hyperparameters, parent, other, self._rng
            )
            parents.append(ranked[1])
            origin = "crossover"
        values = self._mutate_unique(parent)
        if values is None:
            values = self._new_random()
            origin, parents = "random", []
        return values, {"origin": origin, "parents": parents}

    def _mutate_unique(self, parent: dict[str, Any]) -> dict[str, Any] | None:
        hps = self.hyperparameters
        # 1. A few plain mutations (the common case: no collision).
        for _ in range(3):
            child = _base.mutate_values(
                hps, parent, self._rng, self.num_mutations
            )
            if not _base.is_duplicate(self, child):
                return child
        # 2. The parent's whole one-step neighbourhood, in random order.
        if self.num_mutations == 1:
            child = self._unique_neighbour(parent)
            if child is not None:
                return child
        # 3. Larger jumps.
        num_decisions = len(_base.mutable_decisions(hps, parent))
        for radius in range(self.num_mutations + 1, num_decisions + 1):
            for _ in range(3 * radius):
                child = _base.mutate_values(hps, parent, self._rng, radius)
                if not _base.is_duplicate(self, child):
                    return child
        return None

    def _unique_neighbour(self, parent: dict[str, Any]) -> dict | None:
        hps = self.hyperparameters
        parent = _base.random_values(hps, self._rng, parent)
        moves = []
        for hp in _base.mutable_decisions(hps, parent):
            candidates = _base.candidate_values(hp)
            if candidates is None:
                moves.extend((hp, None) for _ in range(5))
            else:
                moves.extend(
                    (hp, v) for v in candidates if v != parent[hp.name]
                )
        for k in self._rng.permutation(len(moves)):
            hp, value = moves[int(k)]
            child = dict(parent)
            if value is None:
                value = _base.mutate_value(hp, parent[hp.name], self._rng)
            child[hp.name] = value
            child = _base.random_values(hps, self._rng, child)
            if not _base.is_duplicate(self, child):
                return child
        return None

    def trial_parents(self, trial_id: str) -> list[str]:
        """Ids of the trials `trial_id` was bred from (empty if random).

        The mutated parent first (a crossover's second parent after it).
        `keras_nas.estimation.WeightInheritance` inherits their weights.
        """
        return list(self._lineage.get(trial_id, {}).get("parents", []))

    # -- state --------------------------------------------------------------

    def get_state(self) -> dict[str, Any]:
        state = super().get_state()
        state.update(
            {
                "population_size": self.population_size,
                "sample_size": self.sample_size,
                "num_mutations": self.num_mutations,
                "crossover_rate": self.crossover_rate,
                "rng": _base.rng_to_json(self._rng),
                "lineage": self._lineage,
                # Informative: rebuilt from `end_order` and the trials.
                "population": self.population,
            }
        )
        return state

    def set_state(self, state: dict[str, Any]) -> None:
        super().set_state(state)
        self.population_size = state["population_size"]
        self.sample_size = state["sample_size"]
        self.num_mutations = state["num_mutations"]
        self.crossover_rate = state["crossover_rate"]
        self._rng = _base.rng_from_json(state["rng"])
        self._lineage = dict(state["lineage"])


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(
            f"Expected `{name}` to be an integer >= {minimum}. "
            f"Received: {name}={value!r}"
        )


class AgingEvolution(_base.NasTuner):
    """Tuner running `AgingEvolutionOracle` (Real et al., 2019).

    Args:
        hypermodel: A `keras_tuner.HyperModel` (e.g. a `keras_nas.spaces`
            space) or a function `hp -> compiled keras.Model`.
        objective: The objective, e.g. `"val_accuracy"`.
        max_trials: Maximum number of trials.
        population_size, sample_size, num_mutations, crossover_rate: See
            `AgingEvolutionOracle`.
        seed: Integer seed.
        hyperparameters, tune_new_entries, allow_new_entries,
        max_retries_per_trial, max_consecutive_failed_trials: As in
            `keras_tuner.RandomSearch`.
        estimator: Optional performance estimator (see `NasTuner`).
        **kwargs: Passed to `keras_tuner.Tuner` (`directory`,
            `project_name`, `overwrite`, ...).

    Example:

    ```python
    tuner = AgingEvolution(
        build_model, objective="val_accuracy", max_trials=30, seed=1,
        directory="runs", project_name="evolution",
    )
    tuner.search(x, y, epochs=2, validation_split=0.2)
    ```
    """

    def __init__(
        self,
        hypermodel: Any = None,
        objective: Any = None,
        max_trials: int = 100,
        population_size: int = 10,
        sample_size: int | None = None,
        num_mutations: int = 1,
        crossover_rate: float = 0.0,
        seed: int | None = None,
        hyperparameters: keras_tuner.HyperParameters | None = None,
        tune_new_entries: bool = True,
        allow_new_entries: bool = True,
        max_retries_per_trial: int = 0,
        max_consecutive_failed_trials: int = 3,
        estimator: Any = None,
        **kwargs: Any,
    ):
        oracle = AgingEvolutionOracle(
            objective=objective,
            max_trials=max_trials,
            population_size=population_size,
            sample_size=sample_size,
            num_mutations=num_mutations,
            crossover_rate=crossover_rate,
            seed=seed,
            hyperparameters=hyperparameters,
            tune_new_entries=tune_new_entries,
            allow_new_entries=allow_new_entries,
            max_retries_per_trial=max_retries_per_trial,
            max_consecutive_failed_trials=max_consecutive_failed_trials,
        )
        super().__init__(oracle, hypermodel, estimator=estimator, **kwargs)
