"""One training step of each supernet on 2 JAX devices vs 1 device.

`keras.distribution.DataParallel` (Keras JAX backend) on two host devices
(`XLA_FLAGS=--xla_force_host_platform_device_count=2`, set here before JAX
starts): `DartsSupernet` (first and second order) and `OneShotSupernet`
(uniform SPOS paths and FairNAS `sampler="fair"`), `HyperNetwork` (one
image repeated: the batch order `train` draws is moot) and the GAN each
take one step on the
same global batch of 16, once without a distribution (one device) and once
with the batch split over both devices, from the same initial weights.
Prints one JSON line: per supernet the largest absolute difference over all
weights (alphas, optimizer-free state included) and the largest change of
any weight in the step. Tiny networks (8x8x3 inputs, 2 filters).

Usage:

    python benchmarks/data_parallel_check.py
    python benchmarks/data_parallel_check.py --cases darts_order1

(Not a test: compiling the eight steps costs about 2 CPU minutes on a busy
2-core machine.)
"""

import argparse
import json
import os

os.environ["KERAS_BACKEND"] = "jax"
os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"

import jax  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_nas.blocks.gan import (  # noqa: E402
    build_discriminator,
    build_generator,
)
from keras_nas.gan.model import GAN  # noqa: E402
from keras_nas.spaces import NasBench201SearchSpace  # noqa: E402
from keras_nas.supernet.darts import DartsSupernet, SearchData  # noqa: E402
from keras_nas.supernet.hypernetwork import HyperNetwork  # noqa: E402
from keras_nas.supernet.one_shot import OneShotSupernet  # noqa: E402

BATCH = 16
rng = np.random.default_rng(0)
X = rng.random((2 * BATCH, 8, 8, 3), dtype=np.float32)
Y = rng.integers(0, 10, 2 * BATCH).astype("int32")


def darts(order):
    model = DartsSupernet(
        (8, 8, 3), 10, filters=2, num_cells=1, num_nodes=1, order=order, seed=0
    )
    model.compile(decay_steps=10)
    data = SearchData(
        (X[:BATCH], Y[:BATCH]), (X[BATCH:], Y[BATCH:]), BATCH, shuffle=False
    )
    return model, lambda: model.fit(data, epochs=1, verbose=0)


def one_shot(sampler):
    space = NasBench201SearchSpace(
        input_shape=(8, 8, 3), num_classes=10, filters=2, cells_per_stage=1
    )
    model = OneShotSupernet(space, sampler=sampler, seed=0)
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9))
    return model, lambda: model.fit(
        X[:BATCH], Y[:BATCH], batch_size=BATCH, verbose=0, shuffle=False
    )


def hypernetwork():
    space = NasBench201SearchSpace(
        input_shape=(8, 8, 3), num_classes=10, filters=2, cells_per_stage=1
    )
    model = HyperNetwork(space, seed=0)
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9))
    # `train` shuffles the batch: one image repeated, so the order is moot.
    images = np.repeat(X[:1], BATCH, axis=0)
    return model, lambda: model.train(images, Y[:BATCH], 1, BATCH)


def gan():
    generator = build_generator((4, 4, 1), [{}, {"skips": [True]}], 4, 8)
    model = GAN(generator, build_discriminator((4, 4, 1), filters=4), seed=0)
    model.compile()
    images = X[:BATCH, :4, :4, :1]
    return model, lambda: model.fit(
        images, batch_size=BATCH, verbose=0, shuffle=False
    )


def step(make):
    keras.utils.set_random_seed(0)
    model, fit = make()
    fit()
    return [np.asarray(v.value) for v in model.weights]


def init(make):
    keras.utils.set_random_seed(0)
    model, _ = make()
    if not model.built:
        model.build((None, 8, 8, 3))
    return [np.asarray(v.value) for v in model.weights]


def _max_diff(first, second):
    pairs = zip(first, second, strict=True)
    return max(float(np.max(np.abs(a - b))) for a, b in pairs)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--cases",
        default="darts_order1,darts_order2,spos_uniform,spos_fair",
    )
    args = parser.parse_args(argv)
    assert len(jax.devices()) == 2
    out = {}
    cases = {
        "darts_order1": lambda: darts(1),
        "darts_order2": lambda: darts(2),
        "spos_uniform": lambda: one_shot(None),
        "spos_fair": lambda: one_shot("fair"),
        "hypernetwork": hypernetwork,
        "gan": gan,
    }
    for name in args.cases.split(","):
        make = cases[name]
        keras.distribution.set_distribution(None)
        start = init(make)
        one = step(make)
        keras.distribution.set_distribution(
            keras.distribution.DataParallel(devices=jax.devices())
        )
        two = step(make)
        keras.distribution.set_distribution(None)
        out[name] = {"max_diff": _max_diff(one, two)}
        if len(start) == len(one):  # Models built at construction.
            out[name]["max_change"] = _max_diff(one, start)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
