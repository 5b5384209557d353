"""Run by `test_data_parallel_jax.py` in a subprocess: DARTS on 2 devices.

Keras JAX backend with 2 host devices (`XLA_FLAGS`, set here before JAX
starts). A first-order `DartsSupernet` (1 cell of 1 node, 2 filters, 8x8x3)
takes one step on a global batch of 8 (weights on one half of the data,
alphas on the other) without a distribution, and the same model (same seed,
same initial weights) takes the same step under
`keras.distribution.DataParallel` over both devices. Prints one JSON line:
the largest absolute difference between the two steps' weights (alphas and
batch-norm statistics included) and the largest change of any weight.
"""

import json
import os

os.environ["KERAS_BACKEND"] = "jax"
os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"

import jax  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_nas.supernet.darts import DartsSupernet, SearchData  # noqa: E402

BATCH = 8


def step(x, y):
    """Weights before and after one step of a freshly seeded supernet."""
    keras.utils.set_random_seed(0)
    model = DartsSupernet(
        (8, 8, 3), 10, filters=2, num_cells=1, num_nodes=1, order=1, seed=0
    )
    model.compile(decay_steps=10)
    before = [np.asarray(v.value) for v in model.weights]
    data = SearchData(
        (x[:BATCH], y[:BATCH]), (x[BATCH:], y[BATCH:]), BATCH, shuffle=False
    )
    model.fit(data, epochs=1, verbose=0)
    return before, [np.asarray(v.value) for v in model.weights]


def max_diff(first, second):
    pairs = zip(first, second, strict=True)
    return max(float(np.max(np.abs(a - b))) for a, b in pairs)


def main():
    rng = np.random.default_rng(0)
    x = rng.random((2 * BATCH, 8, 8, 3), dtype=np.float32)
    y = rng.integers(0, 10, 2 * BATCH).astype("int32")
    start_one, one = step(x, y)
    keras.distribution.set_distribution(
        keras.distribution.DataParallel(devices=jax.devices())
    )
    start_two, two = step(x, y)
    print(
        json.dumps(
            {
                "devices": len(jax.devices()),
                "same_start": max_diff(start_one, start_two) == 0.0,
                "max_diff": max_diff(one, two),
                "max_change": max_diff(one, start_one),
            }
        )
    )


if __name__ == "__main__":
    main()
