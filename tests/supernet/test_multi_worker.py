"""`DartsSupernet` under `tf.distribute.MultiWorkerMirroredStrategy`.

Two worker processes on loopback (`_multi_worker_run.py`: `TF_CONFIG`,
ports from the OS, one CPU device each) build, compile and fit a tiny
first-order DARTS supernet inside the strategy's scope for one step on a
global batch of 8 (the same 4 samples on each worker), save it, load it
inside the scope and take a second step. Both steps must equal the same
steps on one device to 1e-5 absolute on every weight and architecture
variable (float32 rounding of the all-reduce; the step moves weights by
~0.3), integer state (seed state, step counters) exactly, and the two
workers must hold the same values. Keras 3 alone cannot `fit` under this
strategy (tensorflow/tensorflow#72388); `keras_nas._distribute_tensorflow`
mends it.
"""

import os
import socket
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(__file__)
TOLERANCE = 1e-5


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _arrays(path, key):
    data = np.load(path)
    names = [f for f in data.files if f.rsplit("_", 1)[0] == key]
    names.sort(key=lambda f: int(f.rsplit("_", 1)[1]))
    return [data[f] for f in names]


def _max_diff(first, second):
    assert len(first) == len(second)
    diff = 0.0
    for a, b in zip(first, second, strict=True):
        if a.dtype.kind == "f":
            diff = max(diff, float(np.abs(a - b).max()))
        else:
            assert np.array_equal(a, b)
    return diff


def test_two_workers_equal_one_device_and_resume(tmp_path):
    ports = ",".join(str(p) for p in _free_ports(2))
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="2")
    script = os.path.join(HERE, "_multi_worker_run.py")
    workers = [
        subprocess.Popen(
            [sys.executable, script, str(i), ports, str(tmp_path)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(2)
    ]
    try:
        outputs = [w.communicate(timeout=600)[0] for w in workers]
    finally:
        for w in workers:
            w.kill()
    for w, output in zip(workers, outputs, strict=True):
        assert w.returncode == 0, output[-3000:]

    chief, other = (tmp_path / f"worker{i}.npz" for i in range(2))
    start, ref1, ref2 = (_arrays(chief, k) for k in ("start", "ref1", "ref2"))
    assert _arrays(chief, "replicas")[0] == 2
    assert _max_diff(start, ref1) > 0.1  # the step moves the weights
    for path in (chief, other):
        assert _max_diff(_arrays(path, "start"), start) == 0.0
        assert _max_diff(_arrays(path, "step1"), ref1) <= TOLERANCE
        # Saved after step 1, loaded under the strategy, one more step.
        assert _max_diff(_arrays(path, "step2"), ref2) <= TOLERANCE
        assert _arrays(path, "iterations")[0] == 2
    assert _max_diff(_arrays(chief, "step2"), _arrays(other, "step2")) == 0.0
    assert (tmp_path / "model.keras").exists()
