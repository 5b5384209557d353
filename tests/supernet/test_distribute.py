"""Supernets under `tf.distribute.MirroredStrategy` (2 logical CPUs).

One subprocess (`_distribute_run.py`: TensorFlow must see the 2 logical
devices before it initialises) builds, compiles and fits `DartsSupernet`
(first and second order), `OneShotSupernet` (uniform paths) and
`ProxylessSupernet` inside `strategy.scope()` for one step on a global
batch of 8 (ProxylessNAS: a warm-up step, then a step with the
architecture update), and the same steps on one device. Tolerance: 1e-5
absolute on every weight and architecture variable (float32 rounding of
the all-reduce and of a 1-sample-different summation order; the steps move
weights by ~0.2 or more, ProxylessNAS' Adam step moves the path logits by
1e-3). Before the
all-reduce in the DARTS step, both orders differed by 7.6e-3 here. A second
fresh process importing only keras_nas (and Keras) loads the model saved
after the distributed step and finds its weights and optimizer state;
the OneShotSupernet is saved, loaded in the strategy's scope and resumed
for a second step (as two 1-device steps, same tolerance).
"""

import json
import os
import pathlib
import subprocess
import sys
import textwrap

HERE = pathlib.Path(__file__).parent
TOLERANCE = 1e-5


def _run(args):
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="2")
    done = subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_one_step_on_two_replicas_equals_one_device(tmp_path):
    report = _run([str(HERE / "_distribute_run.py"), str(tmp_path)])
    assert set(report) == {
        "darts_order1", "darts_order2", "one_shot_uniform", "proxyless"
    }  # fmt: skip
    for name, case in report.items():
        assert case["replicas"] == 2, name
        assert case["same_start"], name
        assert case["max_change"] > 1e-3, (name, case)
        assert case["max_diff"] <= TOLERANCE, (name, case)
        # Same path, seed state and step counters on both devices.
        assert case["ints_equal"], (name, case)
        assert case["replica_spread"] <= TOLERANCE, (name, case)
    # ProxylessNAS: a warm-up step (skipped by a `tf.cond` on one device,
    # run and put back on two), then the binary gates' architecture step
    # on the global batch: one update, the same path logits.
    proxyless = report["proxyless"]
    assert proxyless["arch_updates"] == 1, proxyless
    assert proxyless["arch_change"] > 1e-4, proxyless
    assert proxyless["arch_diff"] <= TOLERANCE, proxyless
    # Saved under the strategy, loaded in its scope, one more step: as two
    # steps on one device (the sampler's seed state included).
    resumed = report["one_shot_uniform"]["resumed"]
    assert resumed["max_diff"] <= TOLERANCE, resumed
    assert resumed["iterations"] == 2

    # Saved after the distributed step, loaded by a fresh process.
    script = textwrap.dedent(
        """
        import sys
        import keras_nas
        import keras
        import numpy as np

        model = keras.saving.load_model(sys.argv[1] + "/model.keras")
        saved = np.load(sys.argv[1] + "/weights.npz")
        saved = [saved[f"arr_{i}"] for i in range(len(saved.files))]
        assert type(model) is keras_nas.supernet.DartsSupernet
        diff = max(
            float(np.abs(np.asarray(v.numpy()) - w).max())
            for v, w in zip(model.weights, saved, strict=True)
        )
        iterations = int(model.optimizer.iterations.numpy())
        print(diff, iterations)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        capture_output=True,
        text=True,
        env=dict(os.environ, KERAS_BACKEND="tensorflow"),
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    diff, iterations = done.stdout.split()[-2:]
    assert float(diff) == 0.0
    assert int(iterations) == 1
