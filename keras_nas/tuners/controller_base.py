"""The base of the controllers: a policy over a keras-tuner space.

A controller walks a keras-tuner `HyperParameters` space in declaration
order and takes one categorical decision per *active* hyperparameter, so that
conditional scopes are handled by sequential decisions: a hyperparameter whose
parent conditions are not met by the decisions taken so far is skipped.

Each hyperparameter becomes a categorical decision over `K` bins of its
cumulative-probability range (`hp.value_to_prob` / `hp.prob_to_value`):
`Choice` (one bin per value), `Boolean` (2), `Int`/`Float` with at most
`max_bins` distinct values (one bin per value), and otherwise `max_bins`
equal bins with a uniform draw inside the chosen bin. `Fixed` values are not
decisions.

`Controller` holds the space walk, the REINFORCE baseline and persistence;
the policies are in `keras_nas.tuners.controller` (`FactorizedController`)
and `keras_nas.tuners.controller_lstm` (`LSTMController`).
"""

from __future__ import annotations

import json
import math
import os

import numpy as np

from keras_nas.tuners import _base

__all__ = ["Controller", "VisitedTree"]

Trace = list  # list of [name, index] pairs


class _Decision:
    """Categorical encoding of one hyperparameter over `size` bins."""

    def __init__(self, hp, max_bins: int):
        self.hp = hp
        name = type(hp).__name__
        if name == "Choice":
            n = len(hp.values)
        elif name == "Boolean":
            n = 2
        elif name == "Int":
            if hp.step is None:
                n = int(hp.max_value) - int(hp.min_value) + 1
            else:
                n = hp._get_n_values()
        elif name == "Float":
            n = hp._get_n_values() if hp.step is not None else math.inf
        elif name == "Fixed":
            n = 1
        else:
            raise ValueError(
                "Expected a keras-tuner Choice, Boolean, Int, Float or Fixed "
                f"hyperparameter. Received: hp={hp!r}"
            )
        self.exact = n <= max_bins
        self.size = int(n) if self.exact else int(max_bins)
        # A small Int range without step: one bin per integer, whatever the
        # sampling (keras-tuner's log scale would merge small integers).
        self.offset = (
            int(hp.min_value)
            if self.exact and name == "Int" and hp.step is None
            else None
        )

    def value(self, index: int, rng: np.random.Generator):
        if self.offset is not None:
            return self.offset + index
        if self.exact:
            return self.hp.prob_to_value((index + 0.5) / self.size)
        prob = (index + rng.random()) / self.size
        return self.hp.prob_to_value(min(prob, 1.0 - 1e-12))

    def index(self, value) -> int:
        if self.offset is not None:
            return int(min(self.size - 1, max(0, int(value) - self.offset)))
        prob = self.hp.value_to_prob(value)
        return int(min(self.size - 1, max(0, math.floor(prob * self.size))))


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max())
    return e / e.sum()


def _draw(probs: np.ndarray, rng: np.random.Generator) -> int:
    cdf = np.cumsum(probs)
    index = int(np.searchsorted(cdf, rng.random() * cdf[-1], "right"))
    if index >= len(probs) or probs[index] <= 0:
        index = int(np.argmax(probs))
    return index


class VisitedTree:
    """Prefix tree of the decision traces already proposed.

    Lets a controller sample from its policy *restricted to unseen points*:
    a branch is masked out once every complete trace below it was visited.
    Only traces made of exact decisions (finite choices) can exhaust a
    branch; with binned `Float`/`Int` decisions duplicates are left to the
    caller's check.
    """

    def __init__(self):
        self._exhausted: dict[tuple, set] = {}
        self.full = False

    def exhausted(self, prefix: tuple) -> set:
        """Indices of the fully visited children of `prefix`."""
        return self._exhausted.get(prefix, ())

    def add(self, trace: Trace, sizes: list[int]) -> None:
        """Marks `trace` visited; `sizes[i]` = options of decision `i`."""
        keys = [tuple(step) for step in trace]
        for depth in range(len(keys) - 1, -1, -1):
            done = self._exhausted.setdefault(tuple(keys[:depth]), set())
            done.add(keys[depth][1])
            if len(done) < sizes[depth]:
                return
        self.full = True


class Controller:
    """Base class: space walk, baseline and persistence.

    Subclasses implement `_start()`, `_step(state, name, size)` returning
    `(probs, state)` and `_feed(state, name, index)`, and `_update(...)`.

    Args:
        hyperparameters: the `keras_tuner.HyperParameters` search space.
        learning_rate: step size of the policy optimizer (Adam).
        baseline_decay: decay of the exponential moving average of rewards
            used as the REINFORCE baseline (Zoph & Le, 2017).
        entropy_weight: weight of the entropy bonus added to the objective.
        temperature: softmax temperature applied to the logits.
        max_bins: bins for `Int`/`Float` hyperparameters with more values.
        normalize_advantage: divide `reward - baseline` by a moving estimate of
            the reward standard deviation, which makes `learning_rate`
            independent of the scale of the objective.
        seed: seed of the initial weights.
    """

    kind = None

    def __init__(
        self,
        hyperparameters,
        learning_rate: float = 0.05,
        baseline_decay: float = 0.9,
        entropy_weight: float = 0.01,
        temperature: float = 1.0,
        max_bins: int = 10,
        normalize_advantage: bool = True,
        seed: int = 0,
    ):
        for arg, val in (
            ("learning_rate", learning_rate),
            ("temperature", temperature),
        ):
            if not val > 0:
                raise ValueError(
                    f"Expected `{arg}` > 0. Received: {arg}={val!r}"
                )
        if not 0.0 <= baseline_decay < 1.0:
            raise ValueError(
                "Expected `baseline_decay` in [0, 1). "
                f"Received: baseline_decay={baseline_decay!r}"
            )
        if entropy_weight < 0:
            raise ValueError(
                "Expected `entropy_weight` >= 0. "
                f"Received: entropy_weight={entropy_weight!r}"
            )
        if int(max_bins) < 2:
            raise ValueError(
                f"Expected `max_bins` >= 2. Received: max_bins={max_bins!r}"
            )
        self.learning_rate = float(learning_rate)
        self.baseline_decay = float(baseline_decay)
        self.entropy_weight = float(entropy_weight)
        self.temperature = float(temperature)
        self.max_bins = int(max_bins)
        self.normalize_advantage = bool(normalize_advantage)
        self.seed = int(seed)
        self.baseline = None
        self.reward_var = None
        self.num_updates = 0
        self.decisions: dict[str, _Decision] = {}
        self.hyperparameters = None
        self.sync_space(hyperparameters)

    # ----------------------------------------------------------------- space
    def sync_space(self, hyperparameters) -> None:
        """Registers hyperparameters that appeared in the space."""
        self.hyperparameters = hyperparameters
        for hp in hyperparameters.space:
            if hp.name in self.decisions:
                continue
            decision = _Decision(hp, self.max_bins)
            self.decisions[hp.name] = decision
            if decision.size > 1:
                self._add_decision(hp.name, decision.size)

    def _add_decision(self, name: str, size: int) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------- sampling
    def sample(
        self, rng: np.random.Generator, visited: VisitedTree | None = None
    ) -> tuple[dict, Trace]:
        """Samples one architecture.

        Args:
            rng: a `numpy.random.Generator`, the only source of randomness.
            visited: optional `VisitedTree`; the policy is then restricted to
                the branches that still hold an unvisited point.

        Returns:
            `(values, trace)`: the active hyperparameter values and the list
            of `[name, index]` decisions taken.
        """
        trace = []
        state = self._start()

        def choose(hp, decided):
            nonlocal state
            decision = self.decisions[hp.name]
            if decision.size == 1:
                return decision.value(0, rng)
            probs, state = self._step(state, hp.name, decision.size)
            if visited is not None:
                done = visited.exhausted(tuple(tuple(t) for t in trace))
                if done and len(done) < len(probs):
                    probs = probs.copy()
                    probs[list(done)] = 0.0
            index = _draw(probs, rng)
            value = decision.value(index, rng)
            if not decision.exact:
                # An integer can straddle two bins: credit the bin that
                # `trace_from_values` finds, so both always agree.
                index = decision.index(value)
            trace.append([hp.name, index])
            state = self._feed(state, hp.name, index)
            return value

        values = _base.sequential_values(self.hyperparameters, choose)
        return values, trace

    def trace_from_values(self, values: dict) -> Trace:
        """Returns the decisions that produce `values` (active ones only)."""
        trace = []
        for hp in _base.active_decisions(self.hyperparameters, values):
            decision = self.decisions[hp.name]
            if decision.size > 1 and hp.name in values:
                trace.append([hp.name, decision.index(values[hp.name])])
        return trace

    def visit(self, tree: VisitedTree, values: dict) -> None:
        """Marks the point `values` as visited in `tree`."""
        trace = self.trace_from_values(values)
        if all(self.decisions[name].exact for name, _ in trace):
            tree.add(trace, [self.decisions[name].size for name, _ in trace])

    def probabilities(self, trace: Trace) -> list[np.ndarray]:
        """The policy's distribution at each decision of `trace`."""
        out = []
        state = self._start()
        for name, index in trace:
            probs, state = self._step(state, name, self.decisions[name].size)
            out.append(probs)
            state = self._feed(state, name, index)
        return out

    # --------------------------------------------------------------- update
    def advantages(self, rewards) -> np.ndarray:
        """Advantages of `rewards` against the baseline; updates baseline."""
        adv = []
        for reward in rewards:
            reward = float(reward)
            if self.baseline is None:
                self.baseline = reward
                self.reward_var = 0.0
            delta = reward - self.baseline
            scale = 1.0
            if self.normalize_advantage:
                scale = math.sqrt(self.reward_var) if self.reward_var else 0.0
            adv.append(delta / scale if scale > 1e-12 else 0.0)
            d = self.baseline_decay
            self.baseline = d * self.baseline + (1 - d) * reward
            self.reward_var = d * self.reward_var + (1 - d) * delta * delta
        return np.asarray(adv, dtype="float64")

    def update(self, traces, rewards) -> dict:
        """One REINFORCE step on a batch of sampled decisions.

        Maximizes `mean(advantage * log p(trace)) + entropy_weight *
        mean(entropy)`, where `advantage = reward - baseline` (divided by
        the reward standard deviation if `normalize_advantage`).

        Args:
            traces: list of traces from `sample` (or `trace_from_values`).
            rewards: the reward of each trace (higher is better).

        Returns:
            A dict with `"baseline"` and the mean `"advantage"`.
        """
        traces = list(traces)
        rewards = list(rewards)
        if len(traces) != len(rewards):
            raise ValueError(
                "Expected as many `rewards` as `traces`. "
                f"Received: len(traces)={len(traces)}, "
                f"len(rewards)={len(rewards)}"
            )
        adv = self.advantages(rewards)
        pairs = [(t, a) for t, a in zip(traces, adv, strict=True) if t]
        if pairs:
            self._update(
                [p[0] for p in pairs], np.asarray([p[1] for p in pairs])
            )
        self.num_updates += 1
        return {"baseline": self.baseline, "advantage": float(adv.mean())}

    # ---------------------------------------------------------- persistence
    def get_config(self) -> dict:
        return {
            "kind": self.kind,
            "learning_rate": self.learning_rate,
            "baseline_decay": self.baseline_decay,
            "entropy_weight": self.entropy_weight,
            "temperature": self.temperature,
            "max_bins": self.max_bins,
            "normalize_advantage": self.normalize_advantage,
            "seed": self.seed,
        }

    def _stats(self) -> dict:
        return {
            "baseline": self.baseline,
            "reward_var": self.reward_var,
            "num_updates": self.num_updates,
        }

    def _arrays(self) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def _set_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        raise NotImplementedError

    def save(self, path: str) -> None:
        """Writes weights, optimizer state and baseline to `path`.

        Format: one line of JSON (baseline statistics and an index of the
        arrays: key, shape, dtype) followed by the arrays' values as one
        little-endian float64 buffer. The file is written to a temporary name
        and renamed, so a crash never leaves a partial file.
        """
        arrays = {k: np.asarray(v) for k, v in self._arrays().items()}
        index = [[k, list(v.shape), v.dtype.str] for k, v in arrays.items()]
        data = (
            np.concatenate([v.ravel() for v in arrays.values()])
            if arrays
            else np.zeros(0)
        ).astype("<f8")
        header = json.dumps({"stats": self._stats(), "index": index})
        tmp = f"{path}.tmp"
        with open(tmp, "wb") as f:
            f.write(header.encode() + b"\n")
            f.write(data.tobytes())
        os.replace(tmp, path)

    def load(self, path: str) -> None:
        """Restores what `save` wrote."""
        with open(path, "rb") as f:
            header = json.loads(f.readline().decode())
            data = np.frombuffer(f.read(), dtype="<f8")
        arrays, offset = {}, 0
        for key, shape, dtype in header["index"]:
            size = int(np.prod(shape)) if shape else 1
            arrays[key] = (
                data[offset : offset + size].reshape(shape).astype(dtype)
            )
            offset += size
        stats = header["stats"]
        self.baseline = stats["baseline"]
        self.reward_var = stats["reward_var"]
        self.num_updates = stats["num_updates"]
        self._set_arrays(arrays)
