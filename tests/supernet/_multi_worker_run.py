"""Run by `test_multi_worker.py`: one worker of a 2-worker DARTS step.

`python _multi_worker_run.py INDEX PORT0,PORT1 OUT_DIR`. The worker joins a
`tf.distribute.MultiWorkerMirroredStrategy` of two processes on loopback
(`TF_CONFIG`, one CPU device each), builds, compiles and fits a tiny
first-order `DartsSupernet` inside its scope for one step on a global batch
of 8 (4 per worker; both workers get the same 4 samples, so per-replica
batch-norm statistics are those of the global batch), saves it (worker 0
to `OUT_DIR/model.keras`, worker 1 to a file of its own), loads it again
inside the scope and takes a second step. Worker 0 then takes the same two
steps on one device (the default strategy) from the same seed. Writes
`OUT_DIR/worker<INDEX>.npz` (weights at the start, after step 1, after the
resumed step 2; `ref1`/`ref2` the one-device steps on worker 0).
"""

import json
import os
import pathlib
import sys

INDEX, PORTS, OUT = int(sys.argv[1]), sys.argv[2].split(","), sys.argv[3]
os.environ["KERAS_BACKEND"] = "tensorflow"
os.environ["TF_CONFIG"] = json.dumps(
    {
        "cluster": {"worker": [f"127.0.0.1:{p}" for p in PORTS]},
        "task": {"type": "worker", "index": INDEX},
    }
)

import tensorflow as tf  # noqa: E402

# Grappler's rewrites cost more CPU than these tiny steps.
tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})
STRATEGY = tf.distribute.MultiWorkerMirroredStrategy(
    communication_options=tf.distribute.experimental.CommunicationOptions(
        implementation=tf.distribute.experimental.CommunicationImplementation.RING
    )
)

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_nas.supernet import DartsSupernet  # noqa: E402
from keras_nas.supernet.darts import SearchData  # noqa: E402

HALF = 4
_rng = np.random.default_rng(0)
_x = _rng.normal(size=(2, HALF, 8, 8, 1)).astype("float32")
_y = _rng.integers(0, 3, (2, HALF)).astype("int32")
X = [np.concatenate([_x[k], _x[k]]) for k in range(2)]
Y = [np.concatenate([_y[k], _y[k]]) for k in range(2)]
DATA = SearchData((X[0], Y[0]), (X[1], Y[1]), 2 * HALF, shuffle=False)


def values(model):
    return [np.array(v.numpy()) for v in model.weights]


def build():
    keras.utils.set_random_seed(0)
    model = DartsSupernet(
        (8, 8, 1), 3, filters=2, num_cells=1, num_nodes=1, order=1,
        ops=("skip_connect", "max_pool_3x3"), seed=0,
    )  # fmt: skip
    model.compile(decay_steps=10)
    return model


def main():
    out = pathlib.Path(OUT)
    arrays = {}
    with STRATEGY.scope():
        model = build()
        arrays["start"] = values(model)
        model.fit(DATA, epochs=1, verbose=0)
        arrays["step1"] = values(model)
    # Each worker writes its own file (the chief's is the one to keep).
    path = out / ("model.keras" if INDEX == 0 else f"worker{INDEX}.keras")
    model.save(path)
    with STRATEGY.scope():
        resumed = keras.saving.load_model(path)
        resumed.fit(DATA, epochs=1, verbose=0)
        arrays["step2"] = values(resumed)
    arrays["iterations"] = [np.array(resumed.optimizer.iterations.numpy())]
    arrays["replicas"] = [np.array(STRATEGY.num_replicas_in_sync)]
    if INDEX == 0:  # The same two steps on one device.
        with tf.distribute.get_strategy().scope():
            model = build()
            model.fit(DATA, epochs=1, verbose=0)
            arrays["ref1"] = values(model)
            model.fit(DATA, epochs=1, verbose=0)
            arrays["ref2"] = values(model)
    flat = {
        f"{key}_{i}": a for key, v in arrays.items() for i, a in enumerate(v)
    }
    np.savez(out / f"worker{INDEX}.npz", **flat)


if __name__ == "__main__":
    main()
