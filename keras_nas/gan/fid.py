"""Fréchet distance between real and generated images, without downloads.

The Fréchet Inception Distance of Heusel et al., "GANs Trained by a Two
Time-Scale Update Rule Converge to a Local Nash Equilibrium" (NeurIPS 2017)
fits a Gaussian to the features of real and of generated images and
reports

    ||mu_r - mu_g||^2 + tr(C_r) + tr(C_g) - 2 tr((C_r C_g)^(1/2)).

Here the features come from a small classifier trained on the real data
(`train_feature_extractor`), not from Inception-v3 on ImageNet: the numbers
rank generators of one data set against each other but are **not
comparable to published (Inception) FID values**.

`FrechetDistance` is a stateful `keras.metrics.Metric` that accumulates the
feature sums and outer products over a whole evaluation; its `result()` is
the distance, computed with `keras.ops` (the trace of the matrix square root
from two symmetric eigendecompositions), so it runs on TensorFlow and JAX.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
from keras import ops

from keras_nas._validation import check_positive_int

__all__ = ["FrechetDistance", "frechet_distance", "train_feature_extractor"]

_PACKAGE = "keras_nas"


def _sqrt_psd(matrix):
    """Square root of a symmetric positive semi-definite matrix (eigh)."""
    values, vectors = ops.eigh(matrix)
    values = ops.sqrt(ops.maximum(values, 0.0))
    return ops.matmul(vectors * values[None, :], ops.transpose(vectors))


def frechet_distance(mean1, cov1, mean2, cov2):
    """Fréchet distance between two Gaussians, with `keras.ops`.

    `tr((C1 C2)^(1/2))` equals `tr((S C2 S)^(1/2))` with `S = C1^(1/2)`, a
    symmetric matrix, so two `eigh` calls suffice (no general matrix square
    root). Negative eigenvalues from round-off are clipped to 0.

    Args:
        mean1: `(d,)` mean of the first Gaussian.
        cov1: `(d, d)` covariance of the first Gaussian.
        mean2: `(d,)` mean of the second Gaussian.
        cov2: `(d, d)` covariance of the second Gaussian.

    Returns:
        A scalar tensor.

    Example:

    >>> m, c = np.zeros(3, "float32"), np.eye(3, dtype="float32")
    >>> round(float(frechet_distance(m, c, m + 1.0, c)), 4)
    3.0
    """
    mean1, mean2 = ops.convert_to_tensor(mean1), ops.convert_to_tensor(mean2)
    cov1, cov2 = ops.convert_to_tensor(cov1), ops.convert_to_tensor(cov2)
    s = _sqrt_psd(cov1)
    middle = ops.matmul(ops.matmul(s, cov2), s)
    middle = 0.5 * (middle + ops.transpose(middle))
    eig = ops.eigh(middle)[0]
    trace_sqrt = ops.sum(ops.sqrt(ops.maximum(eig, 0.0)))
    diff = mean1 - mean2
    value = (
        ops.sum(diff * diff)
        + ops.trace(cov1)
        + ops.trace(cov2)
        - 2.0 * trace_sqrt
    )
    return ops.maximum(value, 0.0)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class FrechetDistance(keras.metrics.Metric):
    """Fréchet distance between the features of real and generated images.

    `update_state(real_features, generated_features)` adds a batch of each
    (`(batch, num_features)`, batches may differ in size); `result()` is the
    Fréchet distance (Heusel et al., NeurIPS 2017) between Gaussians with
    the accumulated means and unbiased covariances. The state is six
    variables (count, sum and sum of outer products per side), so the
    distance covers every batch since the last `reset_state()` (a whole
    validation pass in `fit`/`evaluate`).

    The features are those of your own feature extractor (see
    `train_feature_extractor`): values are not comparable to Inception FID.

    Args:
        num_features: size of a feature vector.
        name: the metric's name (`val_` is prepended for validation logs).
        dtype: dtype of the state.

    Example:

    >>> metric = FrechetDistance(num_features=4)
    >>> x = np.random.default_rng(0).normal(size=(100, 4))
    >>> metric.update_state(x, x)
    >>> round(float(metric.result()), 4)
    0.0
    """

    def __init__(
        self,
        num_features: int,
        name: str = "fid",
        dtype: Any = None,
    ) -> None:
        super().__init__(name=name, dtype=dtype)
        self.num_features = check_positive_int("num_features", num_features)
        d = self.num_features
        self._state = {}
        for side in ("real", "generated"):
            for key, shape in (("count", ()), ("sum", (d,)), ("outer", (d, d))):
                self._state[side, key] = self.add_variable(
                    shape=shape,
                    initializer="zeros",
                    dtype=self.dtype,
                    name=f"{side}_{key}",
                )

    def _add(self, side: str, features) -> None:
        features = ops.cast(ops.convert_to_tensor(features), self.dtype)
        if len(features.shape) != 2 or features.shape[-1] not in (
            None,
            self.num_features,
        ):
            raise ValueError(
                "Expected features of shape (batch, "
                f"{self.num_features}). Received: {side} features of shape "
                f"{tuple(features.shape)}"
            )
        state = self._state
        state[side, "count"].assign_add(
            ops.cast(ops.shape(features)[0], self.dtype)
        )
        state[side, "sum"].assign_add(ops.sum(features, axis=0))
        state[side, "outer"].assign_add(
            ops.matmul(ops.transpose(features), features)
        )

    def update_state(self, real_features, generated_features) -> None:
        self._add("real", real_features)
        self._add("generated", generated_features)

    def _gaussian(self, side: str):
        n = self._state[side, "count"].value
        total = self._state[side, "sum"].value
        mean = total / ops.maximum(n, 1.0)
        outer = self._state[side, "outer"].value
        cov = (outer - n * ops.outer(mean, mean)) / ops.maximum(n - 1.0, 1.0)
        return mean, cov

    def result(self):
        return frechet_distance(
            *self._gaussian("real"), *self._gaussian("generated")
        )

    def get_config(self):
        return {
            "name": self.name,
            "dtype": self.dtype,
            "num_features": self.num_features,
        }


def train_feature_extractor(
    images: Any,
    labels: Any,
    num_classes: int | None = None,
    num_features: int = 32,
    filters: Sequence[int] = (16, 32),
    epochs: int = 10,
    batch_size: int = 64,
    seed: int = 0,
    verbose: int = 0,
) -> keras.Model:
    """Trains a small conv classifier and returns its feature extractor.

    The classifier (3x3 convs with ReLU, each followed by 2x2 max pooling
    while the map is larger than 2x2, global average pooling, a dense ReLU
    layer of `num_features` units, a softmax layer) is fit on the labelled
    real images with Adam; the returned model maps images to the
    `num_features` activations of its penultimate layer and is frozen
    (`trainable=False`). Use it for `FrechetDistance`: the same extractor
    must score every generator that is compared.

    Args:
        images: `(n, height, width, channels)` real images, scaled as the
            generator's outputs (e.g. [-1, 1]).
        labels: `(n,)` integer class labels.
        num_classes: number of classes (default: `max(labels) + 1`).
        num_features: size of the feature vector.
        filters: channels of the conv layers.
        epochs: training epochs.
        batch_size: training batch size.
        seed: seed of the weights and the shuffling.
        verbose: `fit` verbosity.

    Returns:
        A frozen `keras.Model` from images to `(batch, num_features)`.
    """
    images = np.asarray(images, dtype="float32")
    labels = np.asarray(labels).astype("int64")
    if images.ndim != 4 or len(labels) != len(images):
        raise ValueError(
            "Expected `images` of shape (n, height, width, channels) and one "
            f"label per image. Received: images.shape={images.shape}, "
            f"labels.shape={labels.shape}"
        )
    if num_classes is None:
        num_classes = int(labels.max()) + 1
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(images.shape[1:], name="image")
    x, size = inputs, min(images.shape[1:3])
    for i, f in enumerate(filters):
        x = keras.layers.Conv2D(
            f, 3, padding="same", activation="relu", name=f"conv{i}"
        )(x)
        if size > 2:
            x = keras.layers.MaxPooling2D(2, name=f"pool{i}")(x)
            size //= 2
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    features = keras.layers.Dense(
        num_features, activation="relu", name="features"
    )(x)
    outputs = keras.layers.Dense(
        num_classes, activation="softmax", name="predictions"
    )(features)
    classifier = keras.Model(inputs, outputs, name="fid_classifier")
    classifier.compile(
        optimizer=keras.optimizers.Adam(3e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    classifier.fit(
        images,
        labels,
        epochs=epochs,
        batch_size=batch_size,
        verbose=verbose,
    )
    extractor = keras.Model(inputs, features, name="fid_features")
    extractor.trainable = False
    return extractor
