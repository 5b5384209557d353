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

from keras_nas._validation import check_number, check_positive_int
from keras_nas.tuners import _base, _oracle

__all__ = ["AgingEvolution", "AgingEvolutionOracle"]


class AgingEvolutionOracle(_oracle.SearchOracle):
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
        super().__init__(**_oracle.arguments_of(_oracle.SearchOracle, locals()))
        population_size = check_positive_int("population_size", population_size)
        if sample_size is None:
            sample_size = population_size
        sample_size = check_positive_int("sample_size", sample_size)
        num_mutations = check_positive_int("num_mutations", num_mutations)
        if sample_size > population_size:
            raise ValueError(
                "Expected `sample_size` <= `population_size` "
                f"({population_size}). Received: sample_size={sample_size}"
            )
        self.population_size = population_size
        self.sample_size = sample_size
        self.num_mutations = num_mutations
        self.crossover_rate = check_number(
            "crossover_rate", crossover_rate, 0, 1
        )

    _state_settings = (
        "population_size",
        "sample_size",
        "num_mutations",
        "crossover_rate",
    )

    # -- population ---------------------------------------------------------

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

    def _propose(self, trial_id: str):
        population = self.population
        running = len(self.ongoing_trials)
        if not population or len(population) + running < self.population_size:
            return self._unique_random(), {"origin": "random", "parents": []}
        return self._evolve(population)

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
            values = self._unique_random()
            origin, parents = "random", []
        return values, {"origin": origin, "parents": parents}

    def _mutate_unique(self, parent: dict[str, Any]) -> dict[str, Any] | None:
        hps = self.hyperparameters
        # 1. A few plain mutations (the common case: no collision).
        child = self._unique_mutation(parent, self.num_mutations, 3)
        if child is not None:
            return child
        # 2. The parent's whole one-step neighbourhood, in random order.
        if self.num_mutations == 1:
            child = self._unique_neighbour(parent)
            if child is not None:
                return child
        # 3. Larger jumps.
        num_decisions = len(_base.mutable_decisions(hps, parent))
        for radius in range(self.num_mutations + 1, num_decisions + 1):
            child = self._unique_mutation(parent, radius, 3 * radius)
            if child is not None:
                return child
        return None

    def _unique_mutation(self, parent, radius: int, attempts: int):
        return _base.first_unique(
            self,
            lambda: _base.mutate_values(
                self.hyperparameters, parent, self._rng, radius
            ),
            attempts,
        )

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

    def get_state(self) -> dict[str, Any]:
        state = super().get_state()
        # Informative: rebuilt from `end_order` and the trials.
        state["population"] = self.population
        return state


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
        oracle = _oracle.make_oracle(AgingEvolutionOracle, locals())
        super().__init__(oracle, hypermodel, estimator=estimator, **kwargs)
