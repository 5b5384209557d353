"""The SMASH `HyperNetwork` on TensorFlow and JAX: same outputs, both train.

Trains a small `HyperNetwork` for one epoch on digits with the current
backend (TensorFlow), saves it with `save_state`, then in a new process
with `KERAS_BACKEND=jax` loads it (importing only `keras_nas`), checks that
its class probabilities for two architectures equal TensorFlow's, trains
one more epoch with Keras' jitted step and checks the optimizer counted the
steps. (Kept out of the test suite: the JAX process costs ~25 s of CPU.)

Usage:

    python benchmarks/hypernetwork_backends.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

import numpy as np
from _common import digits_split

ARCHS = (
    "|nor_conv_3x3~0|+|nor_conv_1x1~0|nor_conv_3x3~1|+|skip_connect~0|"
    "none~1|avg_pool_3x3~2|",
    "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_3x3~0|"
    "nor_conv_1x1~1|nor_conv_3x3~2|",
)

JAX_CHECK = """
import sys, numpy as np, keras
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
net.train(x, y, epochs=1, batch_size=64)
assert int(net.optimizer.iterations) == steps + -(-len(x) // 64)
print("jax: trained one more epoch;", net.evaluate_architecture(
    {archs!r}[0], x, y))
"""


def main() -> None:
    import keras

    from keras_nas.spaces import NasBench201SearchSpace
    from keras_nas.supernet import HyperNetwork

    (x, y), _ = digits_split(0, 256, 0)
    space = NasBench201SearchSpace(
        input_shape=(8, 8, 1), num_classes=10, filters=8, cells_per_stage=1
    )
    keras.utils.set_random_seed(0)
    net = HyperNetwork(space, seed=0)
    net.train(x, y, epochs=1, batch_size=64)
    with tempfile.TemporaryDirectory() as d:
        net.save_state(d)
        np.save(os.path.join(d, "x.npy"), x)
        np.save(os.path.join(d, "y.npy"), y)
        for i, arch in enumerate(ARCHS):
            np.save(
                os.path.join(d, f"tf_{i}.npy"),
                net.predict_architecture(arch, x),
            )
        env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
        out = subprocess.run(
            [sys.executable, "-c", JAX_CHECK.format(archs=ARCHS), d],
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
