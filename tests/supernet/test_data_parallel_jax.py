"""DARTS under `keras.distribution.DataParallel` (JAX, 2 host devices).

One subprocess (`_data_parallel_jax_run.py`: JAX must see the 2 devices
before it starts) takes one first-order `DartsSupernet` step on a global
batch of 8 on one device and the same step with the batch split over two
devices, from the same initial weights. Tolerance: 1e-5 absolute on every
weight and architecture variable (float32 rounding of the cross-device
reductions; the step moves weights by ~0.1 or more). The TensorFlow
counterpart (`MirroredStrategy`) is `test_distribute.py`; the other
supernets under `DataParallel` are `benchmarks/data_parallel_check.py`.
"""

import json
import os
import pathlib
import subprocess
import sys

HERE = pathlib.Path(__file__).parent
TOLERANCE = 1e-5


def test_one_darts_step_on_two_devices_equals_one_device():
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
    done = subprocess.run(
        [sys.executable, str(HERE / "_data_parallel_jax_run.py")],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["devices"] == 2
    assert report["same_start"]
    assert report["max_change"] > 1e-3, report
    assert report["max_diff"] <= TOLERANCE, report
