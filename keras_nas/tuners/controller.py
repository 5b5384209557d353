"""Policies that emit an architecture as a sequence of decisions.

A controller takes one categorical decision per active hyperparameter of a
keras-tuner space, in declaration order (see `controller_base`, which holds
the space walk, the baseline and persistence shared by every policy).

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

import numpy as np

from keras_nas.tuners.controller_base import (
    Controller,
    VisitedTree,
    _softmax,
)
from keras_nas.tuners.controller_lstm import LSTMController

__all__ = [
    "VisitedTree",
    "Controller",
    "FactorizedController",
    "LSTMController",
    "get_controller",
]


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


_CONTROLLERS = {"factorized": FactorizedController, "lstm": LSTMController}


def get_controller(kind: str, hyperparameters, **kwargs) -> Controller:
    """Builds a controller by name (`"factorized"` or `"lstm"`)."""
    if kind not in _CONTROLLERS:
        raise ValueError(
            f"Expected `controller` in {sorted(_CONTROLLERS)}. "
            f"Received: controller={kind!r}"
        )
    return _CONTROLLERS[kind](hyperparameters, **kwargs)
