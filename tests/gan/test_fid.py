"""Fréchet distance (gan/fid.py) against a NumPy/SciPy reference."""

import keras
import numpy as np
import pytest
from scipy import linalg

from keras_nas.gan.fid import (
    FrechetDistance,
    frechet_distance,
    train_feature_extractor,
)


def _reference(a, b):
    """Heusel et al.'s formula with scipy's general matrix square root."""
    mu1, mu2 = a.mean(0), b.mean(0)
    c1, c2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = linalg.sqrtm(c1 @ c2).real
    return float(
        np.sum((mu1 - mu2) ** 2) + np.trace(c1) + np.trace(c2)
        - 2 * np.trace(covmean)
    )  # fmt: skip


def _features(seed, n=300, d=8, shift=0.0, scale=1.0):
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(d, d)) * scale
    return (rng.normal(size=(n, d)) @ mix + shift).astype("float32")


@pytest.mark.parametrize("shift,scale", [(0.0, 1.0), (0.5, 2.0), (3.0, 0.3)])
def test_frechet_distance_matches_scipy(shift, scale):
    a, b = _features(0), _features(1, shift=shift, scale=scale)
    expected = _reference(a.astype("float64"), b.astype("float64"))
    got = float(
        frechet_distance(
            a.mean(0), np.cov(a, rowvar=False).astype("float32"),
            b.mean(0), np.cov(b, rowvar=False).astype("float32"),
        )
    )  # fmt: skip
    assert got == pytest.approx(expected, rel=1e-3, abs=1e-3)


def test_metric_accumulates_batches():
    a, b = _features(2, n=250), _features(3, n=190, shift=1.0, scale=1.5)
    metric = FrechetDistance(num_features=8)
    # Uneven batches, real and generated of different sizes.
    for ra, rb in zip(np.array_split(a, 4), np.array_split(b, 4), strict=True):
        metric.update_state(ra, rb)
    expected = _reference(a.astype("float64"), b.astype("float64"))
    assert float(metric.result()) == pytest.approx(expected, rel=1e-3)
    metric.reset_state()
    metric.update_state(a, a)
    assert float(metric.result()) == pytest.approx(0.0, abs=1e-3)


def test_metric_config_and_errors():
    metric = FrechetDistance(num_features=5, name="my_fid")
    clone = FrechetDistance.from_config(metric.get_config())
    assert (clone.name, clone.num_features) == ("my_fid", 5)
    with pytest.raises(ValueError, match="num_features"):
        FrechetDistance(num_features=0)
    with pytest.raises(ValueError, match=r"\(batch, 5\)"):
        metric.update_state(np.zeros((4, 3)), np.zeros((4, 5)))


def test_feature_extractor_is_frozen_and_sized():
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, size=(64, 8, 8, 1)).astype("float32")
    y = rng.integers(0, 3, size=64)
    extractor = train_feature_extractor(x, y, num_features=6, epochs=1)
    assert extractor.trainable is False
    assert not extractor.trainable_weights
    assert tuple(extractor(x[:2]).shape) == (2, 6)
    assert isinstance(extractor, keras.Model)
    with pytest.raises(ValueError, match="images"):
        train_feature_extractor(x[:, :, :, 0], y)
