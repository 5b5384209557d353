"""One training step of each supernet on 2 JAX devices vs 1 device.

`keras.distribution.DataParallel` (Keras JAX backend) on two host devices
(`XLA_FLAGS=--xla_force_host_platform_device_count=2`, set here before JAX
starts): `DartsSupernet` (first and second order) and `OneShotSupernet`
(uniform SPOS paths and FairNAS `sampler="fair"`), `HyperNetwork` (one
image repeated: the batch order `train` draws is moot), the GAN and
`ProxylessSupernet` (binary gates, no warm-up) each
take one step on the
same global batch of 16, once without a distribution (one device) and once
with the batch split over both devices, from the same initial weights.
Prints one JSON line: per supernet the largest absolute difference over all
weights (alphas, optimizer-free state included) and the largest change of
any float weight in the step. Tiny networks (8x8x3 inputs, 2 filters).

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

import _supernet_cases as cases  # noqa: E402
import jax  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402

BATCH = cases.BATCH
X, Y = cases.data()


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
    small = {"num_cells": 1, "num_nodes": 1}
    # The hypernetwork's `train` shuffles: one image repeated.
    repeated = np.repeat(X[:1], BATCH, axis=0)
    makers = {
        "darts_order1": lambda: cases.darts(X, Y, 1, **small),
        "darts_order2": lambda: cases.darts(X, Y, 2, **small),
        "spos_uniform": lambda: cases.one_shot(X, Y, None),
        "spos_fair": lambda: cases.one_shot(X, Y, "fair"),
        "hypernetwork": lambda: cases.hypernetwork(repeated, Y),
        "proxyless": lambda: cases.proxyless(X, Y),
        "gan": lambda: cases.gan(X),
    }
    for name in args.cases.split(","):
        make = makers[name]
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
            floats = [k for k, a in enumerate(one) if a.dtype.kind == "f"]
            out[name]["max_change"] = _max_diff(
                [one[k] for k in floats], [start[k] for k in floats]
            )
    print(json.dumps(out))


if __name__ == "__main__":
    main()
