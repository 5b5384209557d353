"""Policies that emit an architecture as a sequence of decisions.

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

Two policies are provided, both trained with REINFORCE (Williams, 1992) with a
moving-average baseline and an entropy bonus, as in Zoph & Le, "Neural
Architecture Search with Reinforcement Learning" (ICLR 2017):

- `FactorizedController` (the default): independent softmax logits per
  decision, exact gradients in NumPy, Adam. Fast and backend-free.
- `LSTMController`: the Zoph & Le / ENAS (Pham et al., 2018) recurrent
  controller in Keras: a learned start embedding, an LSTM cell, a softmax head
  and an embedding of the chosen value per decision, temperature and
  `tanh_constant * tanh(logits)` clipping. Gradients come from
  `_controller_tensorflow` or `_controller_jax`.

The shared API (also used by ENAS): `sample(rng) -> (values, trace)`,
`update(traces, rewards)`, `trace_from_values(values)`, `save(path)`,
`load(path)`, `get_config()`. A trace is a JSON-able list of
`[hyperparameter name, bin index]` pairs, in decision order.
"""

from __future__ import annotations

import json
import math
import os
import zlib
from typing import Any

import numpy as np

from keras_nas._backend import backend_module
from keras_nas.tuners import _base

__all__ = [
    "VisitedTree",
    "Controller",
    "FactorizedController",
    "LSTMController",
    "get_controller",
]

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


class _Adam:
    """Minimal Adam on a dict of NumPy arrays (Kingma & Ba, 2015)."""

    def __init__(self, lr, beta1=0.9, beta2=0.999, eps=1e-8):
        self.lr, self.b1, self.b2, self.eps = lr, beta1, beta2, eps
        self.m: dict[str, np.ndarray] = {}
        self.v: dict[str, np.ndarray] = {}
        self.t: dict[str, int] = {}

    def step(self, params: dict, grads: dict) -> None:
        for name, g in grads.items():
            m = self.m.setdefault(name, np.zeros_like(g))
            v = self.v.setdefault(name, np.zeros_like(g))
            t = self.t[name] = self.t.get(name, 0) + 1
            m *= self.b1
            m += (1 - self.b1) * g
            v *= self.b2
            v += (1 - self.b2) * g * g
            mhat = m / (1 - self.b1**t)
            vhat = v / (1 - self.b2**t)
            params[name] += self.lr * mhat / (np.sqrt(vhat) + self.eps)


class FactorizedController(Controller):
    """Independent softmax per decision, exact REINFORCE gradients in NumPy.

    The policy is `p(a) = prod_i softmax(theta_i / temperature)[a_i]` over
    the active decisions. Gradients are analytic: `d log p / d theta_i =
    (onehot(a_i) - p_i) / T` and `d H_i / d theta_i = -p_i (log p_i + H_i) / T`.
    The logits start at zero (the uniform distribution), so the first samples
    are a random search.

    Args: see `Controller`.

    Example:

    ```python
    hp = keras_tuner.HyperParameters()
    hp.Choice("op", ["conv", "pool", "skip"])
    ctrl = FactorizedController(hp, learning_rate=0.1)
    rng = np.random.default_rng(0)
    values, trace = ctrl.sample(rng)
    ctrl.update([trace], [0.9])
    ```
    """

    kind = "factorized"

    def __init__(self, hyperparameters, **kwargs):
        self.logits: dict[str, np.ndarray] = {}
        self._optimizer = None
        super().__init__(hyperparameters, **kwargs)
        self._optimizer = _Adam(self.learning_rate)

    def _add_decision(self, name, size):
        self.logits[name] = np.zeros(size, dtype="float64")

    def _start(self):
        return None

    def _step(self, state, name, size):
        return _softmax(self.logits[name] / self.temperature), state

    def _feed(self, state, name, index):
        return state

    def _update(self, traces, advantages):
        grads: dict[str, np.ndarray] = {}
        n = len(traces)
        inv_t = 1.0 / self.temperature
        for trace, adv in zip(traces, advantages, strict=True):
            for name, index in trace:
                p = _softmax(self.logits[name] * inv_t)
                logp = np.log(np.maximum(p, 1e-30))
                entropy = -float(np.sum(p * logp))
                g = -adv * p
                g[index] += adv
                g -= self.entropy_weight * p * (logp + entropy)
                g *= inv_t / n
                if name in grads:
                    grads[name] += g
                else:
                    grads[name] = g
        self._optimizer.step(self.logits, grads)

    def _arrays(self):
        out = {}
        opt = self._optimizer
        for name, z in self.logits.items():
            out[f"logits/{name}"] = z
            if name in opt.m:
                out[f"m/{name}"] = opt.m[name]
                out[f"v/{name}"] = opt.v[name]
                out[f"t/{name}"] = np.asarray(opt.t[name])
        return out

    def _set_arrays(self, arrays):
        opt = self._optimizer
        for key, arr in arrays.items():
            kind, name = key.split("/", 1)
            if kind == "logits":
                self.logits[name] = np.array(arr, dtype="float64")
            elif kind == "m":
                opt.m[name] = np.array(arr, dtype="float64")
            elif kind == "v":
                opt.v[name] = np.array(arr, dtype="float64")
            elif kind == "t":
                opt.t[name] = int(arr)


class _NumpyOps:
    """The few `keras.ops` the LSTM controller needs, in NumPy."""

    matmul = staticmethod(np.matmul)
    split = staticmethod(np.split)
    tanh = staticmethod(np.tanh)

    @staticmethod
    def sigmoid(x):
        return 0.5 * (np.tanh(0.5 * x) + 1.0)


def _backend_module():
    return backend_module("keras_nas.tuners", "_controller", "LSTMController")


class LSTMController(Controller):
    """Recurrent controller of Zoph & Le (2017), as used by ENAS.

    At each active decision the LSTM cell reads the embedding of the previous
    choice (a learned start embedding for the first one); a per-decision head
    maps the hidden state to logits, which are divided by `temperature` and,
    if `tanh_constant` is set, clipped to `tanh_constant * tanh(logits)`
    (Pham et al., 2018). Weights are `keras.Variable`s trained with
    `keras.optimizers.Adam`; the gradient of the REINFORCE loss comes from a
    backend module (TensorFlow or JAX).

    Args:
        hyperparameters: the search space.
        units: LSTM width.
        tanh_constant: logit clipping constant (`None` to disable).
        **kwargs: see `Controller`.

    Example:

    ```python
    ctrl = LSTMController(hp, units=32, learning_rate=3.5e-3)
    values, trace = ctrl.sample(np.random.default_rng(0))
    ctrl.update([trace], [0.9])
    ```
    """

    kind = "lstm"

    def __init__(
        self,
        hyperparameters,
        units: int = 32,
        tanh_constant: float | None = 1.5,
        **kwargs,
    ):
        import keras

        self._backend = _backend_module()
        if int(units) < 1:
            raise ValueError(f"Expected `units` >= 1. Received: units={units}")
        self.units = int(units)
        self.tanh_constant = tanh_constant
        self.vars: dict[str, Any] = {}
        self._optimizer = None
        self._grad_fns: dict[tuple, Any] = {}
        self._np_params = None
        kwargs.setdefault("learning_rate", 5e-3)
        seed = int(kwargs.get("seed", 0))
        rng = np.random.default_rng(seed)
        u = self.units
        init = 0.1
        for name, shape in (
            ("start", (1, u)),
            ("kernel", (u, 4 * u)),
            ("recurrent_kernel", (u, 4 * u)),
        ):
            self.vars[name] = keras.Variable(
                rng.uniform(-init, init, shape).astype("float32"), name=name
            )
        self.vars["bias"] = keras.Variable(
            np.zeros(4 * u, "float32"), name="bias"
        )
        super().__init__(hyperparameters, **kwargs)

    def get_config(self):
        config = super().get_config()
        config.update(units=self.units, tanh_constant=self.tanh_constant)
        return config

    def _add_decision(self, name, size):
        import keras

        seed = zlib.crc32(f"{self.seed}/{name}".encode())
        rng = np.random.default_rng(seed)
        u = self.units
        for key, shape in (("head", (u, size)), ("embedding", (size, u))):
            self.vars[f"{key}/{name}"] = keras.Variable(
                rng.uniform(-0.1, 0.1, shape).astype("float32"),
                name=f"{key}_{len(self.vars)}",
            )
        # A new variable invalidates the optimizer (rebuilt on next update)
        # and the compiled gradient functions.
        self._optimizer = None
        self._grad_fns = {}
        self._np_params = None

    # Pure functions of a dict of arrays, written against an `ops` namespace:
    # `keras.ops` in the differentiable loss, `_NumpyOps` when sampling (on a
    # NumPy copy of the weights: fast, no framework dispatch per step).
    def _cell(self, params, x, h, c, ops):
        z = (
            ops.matmul(x, params["kernel"])
            + ops.matmul(h, params["recurrent_kernel"])
            + params["bias"]
        )
        i, f, g, o = ops.split(z, 4, axis=-1)
        c = ops.sigmoid(f + 1.0) * c + ops.sigmoid(i) * ops.tanh(g)
        h = ops.sigmoid(o) * ops.tanh(c)
        return h, c

    def _logits(self, params, h, name, ops):
        logits = ops.matmul(h, params[f"head/{name}"]) / self.temperature
        if self.tanh_constant:
            logits = self.tanh_constant * ops.tanh(logits)
        return logits[0]

    def _numpy_params(self):
        if self._np_params is None:
            from keras import ops

            self._np_params = {
                k: ops.convert_to_numpy(v).astype("float64")
                for k, v in self.vars.items()
            }
        return self._np_params

    def _start(self):
        params = self._numpy_params()
        zeros = np.zeros((1, self.units))
        return params, params["start"], zeros, zeros

    def _step(self, state, name, size):
        params, x, h, c = state
        h, c = self._cell(params, x, h, c, _NumpyOps)
        logits = self._logits(params, h, name, _NumpyOps)
        return _softmax(logits), (params, x, h, c)

    def _feed(self, state, name, index):
        params, _, h, c = state
        return params, params[f"embedding/{name}"][index : index + 1], h, c

    def _loss_fn(self, names):
        """REINFORCE loss of one trace with decisions `names` (pure)."""
        from keras import ops

        keys = list(self.vars)

        def loss(values, actions, advantage):
            params = dict(zip(keys, values, strict=True))
            x = params["start"]
            h = c = ops.zeros((1, self.units))
            logp = 0.0
            entropy = 0.0
            for i, name in enumerate(names):
                h, c = self._cell(params, x, h, c, ops)
                log_probs = ops.log_softmax(self._logits(params, h, name, ops))
                logp = logp + ops.take(log_probs, actions[i])
                entropy = entropy - ops.sum(ops.exp(log_probs) * log_probs)
                x = ops.take(
                    params[f"embedding/{name}"], actions[i : i + 1], axis=0
                )
            return -advantage * logp - self.entropy_weight * entropy

        return loss

    def _ensure_optimizer(self):
        import keras

        if self._optimizer is None:
            self._optimizer = keras.optimizers.Adam(self.learning_rate)
            variables = list(self.vars.values())
            self._optimizer.build(variables)
            self._apply = self._backend.apply_function(
                self._optimizer, variables
            )
        return self._optimizer

    def _update(self, traces, advantages):
        self._ensure_optimizer()
        variables = list(self.vars.values())
        total = None
        for trace, adv in zip(traces, advantages, strict=True):
            names = tuple(name for name, _ in trace)
            fn = self._grad_fns.get(names)
            if fn is None:
                fn = self._backend.gradient_function(self._loss_fn(names))
                self._grad_fns[names] = fn
            actions = np.asarray([i for _, i in trace], dtype="int32")
            grads = fn(
                [v.value for v in variables],
                actions,
                np.asarray(adv / len(traces), dtype="float32"),
            )
            if total is None:
                total = list(grads)
            else:
                total = [a + b for a, b in zip(total, grads, strict=True)]
        self._apply(total)
        self._np_params = None

    def _arrays(self):
        from keras import ops

        out = {
            f"var/{k}": ops.convert_to_numpy(v) for k, v in self.vars.items()
        }
        if self._optimizer is not None:
            for i, v in enumerate(self._optimizer.variables):
                out[f"opt/{i}"] = ops.convert_to_numpy(v)
        return out

    def _set_arrays(self, arrays):
        for key, arr in arrays.items():
            if key.startswith("var/"):
                self.vars[key[4:]].assign(arr)
        self._np_params = None
        opt_keys = sorted(
            (k for k in arrays if k.startswith("opt/")),
            key=lambda k: int(k[4:]),
        )
        if opt_keys:
            optimizer = self._ensure_optimizer()
            for key, var in zip(opt_keys, optimizer.variables, strict=True):
                var.assign(arrays[key])


_CONTROLLERS = {"factorized": FactorizedController, "lstm": LSTMController}


def get_controller(kind: str, hyperparameters, **kwargs) -> Controller:
    """Builds a controller by name (`"factorized"` or `"lstm"`)."""
    if kind not in _CONTROLLERS:
        raise ValueError(
            f"Expected `controller` in {sorted(_CONTROLLERS)}. "
            f"Received: controller={kind!r}"
        )
    return _CONTROLLERS[kind](hyperparameters, **kwargs)
