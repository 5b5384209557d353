"""Function-preserving network morphisms of chain-structured networks.

A network morphism changes an architecture while keeping the function the
network computes (Wei, Wang, Rui & Chen, "Network Morphism", ICML 2016;
Chen, Goodfellow & Shlens, "Net2Net: Accelerating Learning via Knowledge
Transfer", ICLR 2016), so the new network starts training where the old one
stopped:

- `net2wider` (Net2WiderNet) gives a conv / separable conv / dense layer
  more units by replicating existing ones, and divides the next layer's
  incoming weights of every replicated unit by its number of copies.
- `net2deeper` (Net2DeeperNet) inserts an identity-initialized layer of the
  same kind after a conv / separable conv / dense block.
- `inherit_by_morphism` initializes a child architecture from its parent,
  widening the parent first where the child has more units, so that a
  "more filters" mutation starts from the parent's function.

Both work on chain-structured functional models (every layer fed by the
previous one), such as those of `keras_nas.spaces.ChainSearchSpace`, and
return a new model; the original is left untouched. Batch normalization is
handled so that outputs are preserved in inference mode (its moving
statistics are replicated or set to the identity); in training mode a
newly inserted batch norm normalizes with the batch's statistics, as in
Net2Net.
"""

from __future__ import annotations

import math
from typing import Any

import keras
import numpy as np

from keras_nas.estimation.weight_transfer import (
    InheritanceReport,
    inherit_weights,
)

__all__ = ["inherit_by_morphism", "net2deeper", "net2wider"]

_WIDTH = {"Conv2D": "filters", "SeparableConv2D": "filters", "Dense": "units"}
# Layers without weights that keep the channels (one to one).
_CHANNELWISE = (
    keras.layers.Activation,
    keras.layers.ReLU,
    keras.layers.ELU,
    keras.layers.LeakyReLU,
    keras.layers.Dropout,
    keras.layers.SpatialDropout2D,
    keras.layers.MaxPooling2D,
    keras.layers.AveragePooling2D,
    keras.layers.GlobalAveragePooling2D,
    keras.layers.GlobalMaxPooling2D,
)
#: Activations `f` with `f(f(x)) == f(x)` (identity layers keep them).
_IDEMPOTENT = ("relu", "linear")


def _chain_layers(model: Any) -> list[Any]:
    """The layers of a chain-structured functional model (no input)."""
    layers = list(getattr(model, "layers", None) or [])
    fail = ValueError(
        "Expected a chain-structured functional keras.Model (one input, "
        "every layer fed by the previous one), e.g. built by "
        f"ChainSearchSpace. Received: model={getattr(model, 'name', model)!r}"
    )
    if (
        not isinstance(model, keras.Model)
        or len(model.inputs) != 1
        or len(model.outputs) != 1
        or not layers
        or not isinstance(layers[0], keras.layers.InputLayer)
    ):
        raise fail
    for previous, layer in zip(layers[:-1], layers[1:], strict=True):
        inputs = layer.input
        history = getattr(inputs, "_keras_history", None)
        if history is None or history[0] is not previous:
            raise fail
    if model.outputs[0]._keras_history[0] is not layers[-1]:
        raise fail
    return layers[1:]


def _find(layers: list[Any], name: Any) -> int:
    for i, layer in enumerate(layers):
        if layer.name == name:
            if type(layer).__name__ not in _WIDTH:
                raise ValueError(
                    "Expected `layer_name` to name a Conv2D, SeparableConv2D "
                    f"or Dense layer. Received: layer_name={name!r} "
                    f"({type(layer).__name__})"
                )
            return i
    raise ValueError(
        "Expected `layer_name` to be the name of a layer of the model. "
        f"Received: layer_name={name!r}"
    )


def _clone(layer: Any, **overrides: Any) -> Any:
    config = layer.get_config()
    config.update(overrides)
    return type(layer).from_config(config)


def _rebuild(model: Any, layers: list[Any]) -> keras.Model:
    source = model.inputs[0]
    inputs = keras.Input(
        shape=tuple(source.shape[1:]),
        dtype=source.dtype,
        name=model.layers[0].name,
    )
    x = inputs
    for layer in layers:
        x = layer(x)
    return keras.Model(inputs, x, name=model.name)


def _copy_weights(pairs: list[tuple[Any, Any]]) -> None:
    for old, new in pairs:
        if old is not None and old.weights:
            new.set_weights(old.get_weights())


# -- Net2WiderNet --------------------------------------------------------------


def net2wider(
    model: keras.Model,
    layer_name: str,
    width: int,
    noise_std: float = 0.0,
    seed: int | None = None,
) -> keras.Model:
    """Net2WiderNet: a copy of `model` with a wider conv or dense layer.

    The layer gets `width` units (filters); unit `j >= n` (the old width)
    copies a random old unit `g(j)`, with its batch-norm parameters and
    statistics, and the next conv / separable conv / dense layer divides
    the incoming weights of unit `c` by its number of copies, so the network
    computes the same function (Chen et al., "Net2Net", ICLR 2016,
    Section 2.3). Layers in between may be batch norms, activations,
    dropouts, poolings, global poolings or a flatten.

    Args:
        model: a chain-structured functional `keras.Model` (not modified).
        layer_name: name of the `Conv2D`, `SeparableConv2D` or `Dense`
            layer to widen (not the output layer).
        width: the new number of units, larger than the current one.
        noise_std: standard deviation, relative to the weights' standard
            deviation, of Gaussian noise added to the replicated units'
            incoming weights to break symmetry (0: exact function).
        seed: seed of the choice of replicated units and of the noise.

    Returns:
        A new (uncompiled) `keras.Model`.

    Example:

    ```python
    space = keras_nas.spaces.ChainSearchSpace((8, 8, 1), 10)
    wider = net2wider(model, "layer0_conv", 64)
    np.testing.assert_allclose(wider.predict(x), model.predict(x),
                               atol=1e-5)
    ```
    """
    layers = _chain_layers(model)
    i = _find(layers, layer_name)
    target = layers[i]
    key = _WIDTH[type(target).__name__]
    old = int(getattr(target, key))
    if isinstance(width, bool) or not isinstance(width, int) or width <= old:
        raise ValueError(
            f"Expected `width` to be an integer > {old} (the current width "
            f"of {layer_name!r}). Received: width={width!r}"
        )
    rng = np.random.default_rng(seed)
    mapping = np.concatenate(
        [np.arange(old), rng.integers(0, old, size=width - old)]
    )
    counts = np.bincount(mapping, minlength=old).astype("float64")

    # The layers the widened units go through, and their consumer.
    j, spatial = i + 1, 1
    while j < len(layers) and type(layers[j]).__name__ not in _WIDTH:
        layer = layers[j]
        if isinstance(layer, keras.layers.Flatten):
            spatial = math.prod(layer.input.shape[1:-1])
        elif not isinstance(
            layer, (keras.layers.BatchNormalization,) + _CHANNELWISE
        ):
            raise ValueError(
                f"Cannot widen {layer_name!r}: the layer {layer.name!r} "
                f"({type(layer).__name__}) after it is not supported. "
                f"Received: layer_name={layer_name!r}"
            )
        j += 1
    if j == len(layers):
        raise ValueError(
            f"Cannot widen {layer_name!r}: no conv or dense layer reads its "
            "units (the output layer cannot be widened). "
            f"Received: layer_name={layer_name!r}"
        )

    new_layers = [
        _clone(layer, **({key: width} if k == i else {}))
        for k, layer in enumerate(layers)
    ]
    wider = _rebuild(model, new_layers)
    _copy_weights(
        [
            (o, n)
            for k, (o, n) in enumerate(zip(layers, new_layers, strict=True))
            if not i <= k <= j
        ]
    )
    _widen_outputs(target, new_layers[i], mapping, noise_std, rng)
    for k in range(i + 1, j):
        if isinstance(layers[k], keras.layers.BatchNormalization):
            new_layers[k].set_weights(
                [w[mapping] for w in layers[k].get_weights()]
            )
    _widen_inputs(layers[j], new_layers[j], mapping, counts, spatial)
    return wider


def _widen_outputs(old, new, mapping, noise_std, rng) -> None:
    weights = old.get_weights()
    # Conv2D / Dense: kernel (..., out) [, bias]; separable: depthwise,
    # pointwise (..., out) [, bias].
    k = 1 if isinstance(old, keras.layers.SeparableConv2D) else 0
    out = list(weights)
    kernel = weights[k][..., mapping]
    if noise_std:
        extra = np.arange(len(mapping)) >= weights[k].shape[-1]
        scale = noise_std * float(np.std(weights[k]))
        kernel[..., extra] += rng.normal(
            0.0, scale, size=kernel[..., extra].shape
        ).astype(kernel.dtype)
    out[k] = kernel
    if len(weights) > k + 1:
        out[k + 1] = weights[k + 1][mapping]
    new.set_weights(out)


def _widen_inputs(old, new, mapping, counts, spatial) -> None:
    weights = old.get_weights()
    scale = (1.0 / counts[mapping]).astype(weights[0].dtype)
    if isinstance(old, keras.layers.SeparableConv2D):
        depthwise, pointwise = weights[0], weights[1]
        multiplier = depthwise.shape[-1]
        rows = mapping[:, None] * multiplier + np.arange(multiplier)
        row_scale = np.repeat(scale, multiplier)
        out = [
            depthwise[:, :, mapping, :],
            pointwise[:, :, rows.reshape(-1), :] * row_scale[:, None],
        ] + weights[2:]
    elif isinstance(old, keras.layers.Conv2D):
        out = [weights[0][:, :, mapping, :] * scale[:, None]] + weights[1:]
    else:  # Dense, possibly after a Flatten of `spatial` positions.
        n = len(counts)
        rows = (np.arange(spatial)[:, None] * n + mapping[None, :]).reshape(-1)
        out = [weights[0][rows] * np.tile(scale, spatial)[:, None]]
        out += weights[1:]
    new.set_weights(out)


# -- Net2DeeperNet -------------------------------------------------------------


def net2deeper(
    model: keras.Model,
    layer_name: str,
    kernel_size: int = 3,
    activation: str | None = None,
) -> keras.Model:
    """Net2DeeperNet: a copy of `model` with an identity layer inserted.

    After the block of `layer_name` (the layer and the batch norm,
    activation and dropout layers that follow it) a layer of the same kind
    is inserted, initialized to the identity: a conv with a centered one-hot
    `kernel_size` kernel ("same" padding, stride 1), a separable conv with
    a one-hot depthwise and an identity pointwise kernel, or a dense layer
    with an identity matrix; zero biases. When the block has a batch norm,
    so does the new layer (moving mean 0, variance 1, scale
    `sqrt(1 + epsilon)`: the identity in inference mode). Its activation
    `f` must satisfy `f(f(x)) = f(x)` for the function to be preserved
    (Chen et al., "Net2Net", ICLR 2016, Section 2.4): by default the
    block's own activation if it is ReLU, else linear.

    Args:
        model: a chain-structured functional `keras.Model` (not modified).
        layer_name: name of a `Conv2D`, `SeparableConv2D` or `Dense` layer.
        kernel_size: odd kernel size of an inserted conv.
        activation: activation of the inserted layer (default: see above).

    Returns:
        A new (uncompiled) `keras.Model`; the new layers are named
        `f"{layer_name}_deeper"` (`_bn`, `_act` for batch norm and
        activation).

    Example:

    ```python
    deeper = net2deeper(model, "layer1_dense")
    np.testing.assert_allclose(deeper.predict(x), model.predict(x),
                               atol=1e-5)
    ```
    """
    layers = _chain_layers(model)
    i = _find(layers, layer_name)
    target = layers[i]
    if (
        isinstance(kernel_size, bool)
        or not isinstance(kernel_size, int)
        or kernel_size < 1
        or kernel_size % 2 == 0
    ):
        raise ValueError(
            "Expected `kernel_size` to be an odd positive integer. "
            f"Received: kernel_size={kernel_size!r}"
        )
    end, bn, block_activation = (
        i + 1,
        None,
        target.get_config().get("activation", "linear"),
    )
    while end < len(layers) and isinstance(
        layers[end],
        (
            keras.layers.BatchNormalization,
            keras.layers.Activation,
            keras.layers.ReLU,
            keras.layers.Dropout,
        ),
    ):
        layer = layers[end]
        if isinstance(layer, keras.layers.BatchNormalization):
            bn = layer
        elif isinstance(layer, keras.layers.ReLU):
            block_activation = "relu"
        elif isinstance(layer, keras.layers.Activation):
            block_activation = layer.get_config()["activation"]
        end += 1
    if activation is None:
        activation = (
            block_activation if block_activation in _IDEMPOTENT else "linear"
        )
    width = int(getattr(target, _WIDTH[type(target).__name__]))
    inserted = _identity_layers(target, width, kernel_size, bn, activation)
    new_layers = [_clone(layer) for layer in layers]
    deeper = _rebuild(model, new_layers[:end] + inserted + new_layers[end:])
    _copy_weights(list(zip(layers, new_layers, strict=True)))
    _init_identity(inserted, width, kernel_size)
    return deeper


def _identity_layers(target, width, kernel_size, bn, activation) -> list:
    name = f"{target.name}_deeper"
    use_bias = bn is None
    if isinstance(target, keras.layers.Dense):
        out = [keras.layers.Dense(width, use_bias=use_bias, name=name)]
    else:
        kind = (
            keras.layers.SeparableConv2D
            if isinstance(target, keras.layers.SeparableConv2D)
            else keras.layers.Conv2D
        )
        out = [
            kind(
                width,
                kernel_size,
                padding="same",
                use_bias=use_bias,
                name=name,
            )
        ]
    if bn is not None:
        config = bn.get_config()
        config["name"] = f"{name}_bn"
        out.append(keras.layers.BatchNormalization.from_config(config))
    if activation != "linear":
        out.append(keras.layers.Activation(activation, name=f"{name}_act"))
    return out


def _init_identity(inserted, width, kernel_size) -> None:
    layer = inserted[0]
    weights = layer.get_weights()
    eye = np.eye(width, dtype=weights[0].dtype)
    if isinstance(layer, keras.layers.Dense):
        weights[0] = eye
    else:
        c = kernel_size // 2
        if isinstance(layer, keras.layers.SeparableConv2D):
            weights[0] = np.zeros_like(weights[0])
            weights[0][c, c, :, 0] = 1.0
            weights[1] = eye[None, None]
        else:
            weights[0] = np.zeros_like(weights[0])
            weights[0][c, c] = eye
    for k in range(
        2 if isinstance(layer, keras.layers.SeparableConv2D) else 1,
        len(weights),
    ):
        weights[k] = np.zeros_like(weights[k])  # Bias.
    layer.set_weights(weights)
    if len(inserted) > 1 and isinstance(
        inserted[1], keras.layers.BatchNormalization
    ):
        bn = inserted[1]
        values = {
            "gamma": math.sqrt(1.0 + bn.epsilon),
            "beta": 0.0,
            "moving_mean": 0.0,
            "moving_variance": 1.0,
        }
        for variable in bn.weights:
            variable.assign(
                np.full(variable.shape, values[variable.name], variable.dtype)
            )


# -- Inheritance through morphisms -------------------------------------------


def _width_only_change(old: Any, new: Any) -> bool:
    """Same layer but for more units (filters)."""
    if type(old) is not type(new) or type(old).__name__ not in _WIDTH:
        return False
    key = _WIDTH[type(old).__name__]
    a, b = dict(old.get_config()), dict(new.get_config())
    if a.pop(key) >= b.pop(key):
        return False
    skip = ("name", "kernel_initializer", "bias_initializer")
    return all(a.get(k) == b.get(k) for k in set(a) | set(b) if k not in skip)


def inherit_by_morphism(
    child_model: keras.Model,
    parent_model: keras.Model,
    noise_std: float = 0.0,
    seed: int | None = None,
) -> InheritanceReport:
    """Weight inheritance that widens the parent first (Net2WiderNet).

    For every top-level conv / separable conv / dense layer that the child
    has with the same name and configuration as the parent but more units,
    the parent is widened to that width with `net2wider` (a function-
    preserving morphism, Chen et al., ICLR 2016); then `inherit_weights`
    copies every corresponding layer of the widened parent into the child.
    A child that differs from its parent only by wider layers therefore
    starts with exactly the parent's function (Wei et al., "Network
    Morphism", ICML 2016), where plain inheritance would leave the widened
    layer and the layer reading it freshly initialized. Layers that cannot
    be widened (not a chain model, unsupported layers in between) fall back
    to plain inheritance.

    Args:
        child_model: the built `keras.Model` to initialize (in place).
        parent_model: the trained parent (not modified).
        noise_std: see `net2wider`.
        seed: seed of the replicated units.

    Returns:
        The `InheritanceReport` of the final copy.

    Example:

    ```python
    # The child's mutation: layer1/filters 16 -> 32.
    report = inherit_by_morphism(child, parent)
    report.fraction  # 1.0: child(x) == parent(x) in inference mode
    ```
    """
    source = parent_model
    for layer in child_model.layers:
        try:
            old = source.get_layer(layer.name)
        except ValueError:
            continue
        if not _width_only_change(old, layer):
            continue
        key = _WIDTH[type(layer).__name__]
        try:
            source = net2wider(
                source,
                layer.name,
                int(getattr(layer, key)),
                noise_std=noise_std,
                seed=seed,
            )
        except ValueError:
            continue
    return inherit_weights(child_model, source)
