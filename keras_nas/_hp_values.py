"""Hyperparameter values as sequential decisions; random generators as JSON.

The search strategies (`keras_nas.tuners`, which re-export these names from
`keras_nas.tuners._base`) and the one-shot supernets (`keras_nas.supernet`)
work on any keras-tuner `HyperParameters` space with these helpers; they
need keras-tuner's hyperparameter classes only, not an oracle or a tuner:

- RNG state to and from JSON (`rng_to_json`, `rng_from_json`), so that an
  oracle's `get_state()` holds its random stream and resumes it exactly.
- The space as an ordered sequence of *decisions* (`active_decisions`,
  `sequential_values`): hyperparameters are decided in the order of
  `HyperParameters.space` (keras-tuner keeps parents before their conditional
  children), and a hyperparameter is a decision only once the values decided
  before it make it active. Sequential policies (a controller, a tree search)
  decide the parent first and then only the children it activates.
- Sampling (`sample_value`, `random_values`), one-hyperparameter mutation
  (`mutate_values`), uniform crossover (`crossover_values`), and the finite
  candidate list of a hyperparameter (`candidate_values`).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from keras_tuner.engine import hyperparameters as hp_module

from keras_nas._validation import check_seed

__all__ = [
    "MAX_FINITE_CANDIDATES",
    "RandomState",
    "active_decisions",
    "candidate_values",
    "check_seed",
    "crossover_values",
    "enumerate_values",
    "is_active_given",
    "is_valid_value",
    "make_rng",
    "mutable_decisions",
    "mutate_value",
    "mutate_values",
    "random_index",
    "random_values",
    "rng_from_json",
    "rng_to_json",
    "sample_value",
    "sequential_values",
]

#: Int/Float hyperparameters with more grid points than this are treated as
#: continuous (sampled through `prob_to_value`, widened progressively by MCTS).
MAX_FINITE_CANDIDATES = 32

RandomState = np.random.Generator | random.Random


# ---------------------------------------------------------------------------
# Random number generators <-> JSON.
# ---------------------------------------------------------------------------


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


def random_index(rng: RandomState, n: int) -> int:
    """A uniform index in [0, n) drawn from `rng`."""
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
        return candidates[random_index(rng, len(candidates))]
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


def mutate_value(hp: Any, value: Any, rng: RandomState) -> Any:
    """A different value of `hp` (uniform among finite candidates; a
    Gaussian step in keras-tuner's probability scale when continuous)."""
    candidates = candidate_values(hp)
    if candidates is not None:
        others = [c for c in candidates if c != value]
        if not others:
            return value
        return others[random_index(rng, len(others))]
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
        hp = mutable[random_index(rng, len(mutable))]
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
        return pool[random_index(rng, len(pool))]

    return sequential_values(hyperparameters, choose)
