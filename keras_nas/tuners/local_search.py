"""Local search as a keras-tuner oracle.

White, Nolen, Zela, Neiswanger & Savani, "Exploring the Loss Landscape in
Neural Architecture Search", UAI 2021: start from the best of a few random
architectures; evaluate its whole one-step neighbourhood (every
architecture one decision away); move to the best neighbour if it improves,
else the search sits in a local optimum and restarts from a random
architecture. The paper finds this simple method among the strongest on
NAS-Bench-201.
"""

from __future__ import annotations

from typing import Any

import keras_tuner
from keras_tuner.engine import trial as trial_module

from keras_nas._validation import check_positive_int
from keras_nas.tuners import _base, _model_based, _oracle

__all__ = ["LocalSearch", "LocalSearchOracle"]

_RUNNING = (trial_module.TrialStatus.RUNNING, trial_module.TrialStatus.IDLE)
_RESTARTS = ("random", "best_unvisited")


class LocalSearchOracle(_oracle.SearchOracle):
    """Best-improvement local search with random restarts (White et al.,
    UAI 2021).

    The first `num_initial_trials` trials are random; the best becomes the
    centre. The centre's one-step neighbours (`_model_based.
    one_step_neighbours`: every other value of one active decision; a few
    random steps along a continuous range) are proposed in random order;
    neighbours proposed before are not run again, their score is reused.
    When the whole neighbourhood is known, the best neighbour becomes the
    centre if it beats it; otherwise the centre is a local optimum and the
    search restarts: from one new random trial (`restart="random"`), or it
    continues from the best trial whose neighbourhood was not walked yet
    (`restart="best_unvisited"`, the variant of White et al. that keeps
    what was learnt; a random trial once every trial was a centre).

    With several workers (keras-tuner's distributed mode) the neighbours
    are handed out in parallel; while the last ones still run, other
    workers get random trials instead of waiting, so the oracle never
    answers `IDLE`. The state (centre, queued neighbours, RNG) is saved
    with the oracle and resumes exactly.

    Args:
        objective: A string, `keras_tuner.Objective` or list of them.
        max_trials: Maximum number of trials.
        num_initial_trials: Random trials whose best is the first centre.
            Defaults to 10, as NASLib's local search: a better start than
            one random point for a tenth of a 100-trial budget.
        restart: What follows a local optimum: "random" or
            "best_unvisited" (see above). Defaults to "random".
        seed: Integer seed; the same seed gives the same trials (0 is a
            seed too).
        hyperparameters, allow_new_entries, tune_new_entries,
        max_retries_per_trial, max_consecutive_failed_trials: As in
            `keras_tuner.Oracle`.

    Example:

    ```python
    oracle = LocalSearchOracle(objective="val_accuracy", max_trials=50,
                               seed=1)
    tuner = keras_nas.tuners.NasTuner(oracle, hypermodel=space)
    ```
    """

    def __init__(
        self,
        objective: Any = None,
        max_trials: int = 100,
        num_initial_trials: int = 10,
        restart: str = "random",
        seed: int | None = None,
        hyperparameters: keras_tuner.HyperParameters | None = None,
        allow_new_entries: bool = True,
        tune_new_entries: bool = True,
        max_retries_per_trial: int = 0,
        max_consecutive_failed_trials: int = 3,
    ):
        super().__init__(**_oracle.arguments_of(_oracle.SearchOracle, locals()))
        self.num_initial_trials = check_positive_int(
            "num_initial_trials", num_initial_trials
        )
        if restart not in _RESTARTS:
            raise ValueError(
                f"Expected `restart` to be one of {list(_RESTARTS)}. "
                f"Received: restart={restart!r}"
            )
        self.restart = restart
        self._centres: list[str] = []
        self._centre: str | None = None
        self._queue: list[dict[str, Any]] = []
        self._round: list[str] = []
        self._start: list[str] = []
        self._start_size = self.num_initial_trials
        self._restarts = 0

    _state_settings = ("num_initial_trials", "restart")

    # -- helpers ------------------------------------------------------------

    def _running(self, trial_ids: list[str]) -> bool:
        return any(
            t in self.trials and self.trials[t].status in _RUNNING
            for t in trial_ids
        )

    def _best(self, trial_ids: list[str]) -> str | None:
        scored = [t for t in trial_ids if self._reward(t) is not None]
        return max(scored, key=self._reward) if scored else None

    def _move_to(self, trial_id: str) -> None:
        self._centre = trial_id
        self._centres.append(trial_id)
        values = self.trials[trial_id].hyperparameters.values
        neighbours = _model_based.one_step_neighbours(
            self.hyperparameters, dict(values), self._rng
        )
        order = self._rng.permutation(len(neighbours))
        self._queue = [neighbours[int(k)] for k in order]
        self._round = []

    # -- proposals ----------------------------------------------------------

    def _propose(self, trial_id: str):
        hash_to_id = {h: t for t, h in self._id_to_hash.items()}
        # Each pass either proposes or changes the centre; restarts propose.
        while True:
            if self._centre is None:
                if len(self._start) < self._start_size:
                    self._start.append(trial_id)
                    return self._unique_random(), {"origin": "start"}
                if self._running(self._start):
                    return self._unique_random(), {"origin": "random"}
                best = self._best(self._start)
                if best is None:  # Every start trial failed: draw again.
                    self._start, self._start_size = [], 1
                    continue
                self._move_to(best)
            while self._queue:
                values = self._queue.pop(0)
                known = hash_to_id.get(_base.values_hash(self, values))
                if known is not None:
                    self._round.append(known)
                    continue
                self._round.append(trial_id)
                parents = [self._centre]
                return values, {"origin": "neighbour", "parents": parents}
            if self._running(self._round):
                return self._unique_random(), {"origin": "random"}
            best = self._best(self._round)
            centre_reward = self._reward(self._centre)
            if best is not None and (
                centre_reward is None or self._reward(best) > centre_reward
            ):
                self._move_to(best)
                continue
            # A local optimum: continue from the best trial whose
            # neighbourhood was not walked yet, or restart from one random
            # architecture.
            if self.restart == "best_unvisited":
                visited = set(self._centres)
                best = self._best(
                    [t for t in self.end_order if t not in visited]
                )
                if best is not None:
                    self._restarts += 1
                    self._move_to(best)
                    continue
            self._centre, self._start, self._start_size = None, [], 1
            self._restarts += 1

    # -- state --------------------------------------------------------------

    def get_state(self) -> dict[str, Any]:
        state = super().get_state()
        state.update(
            {
                "centre": self._centre,
                "queue": self._queue,
                "round": self._round,
                "start": self._start,
                "start_size": self._start_size,
                "restarts": self._restarts,
                "centres": self._centres,
            }
        )
        return state

    def set_state(self, state: dict[str, Any]) -> None:
        super().set_state(state)
        self._centre = state["centre"]
        self._queue = [dict(v) for v in state["queue"]]
        self._round = list(state["round"])
        self._start = list(state["start"])
        self._start_size = state["start_size"]
        self._restarts = state["restarts"]
        self._centres = list(state.get("centres", []))


class LocalSearch(_base.NasTuner):
    """Tuner running `LocalSearchOracle` (White et al., UAI 2021).

    Args:
        hypermodel: A `keras_tuner.HyperModel` (e.g. a `keras_nas.spaces`
            space) or a function `hp -> compiled keras.Model`.
        objective: The objective, e.g. `"val_accuracy"`.
        max_trials: Maximum number of trials.
        num_initial_trials, restart: See `LocalSearchOracle`.
        seed: Integer seed.
        hyperparameters, tune_new_entries, allow_new_entries,
        max_retries_per_trial, max_consecutive_failed_trials: As in
            `keras_tuner.RandomSearch`.
        estimator: Optional performance estimator (see `NasTuner`).
        **kwargs: Passed to `keras_tuner.Tuner` (`directory`,
            `project_name`, `overwrite`, ...).

    Example:

    ```python
    tuner = LocalSearch(
        keras_nas.spaces.CellSearchSpace(), objective="val_accuracy",
        max_trials=30, seed=1, directory="runs", project_name="local",
    )
    tuner.search(x, y, epochs=2, validation_split=0.2)
    ```
    """

    def __init__(
        self,
        hypermodel: Any = None,
        objective: Any = None,
        max_trials: int = 100,
        num_initial_trials: int = 10,
        restart: str = "random",
        seed: int | None = None,
        hyperparameters: keras_tuner.HyperParameters | None = None,
        tune_new_entries: bool = True,
        allow_new_entries: bool = True,
        max_retries_per_trial: int = 0,
        max_consecutive_failed_trials: int = 3,
        estimator: Any = None,
        **kwargs: Any,
    ):
        oracle = _oracle.make_oracle(LocalSearchOracle, locals())
        super().__init__(oracle, hypermodel, estimator=estimator, **kwargs)
