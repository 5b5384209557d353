"""One step of each supernet under `tf.distribute.MirroredStrategy`.

TensorFlow backend, 2 logical CPU devices (set here before TensorFlow
starts). `DartsSupernet` (first and second order) and `OneShotSupernet`
(uniform SPOS paths and FairNAS `sampler="fair"`) are built, compiled and
fitted inside `strategy.scope()` as Keras users do, for one step on a
global batch of 16 (8 per replica), and the same model takes the same step
on one device from the same initial weights. Prints one JSON line: per
case the largest absolute difference over all weights (architecture
variables included), the largest relative difference of the architecture
update (DARTS) and the largest change of any weight in the step.

Usage:

    python benchmarks/mirrored_supernets_check.py
    python benchmarks/mirrored_supernets_check.py --cases darts_order1
"""

import argparse
import json
import os

os.environ["KERAS_BACKEND"] = "tensorflow"

import tensorflow as tf  # noqa: E402

_CPUS = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    _CPUS[0],
    [tf.config.LogicalDeviceConfiguration()] * 2,
)

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
SAME = False


def same_halves():
    """Gives both replicas the same 8 samples (then per-replica batch-norm
    statistics are those of the global batch)."""
    global X, Y, SAME
    SAME = True
    h = np.tile(np.arange(BATCH // 2), 2)
    idx = np.concatenate([h, BATCH + h])
    X, Y = X[idx], Y[idx]


def darts(order, arch_sgd=False):
    model = DartsSupernet(
        (8, 8, 3), 10, filters=2, num_cells=2, num_nodes=2, order=order, seed=0
    )
    # With plain SGD (learning rate 1) the update of alpha is its gradient.
    arch = keras.optimizers.SGD(1.0) if arch_sgd else None
    model.compile(decay_steps=10, arch_optimizer=arch)
    data = SearchData(
        (X[:BATCH], Y[:BATCH]), (X[BATCH:], Y[BATCH:]), BATCH, shuffle=False
    )
    return model, lambda: model.fit(data, epochs=1, verbose=0)


def one_shot(sampler, step="auto"):
    space = NasBench201SearchSpace(
        input_shape=(8, 8, 3), num_classes=10, filters=2, cells_per_stage=1
    )
    model = OneShotSupernet(space, sampler=sampler, seed=0)
    model.compile(
        optimizer=keras.optimizers.SGD(0.1, momentum=0.9), step=step
    )
    return model, lambda: model.fit(
        X[:BATCH], Y[:BATCH], batch_size=BATCH, verbose=0, shuffle=False
    )


def hypernetwork():
    space = NasBench201SearchSpace(
        input_shape=(8, 8, 3), num_classes=10, filters=2, cells_per_stage=1
    )
    model = HyperNetwork(space, seed=0)
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9))
    # `train` shuffles the batch: with --halves same, one image repeated.
    images = np.repeat(X[:1], BATCH, axis=0) if SAME else X[:BATCH]
    return model, lambda: model.train(images, Y[:BATCH], 1, BATCH)


def gan():
    generator = build_generator((4, 4, 1), [{}, {"skips": [True]}], 4, 8)
    model = GAN(generator, build_discriminator((4, 4, 1), filters=4), seed=0)
    model.compile()
    images = X[:BATCH, :4, :4, :1]
    return model, lambda: model.fit(
        images, batch_size=BATCH, verbose=0, shuffle=False
    )


CASES = {
    "darts_order1": lambda: darts(1),
    "darts_order2": lambda: darts(2),
    "darts_order1_arch_sgd": lambda: darts(1, arch_sgd=True),
    "spos_uniform": lambda: one_shot(None),
    "spos_fair": lambda: one_shot("fair"),
    "spos_eager": lambda: one_shot(None, step="eager"),
    "hypernetwork": hypernetwork,
    "gan": gan,
}


def run(make, strategy=None):
    """(initial weights, weights after one step) of a fresh model."""
    keras.utils.set_random_seed(0)
    scope = strategy or tf.distribute.get_strategy()
    with scope.scope():
        model, fit = make()
        start = [np.array(v.numpy()) for v in model.weights]
        fit()
    names = [v.path for v in model.weights]
    spread = 0.0  # largest difference between two replicas' copies
    for v in model.weights:
        copies = getattr(v.value, "values", None)
        if strategy and copies and len(copies) > 1:
            first = np.asarray(copies[0].numpy(), dtype="float64")
            for c in copies[1:]:
                d = np.abs(np.asarray(c.numpy(), dtype="float64") - first)
                spread = max(spread, float(np.max(d)))
    run.replica_spread = spread
    return names, start, [np.array(v.numpy()) for v in model.weights]


def compare(make, strategy):
    names, start, one = run(make)
    _, start2, two = run(make, strategy)
    assert all(np.array_equal(a, b) for a, b in zip(start, start2, strict=True))
    out = {"max_diff": 0.0, "max_change": 0.0}
    out["replica_spread"] = run.replica_spread
    for name, s, a, b in zip(names, start, one, two, strict=True):
        if a.dtype.kind != "f":
            out.setdefault("int_mismatch", [])
            if not np.array_equal(a, b):
                out["int_mismatch"].append(name)
            continue
        out["max_diff"] = max(out["max_diff"], float(np.max(np.abs(a - b))))
        out["max_change"] = max(out["max_change"], float(np.max(np.abs(a - s))))
        if "alpha" in name:
            d1, d2 = a - s, b - s
            rel = float(np.linalg.norm(d2 - d1) / np.linalg.norm(d1))
            out.setdefault("alpha_update_rel_diff", {})[name] = rel
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument(
        "--halves",
        choices=("different", "same"),
        default="different",
        help="whether the two replicas' halves of each batch differ",
    )
    args = parser.parse_args(argv)
    if args.halves == "same":
        same_halves()
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    out = {}
    for name in args.cases.split(","):
        try:
            out[name] = compare(CASES[name], strategy)
        except Exception as e:  # noqa: BLE001
            out[name] = {"error": f"{type(e).__name__}: {str(e)[:300]}"}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
