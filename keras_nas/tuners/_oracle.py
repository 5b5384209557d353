"""The base class of the keras-nas search oracles, and their thin tuners.

A search strategy is a `SearchOracle` subclass that implements
`_propose(trial_id) -> (values, origin)` and, where it needs more than the
settings, the RNG and the lineage, extends `get_state`/`set_state`. The
base holds what every strategy shares, written once:

- the constructor: keras-tuner's arguments in keras-tuner's order,
  `objective` and `max_trials` checked (`keras_nas._validation`), `seed`
  checked and kept even when 0 (`_base.set_seed`), and the strategy's
  random stream `self._rng` made from it;
- `populate_space`: a proposal of `None` stops the search (the space is
  spent), else the trial runs and its origin (`{"origin": ..., "parents":
  [...]}`) is recorded in the lineage (`trial_parents`);
- `get_state`/`set_state`: the settings named in `_state_settings`, the RNG
  (so a reloaded oracle continues the same stream) and the lineage;
- crash-safe saving and reloading (`_persistence.ResumableOracle`) and
  best trials that never rank a diverged one (`_results.FiniteBestTrials`);
- `_reward(trial_id)`, `_unique_random()` for the helpers of `_base`.

`arguments_of` and `make_oracle` pass arguments on (to the base oracle,
from a tuner to its oracle) without listing them again.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any, ClassVar

import keras_tuner
from keras_tuner.engine import trial as trial_module

from keras_nas._validation import check_objective, check_positive_int
from keras_nas.tuners import _base, _persistence, _results

__all__ = [
    "SearchOracle",
    "SharedSpaceHyperParameters",
    "arguments_of",
    "make_oracle",
]


class SharedSpaceHyperParameters(keras_tuner.HyperParameters):
    """An oracle's space whose `copy()` shares the hyperparameter objects.

    keras-tuner copies the oracle's space for every trial it creates, by a
    round trip through every hyperparameter's config (a Keras
    deserialisation each: ~1/6 of a chief's CPU per trial at 34
    hyperparameters). The objects are definitions nobody changes after
    they are declared, so the copy here (a plain `HyperParameters`, with
    its own lists and values) holds the same ones.
    """

    def copy(self) -> keras_tuner.HyperParameters:
        new = keras_tuner.HyperParameters()
        for hp in self._space:
            new._hps[hp.name].append(hp)
            new._space.append(hp)
        new.values = dict(self.values)
        return new


class SearchOracle(
    _results.FiniteBestTrials, _persistence.ResumableOracle, keras_tuner.Oracle
):
    """Base of the keras-nas search oracles (see the module docstring).

    Subclasses take keras-tuner's arguments in keras-tuner's order
    (`objective`, `max_trials`, their own, then `seed`, `hyperparameters`,
    ...), call `super().__init__(**arguments_of(SearchOracle, locals()))`
    first, then check and set their own settings, and implement
    `_propose`.

    Args:
        objective, max_trials, seed, hyperparameters, allow_new_entries,
        tune_new_entries, max_retries_per_trial,
        max_consecutive_failed_trials: As in `keras_tuner.Oracle`; `seed`
            is an integer in [0, 2**32) or None, and 0 is a seed too.
    """

    #: Names of the settings (attributes set from the constructor's
    #: arguments) that `get_state` saves and `set_state` restores.
    _state_settings: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        objective: Any = None,
        max_trials: int = 100,
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
        self._rng = _base.make_rng(self.seed)
        # trial_id -> {"origin": "random"|"mutation"|..., "parents": [...]}
        self._lineage: dict[str, dict[str, Any]] = {}

    @property
    def hyperparameters(self) -> keras_tuner.HyperParameters:
        """The search space (its `copy()` shares the definitions)."""
        return self._search_space

    @hyperparameters.setter
    def hyperparameters(self, value: keras_tuner.HyperParameters) -> None:
        if type(value) is keras_tuner.HyperParameters:
            value.__class__ = SharedSpaceHyperParameters
        self._search_space = value

    # -- proposals ----------------------------------------------------------

    def populate_space(self, trial_id: str) -> dict[str, Any]:
        values, origin = self._propose(trial_id)
        if values is None:
            return {"status": trial_module.TrialStatus.STOPPED, "values": None}
        self._lineage[trial_id] = origin
        return {"status": trial_module.TrialStatus.RUNNING, "values": values}

    def _propose(
        self, trial_id: str
    ) -> tuple[dict[str, Any] | None, dict[str, Any]]:
        """The values of trial `trial_id` (None: the space is spent) and
        its origin, `{"origin": str, "parents": [trial ids]}`."""
        raise NotImplementedError

    def _unique_random(self) -> dict[str, Any] | None:
        """Random values never proposed before (`None`: none are left)."""
        return _base.unique_random_values(self, self._rng, self._max_collisions)

    def _reward(self, trial_id: str) -> float | None:
        """The maximize-direction score of a completed trial, else None."""
        trial = self.trials.get(trial_id)
        return None if trial is None else _base.trial_reward(self, trial)

    def trial_parents(self, trial_id: str) -> list[str]:
        """Ids of the trials `trial_id` was derived from (empty if none).

        The mutated parent first (a crossover's second parent after it).
        `keras_nas.estimation.WeightInheritance` inherits their weights.
        """
        return list(self._lineage.get(trial_id, {}).get("parents", []))

    # -- state --------------------------------------------------------------

    def get_state(self) -> dict[str, Any]:
        state = super().get_state()
        for name in self._state_settings:
            state[name] = getattr(self, name)
        state["rng"] = _base.rng_to_json(self._rng)
        state["lineage"] = self._lineage
        return state

    def set_state(self, state: dict[str, Any]) -> None:
        super().set_state(state)
        for name in self._state_settings:
            setattr(self, name, state[name])
        self._rng = _base.rng_from_json(state["rng"])
        self._lineage = dict(state.get("lineage", {}))


def arguments_of(cls: Any, namespace: Mapping[str, Any]) -> dict[str, Any]:
    """The entries of `namespace` that `cls` (a class or function) takes.

    An oracle passes keras-tuner's arguments on with
    `super().__init__(**arguments_of(SearchOracle, locals()))`, and a thin
    tuner, which lists its oracle's arguments in its own signature (for
    the reader and the documentation), builds its oracle with
    `make_oracle(oracle_class, locals())`: no argument can be forgotten or
    misspelt on the way.
    """
    names = inspect.signature(cls).parameters
    return {name: namespace[name] for name in names if name in namespace}


def make_oracle(oracle_class: type, arguments: Mapping[str, Any]) -> Any:
    """`oracle_class` built with the entries of `arguments` it takes."""
    return oracle_class(**arguments_of(oracle_class, arguments))
