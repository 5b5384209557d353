"""REINFORCE controller search as a keras-tuner oracle.

Zoph & Le, "Neural Architecture Search with Reinforcement Learning", ICLR
2017: a controller policy emits the architecture as a sequence of decisions
and is trained with the policy gradient (Williams, 1992) of the validation
score, using a moving-average baseline; ENAS (Pham et al., 2018) adds an
entropy bonus. See `keras_nas.tuners.controller` for the policies.
"""

from __future__ import annotations

import glob
import os
import zlib
from typing import Any

import keras_tuner
from keras_tuner.engine import trial as trial_module

from keras_nas._validation import check_positive_int
from keras_nas.tuners import _base, _oracle
from keras_nas.tuners import controller as controller_module

__all__ = ["Reinforce", "ReinforceOracle"]

_DEFAULT_LR = {"factorized": 0.2, "lstm": 0.01}


class ReinforceOracle(_oracle.SearchOracle):
    """Policy-gradient (REINFORCE) architecture search.

    Each trial is sampled from a controller policy that decides the active
    hyperparameters one after the other (so conditional scopes are handled:
    children are decided only when their parent activates them). When a
    trial ends, the controller takes one REINFORCE step with reward = the
    trial's score (negated for a `"min"` objective), advantage = reward minus
    an exponential moving average of past rewards (divided by a moving
    standard deviation if `normalize_advantage`), plus an entropy bonus. The
    updates are asynchronous: each trial updates the policy as it ends, so
    several workers never wait on each other and `IDLE` is never returned.

    It never proposes a point already proposed: the policy is sampled
    restricted to the branches of the decision tree that still hold an
    unvisited point (a `VisitedTree` rebuilt from the trials), so a converged
    policy proposes the most likely *new* point in one draw. Where binned
    `Int`/`Float` decisions make that impossible, a duplicate is redrawn up to
    `max_resamples` times, then a uniformly random unseen point is used; the
    search stops when the space is exhausted.

    State: the oracle's JSON (`oracle.json`) holds the RNG, the counters and
    the name of the controller weights file, written beside it
    (`reinforce_controller_<n>.bin`, weights + optimizer + baseline), so a
    search killed at any moment resumes exactly where it was.

    Args:
        objective: A string, `keras_tuner.Objective` or list of them.
        max_trials: Maximum number of trials.
        controller: `"factorized"` (default; independent softmax per
            decision, NumPy, fast) or `"lstm"` (the Zoph & Le / ENAS LSTM
            controller in Keras; TensorFlow or JAX backend).
        learning_rate: Adam step size of the controller. Defaults to 0.2 for
            `"factorized"` and 0.01 for `"lstm"`.
        baseline_decay: Decay of the moving-average baseline. Defaults to
            0.9.
        entropy_weight: Weight of the entropy bonus. Defaults to 0.01.
        temperature: Softmax temperature. Defaults to 1.
        normalize_advantage: Divide the advantage by a moving reward standard
            deviation (scale-free learning rate). Defaults to True.
        max_bins: Bins for Int/Float hyperparameters with more values.
        controller_kwargs: Extra arguments of the controller class (e.g.
            `{"units": 64, "tanh_constant": 2.5}` for `"lstm"`).
        max_resamples: Policy samples tried before falling back to a random
            unseen point. Defaults to 100.
        seed: Integer seed; the same seed gives the same trials.
        hyperparameters, allow_new_entries, tune_new_entries,
        max_retries_per_trial, max_consecutive_failed_trials: As in
            `keras_tuner.Oracle`.

    Example:

    ```python
    oracle = ReinforceOracle(objective="val_accuracy", max_trials=100, seed=1)
    tuner = keras_nas.tuners.NasTuner(oracle, hypermodel=space)
    ```
    """

    def __init__(
        self,
        objective: Any = None,
        max_trials: int = 100,
        controller: str = "factorized",
        learning_rate: float | None = None,
        baseline_decay: float = 0.9,
        entropy_weight: float = 0.01,
        temperature: float = 1.0,
        normalize_advantage: bool = True,
        max_bins: int = 10,
        controller_kwargs: dict | None = None,
        max_resamples: int = 100,
        seed: int | None = None,
        hyperparameters: keras_tuner.HyperParameters | None = None,
        allow_new_entries: bool = True,
        tune_new_entries: bool = True,
        max_retries_per_trial: int = 0,
        max_consecutive_failed_trials: int = 3,
    ):
        super().__init__(**_oracle.arguments_of(_oracle.SearchOracle, locals()))
        if controller not in _DEFAULT_LR:
            raise ValueError(
                f"Expected `controller` in {sorted(_DEFAULT_LR)}. "
                f"Received: controller={controller!r}"
            )
        if learning_rate is None:
            learning_rate = _DEFAULT_LR[controller]
        self.controller_kind = controller
        self.max_resamples = check_positive_int("max_resamples", max_resamples)
        self.controller_config = dict(
            learning_rate=float(learning_rate),
            baseline_decay=float(baseline_decay),
            entropy_weight=float(entropy_weight),
            temperature=float(temperature),
            normalize_advantage=bool(normalize_advantage),
            max_bins=int(max_bins),
            seed=zlib.crc32(f"controller/{self.seed}".encode()),
            **(controller_kwargs or {}),
        )
        # Validate the arguments now rather than at the first trial.
        controller_module.get_controller(
            controller, keras_tuner.HyperParameters(), **self.controller_config
        )
        self._controller = None
        self._controller_version = 0
        self._saved_controller = None
        self._visited = None
        self._visited_size = 0

    _state_settings = ("controller_kind", "controller_config", "max_resamples")

    # -- controller ---------------------------------------------------------

    @property
    def controller(self) -> controller_module.Controller:
        """The controller policy (built on first use)."""
        if self._controller is None:
            self._controller = controller_module.get_controller(
                self.controller_kind,
                self.hyperparameters,
                **self.controller_config,
            )
        else:
            self._controller.sync_space(self.hyperparameters)
        return self._controller

    def _learn(self, trial) -> None:
        reward = _base.score_to_maximize(self, trial.score)
        if reward is None:
            return
        controller = self.controller
        trace = controller.trace_from_values(trial.hyperparameters.values)
        controller.update([trace], [reward])
        self._controller_version += 1

    # -- oracle API ---------------------------------------------------------

    def _visited_tree(self) -> controller_module.VisitedTree:
        # Derived from the trials (so never saved); rebuilt when the space
        # gained decisions.
        controller = self.controller
        if self._visited is None or self._visited_size != len(
            controller.decisions
        ):
            self._visited = controller_module.VisitedTree()
            self._visited_size = len(controller.decisions)
            for trial in self.trials.values():
                controller.visit(self._visited, trial.hyperparameters.values)
        return self._visited

    def _propose(self, trial_id: str):
        # Origin "policy", or "random" (the fallback after duplicates).
        controller = self.controller
        visited = self._visited_tree()
        if visited.full:
            return None, {}
        origin = "policy"
        proposal = _base.first_unique(
            self,
            lambda: controller.sample(self._rng, visited)[0],
            self.max_resamples,
        )
        if proposal is None:
            origin = "random"
            proposal = _base.first_unique(
                self,
                lambda: _base.random_values(self.hyperparameters, self._rng),
                self._max_collisions + 1,
            )
        if proposal is not None:
            controller.visit(visited, proposal)
        return proposal, {"origin": origin}

    @keras_tuner.synchronized
    def end_trial(self, trial) -> None:
        # Learn before keras-tuner saves the state, so that `oracle.json` and
        # the controller file always describe the same moment.
        stored = self.trials[trial.trial_id]
        if trial.status == trial_module.TrialStatus.COMPLETED:
            stored.hyperparameters = trial.hyperparameters
            self.score_trial(stored)
            self._learn(stored)
        super().end_trial(trial)

    # -- state --------------------------------------------------------------

    def _controller_fname(self, version: int) -> str:
        return os.path.join(
            self._project_dir, f"reinforce_controller_{version}.bin"
        )

    def get_state(self) -> dict[str, Any]:
        state = super().get_state()
        state["controller_version"] = self._controller_version
        state["controller_file"] = (
            os.path.basename(self._controller_fname(self._controller_version))
            if self._controller is not None
            else None
        )
        return state

    def set_state(self, state: dict[str, Any]) -> None:
        super().set_state(state)
        if "origins" in state:  # Older projects: origins, no lineage.
            self._lineage = {
                k: {"origin": v} for k, v in state["origins"].items()
            }
        self.controller_config = dict(self.controller_config)
        self._controller_version = state["controller_version"]
        self._controller = None
        self._visited = None
        self._saved_controller = None
        if state["controller_file"] is not None:
            path = os.path.join(self._project_dir, state["controller_file"])
            self.controller.load(path)
            self._saved_controller = path

    def save(self) -> None:
        current = None
        if self._controller is not None:
            current = self._controller_fname(self._controller_version)
            if current != self._saved_controller:
                self._controller.save(current)
        super().save()  # `oracle.json`, atomically.
        # The previous weights file is no longer referenced by `oracle.json`.
        if self._saved_controller not in (None, current):
            if os.path.exists(self._saved_controller):
                os.remove(self._saved_controller)
        self._saved_controller = current

    def _account_reconciled_trial(self, trial) -> None:
        # A trial that completed after the last saved state.
        self._learn(trial)

    def reload(self) -> None:
        super().reload()  # Reconciles the trials (`ResumableOracle`).
        # Weight files left by a crash between two saves.
        pattern = os.path.join(self._project_dir, "reinforce_controller_*.bin")
        for path in glob.glob(pattern):
            if path != self._saved_controller:
                os.remove(path)


class Reinforce(_base.NasTuner):
    """Tuner running `ReinforceOracle` (Zoph & Le, 2017).

    Args:
        hypermodel: A `keras_tuner.HyperModel` (e.g. a `keras_nas.spaces`
            space) or a function `hp -> compiled keras.Model`.
        objective: The objective, e.g. `"val_accuracy"`.
        max_trials: Maximum number of trials.
        controller, learning_rate, baseline_decay, entropy_weight,
        temperature, normalize_advantage, max_bins, controller_kwargs,
        max_resamples: See `ReinforceOracle`.
        seed: Integer seed.
        hyperparameters, tune_new_entries, allow_new_entries,
        max_retries_per_trial, max_consecutive_failed_trials: As in
            `keras_tuner.RandomSearch`.
        estimator: Optional performance estimator (see `NasTuner`).
        **kwargs: Passed to `keras_tuner.Tuner` (`directory`,
            `project_name`, `overwrite`, ...).

    Example:

    ```python
    tuner = Reinforce(
        build_model, objective="val_accuracy", max_trials=30, seed=1,
        directory="runs", project_name="reinforce",
    )
    tuner.search(x, y, epochs=2, validation_split=0.2)
    ```
    """

    def __init__(
        self,
        hypermodel: Any = None,
        objective: Any = None,
        max_trials: int = 100,
        controller: str = "factorized",
        learning_rate: float | None = None,
        baseline_decay: float = 0.9,
        entropy_weight: float = 0.01,
        temperature: float = 1.0,
        normalize_advantage: bool = True,
        max_bins: int = 10,
        controller_kwargs: dict | None = None,
        max_resamples: int = 100,
        seed: int | None = None,
        hyperparameters: keras_tuner.HyperParameters | None = None,
        tune_new_entries: bool = True,
        allow_new_entries: bool = True,
        max_retries_per_trial: int = 0,
        max_consecutive_failed_trials: int = 3,
        estimator: Any = None,
        **kwargs: Any,
    ):
        oracle = _oracle.make_oracle(ReinforceOracle, locals())
        super().__init__(oracle, hypermodel, estimator=estimator, **kwargs)
