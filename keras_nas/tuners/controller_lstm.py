"""The recurrent controller of Zoph & Le (2017), as used by ENAS.

See `LSTMController`; the policy API is that of
`keras_nas.tuners.controller_base.Controller`.
"""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np

from keras_nas._backend import backend_module
from keras_nas.tuners.controller_base import Controller, _softmax

__all__ = ["LSTMController"]


class _NumpyOps:
    """The few `keras.ops` the LSTM controller needs, in NumPy."""

    matmul = staticmethod(np.matmul)
    split = staticmethod(np.split)
    tanh = staticmethod(np.tanh)

    @staticmethod
    def sigmoid(x):
        return 0.5 * (np.tanh(0.5 * x) + 1.0)


def _backend_module():
    """`_controller_tensorflow` or `_controller_jax`. Each provides:

    - `gradient_function(loss_fn)`: `loss_fn(values, actions, advantage)`,
      built from `keras.ops`, returns a scalar (`values`: the list of the
      controller's variable values); the result, `grad_fn(values, actions,
      advantage)`, returns the list of gradients w.r.t. `values` (zeros for
      the variables the loss does not use), compiled.
    - `apply_function(optimizer, variables)`: `apply(grads)` of a built
      Keras `optimizer`.
    """
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
                # The action's entries picked by one-hot products instead
                # of gathers (whose gradients are scatters): the same
                # values and gradients (the other terms are exact zeros),
                # XLA compiles the gradient ~25% faster (JAX: 15 -> 12 s
                # CPU for the cell space's 32 decisions; RESULTS.md).
                hot = ops.one_hot(
                    actions[i], log_probs.shape[-1], dtype=log_probs.dtype
                )
                logp = logp + ops.sum(hot * log_probs)
                entropy = entropy - ops.sum(ops.exp(log_probs) * log_probs)
                x = ops.matmul(hot[None, :], params[f"embedding/{name}"])
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
