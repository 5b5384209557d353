"""Batch normalization of the JAX DARTS edges with a lean backward pass.

An affine-free batch normalization in training mode, differentiated by
JAX op by op (`keras.ops.moments`, `batch_normalization`), keeps its
input, the centred input and its output for the backward pass: three
tensors of the input's size. Its gradient needs only the output `y` and
the inverse standard deviation `inv` per channel,

    dx = inv * (dy - mean(dy) - y * mean(dy * y))

(means over the batch and spatial axes), so `normalize` keeps those two
(`jax.custom_vjp`). `normalized_sum` does the same for a DARTS edge's
last batch normalization followed by the `alpha`-weighted sum of its
candidates' blocks of channels: the sum's gradient with respect to the
weights reads the same `y`, so one tensor of the input's size is kept,
not three. The piecewise JAX step keeps every edge's residuals of a pass
alive at once: micro configuration, -1.8 MiB of 5.3 per edge at 16x16
(benchmarks/RESULTS.md, #13 i16).

The batch statistics are returned for the moving averages, without a
gradient (Keras' moving statistics take none): the biased variance, as
`keras.ops.moments`.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import keras

from keras_nas.supernet import _darts_math

_AXES = (0, 1, 2)


def _statistics(x, epsilon):
    mean = jnp.mean(x, _AXES)
    variance = jnp.mean(jnp.square(x - mean), _AXES)
    inv = jax.lax.rsqrt(variance + epsilon)
    return (x - mean) * inv, mean, variance, inv


def _input_grad(y, inv, dy):
    """The input's gradient from the output `y` and its gradient `dy`."""
    mean_dy = jnp.mean(dy, _AXES)
    mean_dyy = jnp.mean(dy * y, _AXES)
    return inv * (dy - mean_dy - y * mean_dyy)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def normalize(x, epsilon):
    """`(outputs, mean, variance)`: `x` (NHWC) normalized over the batch
    and spatial axes with its batch statistics (the variance biased)."""
    y, mean, variance, _ = _statistics(x, epsilon)
    return y, mean, variance


def _normalize_fwd(x, epsilon):
    y, mean, variance, inv = _statistics(x, epsilon)
    return (y, mean, variance), (y, inv)


def _normalize_bwd(epsilon, residuals, cotangents):
    del epsilon
    y, inv = residuals
    return (_input_grad(y, inv, cotangents[0]),)


normalize.defvjp(_normalize_fwd, _normalize_bwd)


def batch_normalize(x, epsilon):
    """The fused `MixedOp`'s batch norm (the twin of
    `_batch_norm_tensorflow.batch_normalize`): `normalize` in float32,
    `_darts_math.batch_normalize` (Keras' ops) otherwise."""
    if keras.backend.standardize_dtype(x.dtype) == "float32":
        return normalize(x, epsilon)
    return _darts_math.batch_normalize(x, epsilon)


def _blocks(y, n):
    """(..., n * F) -> (..., n, F)."""
    return jnp.reshape(y, (*y.shape[:-1], n, y.shape[-1] // n))


def _weighted(y, weights):
    n = weights.shape[0]
    return jnp.sum(_blocks(y, n) * weights[:, None], axis=-2)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def normalized_sum(x, weights, epsilon):
    """`(outputs, mean, variance)`: `normalize(x)`'s `n` blocks of
    channels (`weights`: `(n,)`) weighted and summed, `(..., F)`, and
    the batch statistics of `x`'s `n * F` channels."""
    y, mean, variance, _ = _statistics(x, epsilon)
    return _weighted(y, weights), mean, variance


def _normalized_sum_fwd(x, weights, epsilon):
    y, mean, variance, inv = _statistics(x, epsilon)
    return (_weighted(y, weights), mean, variance), (y, inv, weights)


def _normalized_sum_bwd(epsilon, residuals, cotangents):
    del epsilon
    y, inv, weights = residuals
    d_out = cotangents[0]
    n = weights.shape[0]
    blocks = _blocks(y, n)
    d_weights = jnp.sum(blocks * d_out[..., None, :], axis=(0, 1, 2, 4))
    dy = jnp.reshape(d_out[..., None, :] * weights[:, None], y.shape)
    return _input_grad(y, inv, dy), d_weights.astype(weights.dtype)


normalized_sum.defvjp(_normalized_sum_fwd, _normalized_sum_bwd)


def _keras_statistics(x, gamma, beta, epsilon):
    """Keras' training-mode arithmetic (`ops.moments`, JAX's
    `batch_normalization`): `(y, mean, variance, rstd)`."""
    mean = jnp.mean(x, _AXES)
    variance = jnp.var(x, axis=_AXES)
    rstd = jax.lax.rsqrt(variance + epsilon)
    inv = rstd * gamma
    return x * inv + (beta - mean * inv), mean, variance, rstd


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def scaled_normalize(x, gamma, beta, epsilon):
    """`(outputs, mean, variance)` of a Keras `BatchNormalization` in
    training mode with scale `gamma` and offset `beta` (per channel of
    NHWC `x`), the outputs as Keras computes them; its backward pass
    keeps `x` and the statistics (one tensor of the input's size), where
    JAX's differentiation of Keras' ops keeps several (the one-shot
    pieces, #13 o17)."""
    y, mean, variance, _ = _keras_statistics(x, gamma, beta, epsilon)
    return y, mean, variance


def _scaled_normalize_fwd(x, gamma, beta, epsilon):
    y, mean, variance, rstd = _keras_statistics(x, gamma, beta, epsilon)
    return (y, mean, variance), (x, mean, rstd, gamma)


def _scaled_normalize_bwd(epsilon, residuals, cotangents):
    del epsilon
    x, mean, rstd, gamma = residuals
    dy = cotangents[0]
    normalized = (x - mean) * rstd
    d_gamma = jnp.sum(dy * normalized, _AXES)
    d_beta = jnp.sum(dy, _AXES)
    return _input_grad(normalized, rstd, dy * gamma), d_gamma, d_beta


scaled_normalize.defvjp(_scaled_normalize_fwd, _scaled_normalize_bwd)
