"""The SMASH `HyperNetwork` on TensorFlow and JAX: same outputs, both train.

Trains a small `HyperNetwork` for one epoch on digits with the current
backend (TensorFlow), saves it with `save_state`, then in a new process
with `KERAS_BACKEND=jax` loads it (importing only `keras_nas`), checks that
its class probabilities for two architectures equal TensorFlow's, trains
one more epoch with Keras' jitted step and checks the optimizer counted the
steps. (Kept out of the test suite: the JAX process costs ~25 s of CPU.)

With `--space cell` the same on the DARTS cell space (3 cells of 8
filters, 2 nodes, the 7 DARTS ops; two random architectures).

Usage:

    python benchmarks/hypernetwork_backends.py [--space cell]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
from _common import digits_split

ARCHS = (
    "|nor_conv_3x3~0|+|nor_conv_1x1~0|nor_conv_3x3~1|+|skip_connect~0|"
    "none~1|avg_pool_3x3~2|",
    "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_3x3~0|"
    "nor_conv_1x1~1|nor_conv_3x3~2|",
)

JAX_CHECK = """
import sys, time, numpy as np, keras
import keras_nas.supernet as s
assert keras.backend.backend() == "jax", keras.backend.backend()
d = sys.argv[1]
net = s.HyperNetwork.load_state(d)
x, y = np.load(d + "/x.npy"), np.load(d + "/y.npy")
for i, arch in enumerate({archs!r}):
    got = net.predict_architecture(arch, x)
    want = np.load(d + f"/tf_{{i}}.npy")
    print(arch, "max |jax - tf| =", float(np.abs(got - want).max()))
    np.testing.assert_allclose(got, want, atol=1e-4)
steps = int(net.optimizer.iterations)
start = time.process_time()
net.train(x, y, epochs=1, batch_size=64)
print(f"jax: 1 epoch (compile included) "
      f"{{time.process_time() - start:.1f}} s CPU")
assert int(net.optimizer.iterations) == steps + -(-len(x) // 64)
print("jax: trained one more epoch;", net.evaluate_architecture(
    {archs!r}[0], x, y))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--space", choices=("nb201", "cell"), default="nb201")
    space_name = parser.parse_args().space
    import keras

    from keras_nas.spaces import CellSearchSpace, NasBench201SearchSpace
    from keras_nas.supernet import HyperNetwork

    (x, y), _ = digits_split(0, 256, 0)
    archs = ARCHS
    if space_name == "cell":
        space = CellSearchSpace(
            (8, 8, 1), 10, num_nodes=2, num_cells=3, filters=8
        )
    else:
        space = NasBench201SearchSpace(
            input_shape=(8, 8, 1), num_classes=10, filters=8,
            cells_per_stage=1,
        )  # fmt: skip
    keras.utils.set_random_seed(0)
    net = HyperNetwork(space, seed=0)
    if space_name == "cell":
        rng = np.random.default_rng(1)
        archs = tuple(net.path(net.sample_values(rng)) for _ in range(2))
    start = time.process_time()
    net.train(x, y, epochs=1, batch_size=64)
    print(f"tensorflow: 1 epoch (4 steps, with the trace) "
          f"{time.process_time() - start:.1f} s CPU")
    with tempfile.TemporaryDirectory() as d:
        net.save_state(d)
        np.save(os.path.join(d, "x.npy"), x)
        np.save(os.path.join(d, "y.npy"), y)
        for i, arch in enumerate(archs):
            np.save(
                os.path.join(d, f"tf_{i}.npy"),
                net.predict_architecture(arch, x),
            )
        env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
        out = subprocess.run(
            [sys.executable, "-c", JAX_CHECK.format(archs=archs), d],
            env=env,
            capture_output=True,
            text=True,
        )
        print(out.stdout)
        if out.returncode:
            print(out.stderr[-3000:])
            raise SystemExit("JAX check failed")
    print("ok: TensorFlow-saved hypernetwork predicts alike and trains on JAX")


if __name__ == "__main__":
    main()
