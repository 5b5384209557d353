"""Model plumbing of the zero-cost proxies (`zero_cost_proxies`).

Temporary changes to a Keras model while a proxy scores it (a softmax
output bypassed, batch normalization removed, the batch-norm statistics
restored, ReLU inputs or layer outputs recorded), a copy of a model in
float64, and the losses and weight lists the proxies differentiate.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np


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
def _all_patched(patches: Iterable[tuple]) -> Iterator[None]:
    """Applies every `_patched(obj, name, value)` for the block."""
    with contextlib.ExitStack() as stack:
        for obj, name, value in patches:
            stack.enter_context(_patched(obj, name, value))
        yield


def _as_logits(model: Any) -> contextlib.AbstractContextManager:
    """Bypasses a softmax at the output of `model` during the block."""
    import keras

    patches = []
    for layer in _output_layers(model):
        if isinstance(layer, keras.layers.Softmax):
            patches.append((layer, "call", _identity_call))
        elif getattr(layer, "activation", None) is keras.activations.softmax:
            patches.append((layer, "activation", keras.activations.linear))
    return _all_patched(patches)


def _without_batch_norm(model: Any) -> contextlib.AbstractContextManager:
    """Makes every BatchNormalization layer the identity in the block."""
    import keras

    return _all_patched(
        (layer, "call", _identity_call)
        for layer in _all_layers(model)
        if isinstance(layer, keras.layers.BatchNormalization)
    )


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
        patches = [
            (layer, "call", self._wrap(layer.call, perturbations))
            for layer in self.layers
        ]
        with _all_patched(patches):
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
