"""Shared machinery for the keras-nas search strategies.

Every strategy in `keras_nas.tuners` is a `keras_tuner.Oracle` subclass that
works on any keras-tuner `HyperParameters` space (`Choice`, `Int`, `Float`,
`Boolean`, `Fixed` and conditional scopes). This module holds what they
share:

- RNG state to and from JSON (`rng_to_json`, `rng_from_json`), so that an
  oracle's `get_state()` holds its random stream and resumes it exactly.
- The space as an ordered sequence of *decisions* (`active_decisions`,
  `sequential_values`): hyperparameters are decided in the order of
  `HyperParameters.space` (keras-tuner keeps parents before their conditional
  children), and a hyperparameter is a decision only once the values decided
  before it make it active. Sequential policies (a controller, a tree search)
  decide the parent first and then only the children it activates.
- Sampling (`sample_value`, `random_values`), one-hyperparameter mutation
  (`mutate_values`), uniform crossover (`crossover_values`), the finite
  candidate list of a hyperparameter (`candidate_values`) and duplicate
  detection through keras-tuner's own values hash (`values_hash`,
  `is_duplicate`).
- Objective direction (`score_to_maximize`, `trial_reward`).
- `NasTuner`: a `keras_tuner.Tuner` that can hand each trial to a
  performance `estimator` instead of building and fitting the model.
"""

from __future__ import annotations

import math
import numbers
import random
from collections.abc import Callable, Mapping
from typing import Any

import keras_tuner
import numpy as np
from keras_tuner.engine import hyperparameters as hp_module
from keras_tuner.engine import trial as trial_module

from keras_nas.estimation._protocol import run_estimator
from keras_nas.tensorboard import SearchViewsMixin
from keras_nas.tuners import _distributed, _results

__all__ = [
    "MAX_FINITE_CANDIDATES",
    "NasTuner",
    "active_decisions",
    "candidate_values",
    "check_seed",
    "crossover_values",
    "enumerate_values",
    "first_unique",
    "is_active_given",
    "is_duplicate",
    "is_valid_value",
    "make_rng",
    "mutable_decisions",
    "mutate_value",
    "mutate_values",
    "random_values",
    "rng_from_json",
    "rng_to_json",
    "sample_value",
    "score_to_maximize",
    "sequential_values",
    "set_seed",
    "trial_reward",
    "unique_random_values",
    "values_hash",
]

#: Int/Float hyperparameters with more grid points than this are treated as
#: continuous (sampled through `prob_to_value`, widened progressively by MCTS).
MAX_FINITE_CANDIDATES = 32

RandomState = np.random.Generator | random.Random


# ---------------------------------------------------------------------------
# Random number generators <-> JSON.
# ---------------------------------------------------------------------------


def check_seed(seed: Any) -> int | None:
    """`seed` as an int in [0, 2**32), or `None`; else a `ValueError`."""
    if seed is None:
        return None
    if (
        isinstance(seed, bool)
        or not isinstance(seed, numbers.Integral)
        or not 0 <= seed < 2**32
    ):
        raise ValueError(
            "Expected `seed` to be None or an integer in [0, 2**32). "
            f"Received: seed={seed!r}"
        )
    return int(seed)


def set_seed(oracle: Any, seed: Any) -> None:
    """Gives `oracle` the seed `seed` after `keras_tuner.Oracle.__init__`.

    keras-tuner's `Oracle` does `self.seed = seed or random.randint(...)`,
    so `seed=0` would draw a random seed; this keeps 0 (and validates the
    seed). `None` keeps keras-tuner's random seed.
    """
    seed = check_seed(seed)
    if seed is not None:
        oracle.seed = oracle._seed_state = seed


def make_rng(seed: int | None) -> np.random.Generator:
    """Returns a NumPy `Generator` (PCG64) seeded with `seed`."""
    return np.random.default_rng(seed)


def rng_to_json(rng: RandomState) -> dict[str, Any]:
    """Returns a JSON-serializable snapshot of a random number generator.

    Args:
        rng: A `numpy.random.Generator` or a `random.Random`.

    Returns:
        A dict that `rng_from_json` turns back into a generator producing
        exactly the same stream.
    """
    if isinstance(rng, np.random.Generator):
        return {"kind": "numpy", "state": rng.bit_generator.state}
    if isinstance(rng, random.Random):
        version, internal, gauss = rng.getstate()
        return {
            "kind": "python",
            "state": [version, list(internal), gauss],
        }
    raise ValueError(
        "Expected `rng` to be a `numpy.random.Generator` or a "
        f"`random.Random`. Received: rng={rng!r}"
    )


def rng_from_json(state: Mapping[str, Any]) -> RandomState:
    """Rebuilds the generator saved by `rng_to_json`."""
    kind = state.get("kind") if isinstance(state, Mapping) else None
    if kind == "numpy":
        inner = state["state"]
        bit_generator = getattr(np.random, inner["bit_generator"])()
        bit_generator.state = inner
        return np.random.Generator(bit_generator)
    if kind == "python":
        version, internal, gauss = state["state"]
        rng = random.Random()
        rng.setstate((version, tuple(internal), gauss))
        return rng
    raise ValueError(
        "Expected `state` to be a dict produced by `rng_to_json` "
        f"(kind 'numpy' or 'python'). Received: state={state!r}"
    )


def _uniform(rng: RandomState) -> float:
    return float(rng.random())


def _randint(rng: RandomState, n: int) -> int:
    if isinstance(rng, np.random.Generator):
        return int(rng.integers(n))
    return rng.randrange(n)


def _normal(rng: RandomState, sigma: float) -> float:
    if isinstance(rng, np.random.Generator):
        return float(rng.normal(0.0, sigma))
    return rng.gauss(0.0, sigma)


# ---------------------------------------------------------------------------
# Hyperparameters as sequential decisions.
# ---------------------------------------------------------------------------


def is_active_given(hp: Any, values: Mapping[str, Any]) -> bool:
    """Whether `hp`'s conditions hold for the (partial) `values`."""
    return all(condition.is_active(values) for condition in hp.conditions)


def candidate_values(
    hp: Any, max_candidates: int = MAX_FINITE_CANDIDATES
) -> list[Any] | None:
    """The finite list of values a hyperparameter can take, if small.

    Args:
        hp: A keras-tuner `HyperParameter`.
        max_candidates: Int/Float grids larger than this count as continuous.

    Returns:
        The list of candidate values (in the hyperparameter's order), or
        `None` for a continuous (or very large) range.
    """
    if isinstance(hp, hp_module.Fixed):
        return [hp.value]
    if isinstance(hp, hp_module.Boolean):
        return [False, True]
    if isinstance(hp, hp_module.Choice):
        return list(hp.values)
    if isinstance(hp, (hp_module.Int, hp_module.Float)):
        if hp.step is None:
            return None
        if hp._get_n_values() > max_candidates:
            return None
        return list(hp.values)
    return None


def is_valid_value(hp: Any, value: Any) -> bool:
    """Whether `value` is a legal value of `hp` (after a space change)."""
    if value is None:
        return False
    candidates = candidate_values(hp)
    if candidates is not None:
        return value in candidates
    try:
        return hp.min_value <= value <= hp.max_value
    except TypeError:
        return False


def sample_value(hp: Any, rng: RandomState) -> Any:
    """Draws one value of `hp` uniformly (in keras-tuner's sampling scale)."""
    candidates = candidate_values(hp)
    if candidates is not None:
        return candidates[_randint(rng, len(candidates))]
    return hp.prob_to_value(_uniform(rng))


def sequential_values(
    hyperparameters: Any,
    choose: Callable[[Any, dict[str, Any]], Any],
    values: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Decides the active hyperparameters one after the other.

    Walks `hyperparameters.space` in order (parents before their conditional
    children). A hyperparameter is skipped while its conditions do not hold
    for the values decided so far; otherwise it keeps its entry of `values`
    when that is legal, else `choose(hp, decided_so_far)` decides it.

    Args:
        hyperparameters: A keras-tuner `HyperParameters`.
        choose: Callable `(hp, decided) -> value`.
        values: Optional values to keep where still active and legal.

    Returns:
        A dict holding exactly the active hyperparameters' values.
    """
    values = values or {}
    decided: dict[str, Any] = {}
    for hp in hyperparameters.space:
        if hp.name in decided or not is_active_given(hp, decided):
            continue
        value = values.get(hp.name)
        if not is_valid_value(hp, value):
            value = choose(hp, decided)
        decided[hp.name] = value
    return decided


def active_decisions(
    hyperparameters: Any, values: Mapping[str, Any]
) -> list[Any]:
    """The ordered list of hyperparameters that are active for `values`."""
    decided: dict[str, Any] = {}
    out = []
    for hp in hyperparameters.space:
        if hp.name in decided or not is_active_given(hp, decided):
            continue
        decided[hp.name] = values.get(hp.name)
        out.append(hp)
    return out


def random_values(
    hyperparameters: Any, rng: RandomState, values: Mapping | None = None
) -> dict[str, Any]:
    """Uniform random values for the active hyperparameters.

    Args:
        hyperparameters: A keras-tuner `HyperParameters`.
        rng: The generator to draw from.
        values: Optional values to keep (only missing ones are drawn).
    """
    return sequential_values(
        hyperparameters, lambda hp, _: sample_value(hp, rng), values
    )


def enumerate_values(
    hyperparameters: Any, limit: int = 100_000
) -> list[dict[str, Any]] | None:
    """Every point of a finite space (conditional scopes respected).

    Args:
        hyperparameters: A keras-tuner `HyperParameters`.
        limit: Give up (return `None`) beyond this many points.

    Returns:
        The list of value dicts (active hyperparameters only), or `None` when
        a range is continuous or the space holds more than `limit` points.
    """
    points: list[dict[str, Any]] = [{}]
    done: list[dict[str, Any]] = []
    while points:
        partial = points.pop()
        hp = next(
            (
                h
                for h in hyperparameters.space
                if h.name not in partial and is_active_given(h, partial)
            ),
            None,
        )
        if hp is None:
            done.append(partial)
            if len(done) > limit:
                return None
            continue
        candidates = candidate_values(hp)
        if candidates is None:
            return None
        points.extend({**partial, hp.name: c} for c in reversed(candidates))
        if len(points) + len(done) > limit:
            return None
    return done


def unique_random_values(
    oracle: Any, rng: RandomState, max_collisions: int = 20
) -> dict[str, Any] | None:
    """Random values not proposed before, or `None` if the space is spent.

    Draws up to `max_collisions + 1` random points; if all were proposed
    before and the space is finite (and not huge), picks uniformly among the
    points never proposed, so small spaces are searched exhaustively.
    """
    hps = oracle.hyperparameters
    values = first_unique(
        oracle, lambda: random_values(hps, rng), max_collisions + 1
    )
    if values is not None:
        return values
    points = enumerate_values(hps)
    if not points:
        return None
    fresh = [v for v in points if not is_duplicate(oracle, v)]
    if not fresh:
        return None
    return fresh[_randint(rng, len(fresh))]


def first_unique(
    oracle: Any, draw: Callable[[], dict[str, Any]], attempts: int
) -> dict[str, Any] | None:
    """The first of up to `attempts` calls of `draw()` whose values were
    not proposed before (`is_duplicate`), or `None`."""
    for _ in range(attempts):
        values = draw()
        if not is_duplicate(oracle, values):
            return values
    return None


def mutate_value(hp: Any, value: Any, rng: RandomState) -> Any:
    """A different value of `hp` (uniform among finite candidates; a
    Gaussian step in keras-tuner's probability scale when continuous)."""
    candidates = candidate_values(hp)
    if candidates is not None:
        others = [c for c in candidates if c != value]
        if not others:
            return value
        return others[_randint(rng, len(others))]
    # Continuous: Gaussian step in keras-tuner's probability scale, reflected
    # into [0, 1), so log-sampled ranges mutate multiplicatively.
    try:
        prob = float(hp.value_to_prob(value))
    except (TypeError, ValueError, ZeroDivisionError):
        prob = _uniform(rng)
    prob = prob + _normal(rng, 0.15)
    prob = abs(prob) % 2.0
    prob = 2.0 - prob if prob >= 1.0 else prob
    return hp.prob_to_value(min(prob, 1.0 - 1e-9))


def mutable_decisions(
    hyperparameters: Any, values: Mapping[str, Any]
) -> list[Any]:
    """Active hyperparameters that have more than one possible value."""
    out = []
    for hp in active_decisions(hyperparameters, values):
        candidates = candidate_values(hp)
        if candidates is None or len(candidates) > 1:
            out.append(hp)
    return out


def mutate_values(
    hyperparameters: Any,
    values: Mapping[str, Any],
    rng: RandomState,
    num_mutations: int = 1,
) -> dict[str, Any]:
    """Copies `values` and changes `num_mutations` distinct hyperparameters.

    This is the mutation of regularized evolution (Real et al., 2019): for a
    cell space whose inputs and ops are hyperparameters, changing one of them
    is the "hidden state" or "op" mutation. A changed parent re-activates its
    conditional children, which get random values; inactive values are
    dropped.

    Args:
        hyperparameters: A keras-tuner `HyperParameters`.
        values: The parent's values.
        rng: The generator to draw from.
        num_mutations: How many hyperparameters to change.

    Returns:
        The child's values (active hyperparameters only).
    """
    child = random_values(hyperparameters, rng, values)
    for _ in range(num_mutations):
        mutable = mutable_decisions(hyperparameters, child)
        if not mutable:
            break
        hp = mutable[_randint(rng, len(mutable))]
        child[hp.name] = mutate_value(hp, child[hp.name], rng)
        child = random_values(hyperparameters, rng, child)
    return child


def crossover_values(
    hyperparameters: Any,
    first: Mapping[str, Any],
    second: Mapping[str, Any],
    rng: RandomState,
) -> dict[str, Any]:
    """Uniform crossover: each active decision from either parent."""

    def choose(hp, _):
        pool = [
            v
            for v in (first.get(hp.name), second.get(hp.name))
            if is_valid_value(hp, v)
        ]
        if not pool:
            return sample_value(hp, rng)
        return pool[_randint(rng, len(pool))]

    return sequential_values(hyperparameters, choose)


# ---------------------------------------------------------------------------
# Duplicates and objective direction.
# ---------------------------------------------------------------------------


def values_hash(oracle: Any, values: Mapping[str, Any]) -> str:
    """keras-tuner's hash of a set of (active) values."""
    return oracle._compute_values_hash(dict(values))


def is_duplicate(oracle: Any, values: Mapping[str, Any]) -> bool:
    """Whether `values` were already proposed (running trials included)."""
    return values_hash(oracle, values) in oracle._tried_so_far


def score_to_maximize(oracle: Any, score: float | None) -> float | None:
    """Turns a trial score into a reward where larger is better.

    Returns `None` for a missing or non-finite score.
    """
    if score is None:
        return None
    score = float(score)
    if not math.isfinite(score):
        return None
    return -score if oracle.objective.direction == "min" else score


def trial_reward(oracle: Any, trial: Any) -> float | None:
    """The maximize-direction score of a completed trial, else `None`."""
    if trial.status != trial_module.TrialStatus.COMPLETED:
        return None
    return score_to_maximize(oracle, trial.score)


# ---------------------------------------------------------------------------
# Tuner base.
# ---------------------------------------------------------------------------


class NasTuner(SearchViewsMixin, keras_tuner.Tuner):
    """A `keras_tuner.Tuner` that can delegate trials to an estimator.

    The keras-nas tuners are thin subclasses that only build their oracle.
    Without an `estimator` a trial is run as in keras-tuner (build the
    hypermodel, `fit`, report the objective). With one, `run_trial` returns
    `estimator.estimate(tuner, trial, *fit_args, **fit_kwargs)`, a dict of
    metrics (e.g. from a weight-sharing supernet or a lookup table), which
    is logged to the search's TensorBoard callbacks unless the estimator's
    `logs_to_tensorboard` attribute is true (it trained with `fit`).

    With a `keras.callbacks.TensorBoard` among the `search` callbacks, the
    search itself is logged too (`keras_nas.tensorboard.SearchViews`): each
    trial's architecture as an image and text, and a `search` run with the
    objective per trial, the best so far and the history plot.

    Args:
        oracle: A `keras_tuner.Oracle`.
        hypermodel: A `keras_tuner.HyperModel` or a function `hp -> Model`.
            Optional when an `estimator` evaluates the trials.
        estimator: Optional object with an `estimate(tuner, trial, *args,
            **kwargs)` method returning a dict of metrics that contains the
            objective.
        **kwargs: Passed to `keras_tuner.Tuner` (`directory`,
            `project_name`, `overwrite`, ...).

    Example:

    ```python
    tuner = keras_nas.tuners.AgingEvolution(
        build_model, objective="val_accuracy", max_trials=50, seed=1
    )
    tuner.search(x, y, validation_split=0.2, epochs=3)
    ```
    """

    def __init__(
        self,
        oracle: keras_tuner.Oracle,
        hypermodel: Any = None,
        estimator: Any = None,
        **kwargs: Any,
    ):
        if estimator is not None and not callable(
            getattr(estimator, "estimate", None)
        ):
            raise ValueError(
                "Expected `estimator` to have an `estimate(tuner, trial, "
                f"*args, **kwargs)` method. Received: estimator={estimator!r}"
            )
        if (
            hypermodel is None
            and estimator is None
            and type(self).run_trial is NasTuner.run_trial
        ):
            raise ValueError(
                "Expected a `hypermodel` (or an `estimator`, or a subclass "
                "overriding `run_trial`). Received: hypermodel=None"
            )
        self.estimator = estimator
        super().__init__(oracle, hypermodel, **kwargs)
        if _distributed.is_worker():
            # Heartbeats while a trial runs, waits when the chief is idle.
            self.oracle = _distributed.LeasedOracleClient.replacing(self.oracle)

    def search(self, *fit_args, **fit_kwargs):
        if not _distributed.is_chief():
            return super().search(*fit_args, **fit_kwargs)
        # The chief serves the oracle until the search is over, expiring
        # the trials of lost workers (`keras_nas.tuners._distributed`).
        if "verbose" in fit_kwargs:
            self.oracle.verbose = fit_kwargs["verbose"]
        self.save()
        _distributed.serve_oracle(self.oracle)
        return None

    def run_trial(self, trial, *args, **kwargs):
        if self.estimator is None:
            results = super().run_trial(trial, *args, **kwargs)
        else:
            # Logged to TensorBoard unless the estimator trained with `fit`
            # and the search's callbacks (e.g. `HardwareAware` without an
            # inner estimator), which logged already.
            results = run_estimator(self.estimator, self, trial, args, kwargs)
        # A missing objective stops the search here, at the first trial.
        _results.check_objective_reported(self.oracle.objective, results, trial)
        return results

    def get_best_models(self, num_models: int = 1) -> list[Any]:
        """The models of the best trials, best first.

        Only completed trials whose score and losses are finite count: a
        diverged trial (NaN or infinite) never ranks as best. Returns fewer
        than `num_models` models when fewer trials qualify.

        Raises:
            RuntimeError: trials ran but none has a finite score.
        """
        trials = _results.finite_best_trials(self.oracle, num_models)
        if not trials and self.oracle.trials:
            raise RuntimeError(_results.no_finite_trial_message(self.oracle))
        return [self.load_model(trial) for trial in trials]
