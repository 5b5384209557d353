"""Batch normalization of the TensorFlow DARTS passes as one fused op.

Keras' `BatchNormalization` in training mode writes its batch statistics
as ~25 graph ops (`tf.nn.moments`, the normalization's arithmetic, casts)
and its gradient as ~30 more. A DARTS edge holds 8 of them (the micro
configuration: 587 in the model), so they were about half of every
traced edge body and its gradient, and of the cells' preprocessing in
the step's own graph; TensorFlow's trace, its graph passes (XLA's
reference-variable check instantiates every called body again) and its
grappler runs all grow with them. `fused_batch_norm(model)` evaluates
the model's batch normalization layers in training mode with
`FusedBatchNormV3` (one op, one gradient op) while a pass runs, and
updates the moving statistics as Keras does: the same arithmetic (the
biased batch variance in the moving average), float32 rounding apart.
The layers, their variables and their configs are Keras' own (saved
files unchanged); the override is an attribute of each layer object
that lives only as long as the context.

Micro configuration, first order, TF graph: the first `fit` call ~-1.3 s
CPU, the step unchanged (benchmarks/RESULTS.md, branch c15-tf-first).
"""

from __future__ import annotations

import contextlib
import weakref

import keras
import tensorflow as tf

from keras_nas.supernet import _darts_math

# model -> the Keras batch normalization layers it holds.
_LAYERS = weakref.WeakKeyDictionary()


def _eligible(layer, inputs, training, mask) -> bool:
    """Whether Keras' computation is the fused kernel's: training mode
    with batch statistics, float32 NHWC inputs, no mask or renorm."""
    return bool(
        training
        and layer.trainable
        and mask is None
        and not layer.renorm
        and not layer.synchronized
        and len(inputs.shape) == 4
        and layer.axis in (-1, 3)
        and inputs.dtype == tf.float32
        and layer.compute_dtype == "float32"
        and layer.moving_mean.dtype == "float32"
    )


def normalize(inputs, epsilon, scale=None, offset=None):
    """Training-mode batch normalization of float32 NHWC `inputs` over
    the batch and spatial axes by `FusedBatchNormV3`: the outputs, the
    batch mean and the biased batch variance (what Keras' moving
    averages take)."""
    channels = inputs.shape[-1]
    if scale is None:
        scale = tf.ones([channels], tf.float32)
    if offset is None:
        offset = tf.zeros([channels], tf.float32)
    empty = tf.zeros([0], tf.float32)
    outputs, mean, variance, _, _, _ = tf.raw_ops.FusedBatchNormV3(
        x=inputs,
        scale=scale,
        offset=offset,
        mean=empty,
        variance=empty,
        epsilon=epsilon,
        exponential_avg_factor=1.0,
        data_format="NHWC",
        is_training=True,
    )
    # The kernel returns the unbiased batch variance (Bessel's correction
    # n / (n - 1), none for n = 1); Keras averages the biased one.
    n = inputs.shape[:3].num_elements()
    if n is None:  # 1 - 1 / n from the input's size (n values a channel)
        factor = 1.0 - channels / tf.cast(tf.size(inputs), tf.float32)
    else:
        factor = (n - 1.0) / n
    return outputs, mean, variance * factor


def batch_normalize(x, epsilon):
    """`_darts_math.batch_normalize` of the fused `MixedOp`'s stacked
    batch norms: `normalize`'s one op (and one gradient op) in float32,
    Keras' ops otherwise."""
    if keras.backend.standardize_dtype(x.dtype) == "float32":
        return normalize(x, epsilon)
    return _darts_math.batch_normalize(x, epsilon)


def _fused_call(layer, keras_call):
    """`layer.call` through `normalize` where eligible."""

    def call(inputs, training=None, mask=None):
        if not (
            tf.is_tensor(inputs) and _eligible(layer, inputs, training, mask)
        ):
            return keras_call(inputs, training=training, mask=mask)
        outputs, mean, variance = normalize(
            inputs,
            layer.epsilon,
            keras.ops.convert_to_tensor(layer.gamma) if layer.scale else None,
            keras.ops.convert_to_tensor(layer.beta) if layer.center else None,
        )
        for moving, value in (
            (layer.moving_mean, mean),
            (layer.moving_variance, variance),
        ):
            moving.assign(
                _darts_math.moving_average(
                    keras.ops.convert_to_tensor(moving), value, layer.momentum
                )
            )
        return outputs

    return call


def _batch_norm_layers(model) -> list:
    layers = _LAYERS.get(model)
    if layers is None:
        layers = _LAYERS[model] = [
            layer
            for layer in model._flatten_layers(include_self=False)
            if type(layer) is keras.layers.BatchNormalization
        ]
    return layers


@contextlib.contextmanager
def fused_batch_norm(model):
    """`model`'s Keras batch normalization layers run `FusedBatchNormV3`
    in training mode inside the context (module docstring); nested
    contexts keep the outer one's override."""
    own = []
    for layer in _batch_norm_layers(model):
        if "call" not in vars(layer):
            # In the instance's dict, past Keras' attribute tracking: a
            # function, not state (replicas' threads may overlap: each
            # removes only what it set, and tolerates it gone).
            vars(layer)["call"] = _fused_call(layer, layer.call)
            own.append(layer)
    try:
        yield
    finally:
        for layer in own:
            vars(layer).pop("call", None)
