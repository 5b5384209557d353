"""Shared set-up of the one-shot supernet tests: tiny spaces and data."""

import numpy as np

from keras_nas.spaces import CellSearchSpace, NasBench201SearchSpace

NB201 = NasBench201SearchSpace(
    input_shape=(8, 8, 1), num_classes=4, filters=4, cells_per_stage=1
)
# Small enough to trace the compiled step quickly (1 normal, 2 reduce cells).
TINY = CellSearchSpace(
    input_shape=(8, 8, 1),
    num_classes=4,
    ops=("none", "skip_connect", "dil_conv_3x3"),
    num_nodes=1,
    num_cells=3,
    filters=4,
)


def data(n=64, seed=0):
    """`n` random 8x8x1 images; 4 classes from the signs of two quadrants."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 8, 8, 1)).astype("float32")
    y = (x[:, :4].mean(axis=(1, 2, 3)) > 0).astype("int32") + 2 * (
        x[:, :, :4].mean(axis=(1, 2, 3)) > 0
    ).astype("int32")
    return x, y
