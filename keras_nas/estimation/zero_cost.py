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

import contextlib
import json
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from keras_nas._backend import backend_module
from keras_nas._validation import check_positive_int
from keras_nas.estimation._protocol import (
    fit_data,
    provided_metrics,
    wrap_tuner,
)

__all__ = ["ZERO_COST_PROXIES", "ZeroCost", "zero_cost_score"]

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


# ---------------------------------------------------------------------------
# Backend and model plumbing.
# ---------------------------------------------------------------------------


def _backend_module():
    return backend_module(
        "keras_nas.estimation", "_zero_cost", "Zero-cost proxies"
    )


def _all_layers(model: Any) -> list:
    flatten = getattr(model, "_flatten_layers", None)
    if flatten is not None:
        return list(flatten(include_self=False, recursive=True))
    return list(getattr(model, "layers", []))


def _output_layers(model: Any) -> list:
    layers = []
    for tensor in getattr(model, "outputs", None) or []:
        history = getattr(tensor, "_keras_history", None)
        if history is not None:
            layers.append(history[0])
    if not layers and getattr(model, "layers", None):
        layers.append(model.layers[-1])
    return layers


def _identity_call(inputs, *args, **kwargs):
    return inputs


@contextlib.contextmanager
def _patched(obj: Any, name: str, value: Any) -> Iterator[None]:
    """Sets an (instance) attribute for the duration of the block."""
    had = name in vars(obj)
    old = vars(obj).get(name)
    setattr(obj, name, value)
    try:
        yield
    finally:
        if had:
            setattr(obj, name, old)
        else:
            delattr(obj, name)


@contextlib.contextmanager
def _as_logits(model: Any) -> Iterator[None]:
    """Bypasses a softmax at the output of `model` during the block."""
    import keras

    with contextlib.ExitStack() as stack:
        for layer in _output_layers(model):
            if isinstance(layer, keras.layers.Softmax):
                stack.enter_context(_patched(layer, "call", _identity_call))
            elif getattr(layer, "activation", None) is (
                keras.activations.softmax
            ):
                stack.enter_context(
                    _patched(layer, "activation", keras.activations.linear)
                )
        yield


@contextlib.contextmanager
def _without_batch_norm(model: Any) -> Iterator[None]:
    """Makes every BatchNormalization layer the identity in the block."""
    import keras

    with contextlib.ExitStack() as stack:
        for layer in _all_layers(model):
            if isinstance(layer, keras.layers.BatchNormalization):
                stack.enter_context(_patched(layer, "call", _identity_call))
        yield


@contextlib.contextmanager
def _preserved_state(model: Any) -> Iterator[None]:
    """Restores the non-trainable variables (BN statistics) after the block."""
    import keras

    saved = [
        (v, keras.ops.convert_to_numpy(v.value))
        for v in model.non_trainable_variables
    ]
    try:
        yield
    finally:
        for variable, value in saved:
            variable.assign(value)


@contextlib.contextmanager
def _relu_inputs() -> Iterator[list]:
    """Records the input of every ReLU evaluated in the block.

    Hooks the backend's `relu` kernel, which `keras.ops.relu`,
    `keras.activations.relu`, `keras.layers.ReLU` and `activation="relu"`
    all reach in eager execution.
    """
    from keras.src import backend

    module = backend.nn
    original = module.relu
    recorded: list = []

    def relu(x):
        recorded.append(x)
        return original(x)

    module.relu = relu
    try:
        yield recorded
    finally:
        module.relu = original


class _Tap:
    """Records (and optionally perturbs) the outputs of some layers.

    Used for the activation gradients of `fisher`: `active(perturbations)`
    adds `perturbations[i]` to the i-th recorded output, so a gradient
    w.r.t. the perturbations is the gradient w.r.t. the outputs.
    """

    def __init__(self, layers: Sequence):
        self.layers = list(layers)
        self.outputs: list = []

    @contextlib.contextmanager
    def active(self, perturbations: Sequence | None = None) -> Iterator[list]:
        self.outputs = []
        with contextlib.ExitStack() as stack:
            for layer in self.layers:
                stack.enter_context(
                    _patched(
                        layer, "call", self._wrap(layer.call, perturbations)
                    )
                )
            yield self.outputs

    def _wrap(self, call: Callable, perturbations) -> Callable:
        def tapped(*args, **kwargs):
            out = call(*args, **kwargs)
            if perturbations is not None:
                out = out + perturbations[len(self.outputs)]
            self.outputs.append(out)
            return out

        return tapped


def _weight_layers(model: Any) -> list:
    import keras

    kinds = (keras.layers.Dense, keras.layers.Conv1D, keras.layers.Conv2D)
    kinds += (keras.layers.Conv3D, keras.layers.DepthwiseConv2D)
    kinds += (keras.layers.SeparableConv2D,)
    return [layer for layer in _all_layers(model) if isinstance(layer, kinds)]


def _kernel_indices(model: Any) -> list[int]:
    return [
        i for i, v in enumerate(model.trainable_variables) if len(v.shape) >= 2
    ]


def _with_dtype(config: Any, dtype: str) -> Any:
    """A serialized model config with every float dtype set to `dtype`."""
    floats = ("float16", "bfloat16", "float32", "float64")
    if isinstance(config, dict):
        out = {}
        for key, value in config.items():
            if key == "dtype" and isinstance(value, str) and value in floats:
                value = dtype
            elif (
                key == "dtype"
                and isinstance(value, dict)
                and "DTypePolicy" in str(value.get("class_name"))
            ):
                value = {**value, "config": {"name": dtype}}
                value["class_name"] = "DTypePolicy"
            else:
                value = _with_dtype(value, dtype)
            out[key] = value
        return out
    if isinstance(config, list):
        return [_with_dtype(v, dtype) for v in config]
    return config


def _copy(model: Any, dtype: str) -> Any:
    """A copy of `model` (same weights) computing in `dtype`, or None."""
    import keras

    previous = keras.config.dtype_policy()
    try:
        config = _with_dtype(keras.saving.serialize_keras_object(model), dtype)
        config = json.loads(json.dumps(config))
        keras.config.set_dtype_policy(dtype)
        try:
            clone = keras.saving.deserialize_keras_object(config)
        finally:
            keras.config.set_dtype_policy(previous)
        weights = model.get_weights()
        if [w.shape for w in clone.get_weights()] != [w.shape for w in weights]:
            return None
        clone.set_weights([np.asarray(w, dtype=dtype) for w in weights])
        return clone
    except Exception:  # Not serializable: the caller falls back.
        return None


def _synflow_dtype() -> str:
    import keras

    if keras.backend.backend() == "jax":
        import jax

        return "float64" if jax.config.jax_enable_x64 else "float32"
    return "float64"


def _input_shape(model: Any, x: Any) -> tuple[int, ...]:
    if x is not None:
        return tuple(np.shape(x)[1:])
    inputs = getattr(model, "inputs", None)
    if inputs:
        shape = tuple(inputs[0].shape[1:])
        if all(d is not None for d in shape):
            return shape
    raise ValueError(
        "Expected a batch `x` to know the input shape of a model without "
        "fixed input shape. Received: x=None"
    )


def _labels(y: Any) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim > 1 and y.shape[-1] > 1:  # One-hot.
        y = y.argmax(axis=-1)
    return y.reshape(len(y)).astype("int32")


def _main_output(out: Any) -> Any:
    """The main output of a multi-output model (e.g. DARTS' auxiliary)."""
    if isinstance(out, dict):
        return (
            out["predictions"]
            if "predictions" in out
            else (next(iter(out.values())))
        )
    if isinstance(out, (list, tuple)):
        return out[0]
    return out


def _cross_entropy(y: np.ndarray) -> Callable:
    import keras

    def loss(out):
        return keras.ops.mean(
            keras.losses.sparse_categorical_crossentropy(
                y, _main_output(out), from_logits=True
            )
        )

    return loss


def _sum(out):
    import keras

    return keras.ops.sum(_main_output(out))


def _weights(model: Any) -> list[np.ndarray]:
    import keras

    return [
        keras.ops.convert_to_numpy(v.value) for v in model.trainable_variables
    ]


# ---------------------------------------------------------------------------
# The proxies.
# ---------------------------------------------------------------------------


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
    weights = _weights(model)
    return float(
        sum(
            np.sum(np.abs(weights[i].astype("float64") * grads[i]))
            for i in kernels
        )
    )


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
        weights = _weights(net)
        score = sum(
            np.sum(np.abs(weights[i].astype("float64") * grads[i]))
            for i in _kernel_indices(net)
        )
    finally:
        if saved is not None:
            model.set_weights(saved)
    return float(score)


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
    if proxy not in ZERO_COST_PROXIES:
        raise ValueError(
            f"Expected `proxy` to be one of {list(ZERO_COST_PROXIES)}. "
            f"Received: proxy={proxy!r}"
        )
    return proxy


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


# ---------------------------------------------------------------------------
# The estimator.
# ---------------------------------------------------------------------------


class ZeroCost:
    """Scores trials with zero-cost proxies of their untrained network.

    A performance estimator for any keras-nas tuner (`estimator=`), or any
    keras-tuner tuner through `wrap`: each trial's model is built by the
    tuner's hypermodel (`tuner.hypermodel.build(trial.hyperparameters)`),
    scored at initialization on a fixed minibatch of the search data, and
    discarded; nothing is trained (Abdelfattah et al., "Zero-Cost Proxies
    for Lightweight NAS", ICLR 2021).

    The estimate is a dict with one metric per proxy, named
    `"zero_cost_<proxy>"` (e.g. `"zero_cost_synflow"`). Larger is better,
    so the tuner's objective must be e.g.
    `keras_tuner.Objective("zero_cost_synflow", "max")` (also given by
    `ZeroCost(...).objective`).

    Args:
        proxy: one of `ZERO_COST_PROXIES`, or a sequence of them (all are
            reported; the first is `objective`).
        batch_size: examples in the minibatch drawn from the search's `x`.
        num_batches: minibatches to average the data-dependent proxies
            over (distinct, drawn without replacement).
        seed: seeds the minibatch choice and, through
            `keras.utils.set_random_seed`, the weight initialization of
            every trial's model, so that all trials are scored alike and
            reproducibly (None: unseeded).
        training: run data-dependent proxies in training mode.

    Example:

    ```python
    space = keras_nas.spaces.NasBench201SearchSpace(
        input_shape=(8, 8, 1), num_classes=10, filters=8,
        cells_per_stage=1)
    estimator = ZeroCost(proxy="synflow", seed=0)
    tuner = keras_nas.tuners.AgingEvolution(
        space, objective=estimator.objective, max_trials=500,
        estimator=estimator, seed=0)
    tuner.search(x_train, y_train)
    # Zero-cost scores only roughly rank networks: retrain the top ones.
    best = keras_nas.estimation.retrain_top_k(
        tuner, 5, x_train, y_train, (x_val, y_val), epochs=30)[0]
    ```
    """

    def __init__(
        self,
        proxy: str | Sequence[str] = "synflow",
        batch_size: int = 64,
        num_batches: int = 1,
        seed: int | None = 0,
        training: bool = True,
    ):
        proxies = (proxy,) if isinstance(proxy, str) else tuple(proxy)
        if not proxies:
            raise ValueError(
                "Expected `proxy` to be a proxy name or a non-empty "
                f"sequence of them. Received: proxy={proxy!r}"
            )
        self.proxies = tuple(_check_proxy(p) for p in proxies)
        self.batch_size = check_positive_int("batch_size", batch_size)
        self.num_batches = check_positive_int("num_batches", num_batches)
        if seed is not None:
            check_positive_int("seed", seed, minimum=0)
        self.seed = seed
        self.training = bool(training)
        self.num_estimates = 0

    @property
    def metric_names(self) -> tuple[str, ...]:
        """The reported metrics, `"zero_cost_<proxy>"` per proxy."""
        return tuple(f"zero_cost_{p}" for p in self.proxies)

    @property
    def objective(self) -> Any:
        """`keras_tuner.Objective` of the first proxy (direction "max")."""
        import keras_tuner

        return keras_tuner.Objective(self.metric_names[0], "max")

    def batches(self, x: Any, y: Any = None) -> list[tuple[Any, Any]]:
        """The `num_batches` minibatches `(x, y)` scored for every trial."""
        if x is None:
            return []
        x = np.asarray(x)
        rng = np.random.default_rng(self.seed)
        size = min(self.batch_size, len(x))
        count = min(self.num_batches, max(1, len(x) // size))
        order = rng.permutation(len(x))[: size * count]
        out = []
        for b in range(count):
            idx = np.sort(order[b * size : (b + 1) * size])
            out.append((x[idx], None if y is None else np.asarray(y)[idx]))
        return out

    def score_model(self, model: Any, x: Any, y: Any = None) -> dict:
        """The metrics dict of one built model on the search data `x, y`."""
        batches = self.batches(x, y)
        out = {}
        for proxy, name in zip(self.proxies, self.metric_names, strict=True):
            if proxy == "synflow":
                shape_batch = batches[0][0] if batches else None
                out[name] = zero_cost_score(model, shape_batch, proxy=proxy)
                continue
            if not batches:
                raise ValueError(
                    f"Expected training data `x` in `search(...)` for "
                    f"proxy={proxy!r}. Received: x=None"
                )
            values = [
                zero_cost_score(model, bx, by, proxy, self.training)
                for bx, by in batches
            ]
            out[name] = float(np.mean(values))
        return out

    def estimate(
        self, tuner: Any, trial: Any, *fit_args: Any, **fit_kwargs: Any
    ) -> dict[str, float]:
        """The `estimator` protocol of `keras_nas.tuners`: a metrics dict."""
        import keras

        self._check_objective(tuner)
        hypermodel = getattr(tuner, "hypermodel", None)
        if hypermodel is None:
            raise ValueError(
                "Expected a tuner with a hypermodel (the search space) to "
                "build the trials. Received: tuner.hypermodel=None"
            )
        x, y, _ = fit_data(fit_args, fit_kwargs)
        if self.seed is not None:
            keras.utils.set_random_seed(self.seed)
        model = hypermodel.build(trial.hyperparameters)
        try:
            return self.score_model(model, x, y)
        finally:
            self.num_estimates += 1
            del model

    def _check_objective(self, tuner: Any) -> None:
        objective = getattr(getattr(tuner, "oracle", None), "objective", None)
        parts = getattr(objective, "objectives", None) or [objective]
        names = [getattr(o, "name", None) for o in parts]
        known = set(self.metric_names) | provided_metrics()
        for name in names:
            if isinstance(name, str) and name not in known:
                raise ValueError(
                    "Expected the tuner's objective to be among the metrics "
                    f"{list(self.metric_names)}, e.g. keras_tuner.Objective("
                    f"{self.metric_names[0]!r}, 'max'). Received: objective="
                    f"{name!r}"
                )

    def wrap(self, tuner: Any) -> Any:
        """Makes a keras-tuner tuner score its trials with zero-cost proxies.

        Replaces `tuner.run_trial` (on this instance only) by `estimate`;
        the tuner's objective must be one of `metric_names` (direction
        "max").

        Returns:
            The same tuner.

        Example:

        ```python
        estimator = ZeroCost("naswot")
        tuner = estimator.wrap(keras_tuner.RandomSearch(
            space, objective=estimator.objective, max_trials=500))
        tuner.search(x, y)
        ```
        """
        return wrap_tuner(self, tuner)
