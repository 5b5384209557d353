"""Batch normalization of the fused `MixedOp` on JAX.

The twin of `_batch_norm_tensorflow.batch_normalize`, which runs
TensorFlow's fused kernel: XLA fuses the moments and the normalization
itself, so JAX computes them with Keras' ops.
"""

from __future__ import annotations

from keras_nas.supernet import _darts_math


def batch_normalize(x, epsilon):
    """`_darts_math.batch_normalize`: the outputs, the batch mean and the
    biased batch variance."""
    return _darts_math.batch_normalize(x, epsilon)
