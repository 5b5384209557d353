"""Zero-cost proxies: score an architecture at initialization, untrained.

A zero-cost proxy scores a freshly initialized network from one minibatch
(or none) in about the time of one training step, so a search can rank
thousands of candidates without training any (Abdelfattah et al.,
"Zero-Cost Proxies for Lightweight NAS", ICLR 2021). Implemented proxies
(`ZERO_COST_PROXIES`; larger is better for all):

- `"grad_norm"`: sum over the weight tensors of the L2 norm of the
  cross-entropy gradient (Abdelfattah et al., 2021).
- `"snip"`: `sum |w * dL/dw|`, the connection sensitivity of SNIP (Lee et
  al., "SNIP: Single-shot Network Pruning based on Connection
  Sensitivity", ICLR 2019).
- `"fisher"`: sum over the outputs of every Dense/Conv layer of
  `0.5 * mean_n (sum_spatial a * dL/da)^2` (Theis et al., 2018; Turner et
  al., "BlockSwap", ICLR 2020), as in Abdelfattah et al.
- `"synflow"`: data-free synaptic flow (Tanaka et al., "Pruning neural
  networks without any data by iteratively conserving synaptic flow",
  NeurIPS 2020): all parameters replaced by their absolute values, an
  all-ones input, batch normalization removed (as Abdelfattah et al. do),
  `R = sum(logits)` and the score `sum |w * dR/dw|`; computed in float64
  where the backend allows (TensorFlow; JAX with `jax_enable_x64`).
- `"naswot"`: the log-determinant of the kernel of binary ReLU activation
  codes, `K[i, j] = N_A - hamming(c_i, c_j)` (Mellor et al., "Neural
  Architecture Search without Training", ICML 2021).
- `"jacob_cov"`: the input-Jacobian correlation score of Mellor et al.'s
  first version (arXiv:2006.04647, 2020), as in Abdelfattah et al.:
  `-sum(log(v + k) + 1 / (v + k))` over the eigenvalues `v` of the
  correlation matrix of the per-example Jacobians, `k = 1e-5`.

Weight-based sums (`grad_norm`, `snip`, `synflow`) run over the weight
tensors of rank >= 2 (kernels of Dense and convolution layers; biases and
normalization parameters excluded, as Abdelfattah et al. use the weights
of `Conv2d` and `Linear` layers). Models that end in a softmax (the output
layer's `activation="softmax"`, or a `Softmax` layer) are scored on their
logits: the softmax is bypassed during scoring; any other output is taken
as logits; of several outputs, the first (or `"predictions"`) is scored.
Data-dependent proxies run the network in training mode (batch
statistics), as the reference implementations do; the model's state
(weights, batch-norm statistics) is left as it was.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from keras_nas._backend import backend_module
from keras_nas._validation import check_choice
from keras_nas.estimation._proxy_plumbing import (
    _as_logits,
    _copy,
    _cross_entropy,
    _input_shape,
    _kernel_indices,
    _labels,
    _preserved_state,
    _relu_inputs,
    _sum,
    _synflow_dtype,
    _Tap,
    _weight_layers,
    _weights,
    _without_batch_norm,
)

__all__ = ["ZERO_COST_PROXIES", "naswot_kernel", "zero_cost_score"]

#: Names of the implemented proxies (larger is better for every one).
ZERO_COST_PROXIES: tuple[str, ...] = (
    "grad_norm",
    "snip",
    "fisher",
    "synflow",
    "naswot",
    "jacob_cov",
)

_NEED_LABELS = ("grad_norm", "snip", "fisher")
_JACOB_COV_K = 1e-5


def _backend_module():
    return backend_module(
        "keras_nas.estimation", "_zero_cost", "Zero-cost proxies"
    )



def _saliency(weights: list, grads: list, kernels: list[int]) -> float:
    """`sum |w * dL/dw|` over the kernels (SNIP's and synflow's score)."""
    return float(
        sum(
            np.sum(np.abs(weights[i].astype("float64") * grads[i]))
            for i in kernels
        )
    )


def _gradient_proxy(model, x, y, proxy: str, training: bool) -> float:
    backend = _backend_module()
    with _as_logits(model), _preserved_state(model):
        _, grads = backend.gradients(
            model, x, _cross_entropy(_labels(y)), training
        )
    kernels = _kernel_indices(model)
    if proxy == "grad_norm":
        return float(
            sum(
                np.sqrt(np.sum(np.square(grads[i], dtype="float64")))
                for i in kernels
            )
        )
    return _saliency(_weights(model), grads, kernels)


def _fisher(model, x, y, training: bool) -> float:
    backend = _backend_module()
    tap = _Tap(_weight_layers(model))
    if not tap.layers:
        raise ValueError(
            "Expected Dense or convolution layers for proxy='fisher'. "
            f"Received: model={model.name!r} without any"
        )
    with _as_logits(model), _preserved_state(model):
        acts, grads = backend.activation_gradients(
            model, x, _cross_entropy(_labels(y)), training, tap
        )
    total = 0.0
    for act, grad in zip(acts, grads, strict=True):
        prod = np.asarray(act, "float64") * np.asarray(grad, "float64")
        if prod.ndim > 2:  # Channels last: sum over the spatial axes.
            prod = prod.sum(axis=tuple(range(1, prod.ndim - 1)))
        total += float(np.sum(0.5 * np.mean(np.square(prod), axis=0)))
    return total


def _synflow(model, x) -> float:
    import keras

    backend = _backend_module()
    dtype = _synflow_dtype()
    shape = _input_shape(model, x)
    net = _copy(model, dtype)
    saved = None
    if net is None:
        warnings.warn(
            f"synflow: could not copy model {model.name!r} to {dtype}; "
            "computing in its own dtype (may overflow for deep networks).",
            stacklevel=3,
        )
        net, saved = model, model.get_weights()
        dtype = keras.backend.standardize_dtype(model.variables[0].dtype)
    try:
        for v in net.variables:
            if "float" in keras.backend.standardize_dtype(v.dtype):
                v.assign(keras.ops.abs(v.value))
        ones = np.ones((1,) + shape, dtype=dtype)
        with _as_logits(net), _without_batch_norm(net):
            _, grads = backend.gradients(net, ones, _sum, False)
        score = _saliency(_weights(net), grads, _kernel_indices(net))
    finally:
        if saved is not None:
            model.set_weights(saved)
    return score


def naswot_kernel(codes: Sequence[np.ndarray]) -> np.ndarray:
    """The NASWOT kernel `K[i, j] = N_A - hamming(c_i, c_j)`.

    Args:
        codes: per ReLU, an array `(batch, ...)` of its inputs (a unit is
            "on" where the input is > 0).

    Returns:
        The `(batch, batch)` float64 kernel.
    """
    n = len(codes[0])
    kernel = np.zeros((n, n))
    for c in codes:
        c = (np.asarray(c).reshape(n, -1) > 0).astype("float64")
        kernel += c @ c.T + (1.0 - c) @ (1.0 - c).T
    return kernel


def _naswot(model, x, training: bool) -> float:
    import keras

    with _preserved_state(model), _relu_inputs() as recorded:
        model(keras.ops.convert_to_tensor(x), training=training)
    if not recorded:
        raise ValueError(
            "Expected ReLU activations in the model for proxy='naswot'. "
            f"Received: model={model.name!r} that evaluated none"
        )
    codes = [keras.ops.convert_to_numpy(r) for r in recorded]
    sign, logdet = np.linalg.slogdet(naswot_kernel(codes))
    return float(logdet) if sign > 0 else float("-inf")


def _jacob_cov(model, x, training: bool) -> float:
    backend = _backend_module()
    with _as_logits(model), _preserved_state(model):
        jac = backend.input_gradient(model, x, _sum, training)
    jac = np.asarray(jac, "float64").reshape(len(jac), -1)
    with np.errstate(all="ignore"):
        corr = np.corrcoef(jac)
    if not np.all(np.isfinite(corr)):
        return float("-inf")
    v = np.linalg.eigvalsh(corr)
    k = _JACOB_COV_K
    return float(-np.sum(np.log(v + k) + 1.0 / (v + k)))


def _check_proxy(proxy: Any) -> str:
    return check_choice("proxy", proxy, ZERO_COST_PROXIES)


def zero_cost_score(
    model: Any,
    x: Any = None,
    y: Any = None,
    proxy: str = "synflow",
    training: bool = True,
) -> float:
    """Scores an (untrained) Keras model with a zero-cost proxy.

    See the module docstring for the definitions (Abdelfattah et al.,
    "Zero-Cost Proxies for Lightweight NAS", ICLR 2021). Larger is better
    for every proxy. The model is left unchanged.

    Args:
        model: a built Keras model, e.g. a classifier with a softmax output
            (scored on its logits) or one that outputs logits.
        x: one minibatch of inputs (a NumPy array). Optional for
            `"synflow"`, which only needs the input shape.
        y: integer (or one-hot) labels of `x`; needed by `"grad_norm"`,
            `"snip"` and `"fisher"`.
        proxy: one of `ZERO_COST_PROXIES`.
        training: run data-dependent proxies in training mode (batch
            statistics in batch normalization), as the reference code does.

    Returns:
        The score, a float. `"naswot"` and `"jacob_cov"` give `-inf` for a
        degenerate network (all examples with the same activation pattern
        or Jacobian).

    Example:

    ```python
    model = keras.Sequential([
        keras.Input((64,)),
        keras.layers.Dense(32, activation="relu"),
        keras.layers.Dense(10, activation="softmax"),
    ])
    zero_cost_score(model, proxy="synflow")
    zero_cost_score(model, x[:64], y[:64], proxy="snip")
    ```
    """
    proxy = _check_proxy(proxy)
    if proxy == "synflow":
        return _synflow(model, x)
    if x is None:
        raise ValueError(
            f"Expected a minibatch `x` for proxy={proxy!r}. Received: x=None"
        )
    x = np.asarray(x)
    if proxy in _NEED_LABELS:
        if y is None:
            raise ValueError(
                f"Expected labels `y` for proxy={proxy!r}. Received: y=None"
            )
        if proxy == "fisher":
            return _fisher(model, x, y, training)
        return _gradient_proxy(model, x, y, proxy, training)
    if proxy == "naswot":
        return _naswot(model, x, training)
    return _jacob_cov(model, x, training)
