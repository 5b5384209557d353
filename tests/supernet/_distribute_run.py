"""Run by `test_distribute.py` in a subprocess: supernets on 2 replicas.

TensorFlow backend with 2 logical CPU devices (configured here, before
TensorFlow initialises). Each case (DARTS first and second order, the
uniform `OneShotSupernet`, `ProxylessSupernet`) builds, compiles and fits
its model
inside `tf.distribute.MirroredStrategy(...).scope()` for one step on a
global batch of 8 (4 per replica), and the same model (same seed, same
initial weights) takes the same step on one device. Both replicas get the
same 4 samples, so per-replica batch-norm statistics equal those of the
global batch and the two steps must agree to float rounding. The model of
the first case trained under the strategy is saved to `argv[1]/model.keras`
with its weights in `argv[1]/weights.npz`. The `OneShotSupernet` trained
under the strategy is also saved, loaded inside the strategy's scope and
trained one more step (`resumed`), against a second step of the 1-device
model. `ProxylessSupernet` takes two steps (a warm-up step, then one with
the architecture update; the same global batch twice); its path logits'
largest change, 1- vs 2-device difference and the number of architecture
updates on 2 replicas are reported apart (`arch_change`, `arch_diff`,
`arch_updates`).
Prints one JSON line.
"""

import json
import os
import pathlib
import resource
import sys

os.environ["KERAS_BACKEND"] = "tensorflow"

import tensorflow as tf  # noqa: E402

tf.config.set_logical_device_configuration(
    tf.config.list_physical_devices("CPU")[0],
    [tf.config.LogicalDeviceConfiguration()] * 2,
)
# Grappler's graph rewrites cost more CPU than these tiny steps (the same
# for both runs compared).
tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_nas.spaces import CellSearchSpace, MobileNetSearchSpace  # noqa
from keras_nas.supernet import (  # noqa: E402
    DartsSupernet,
    OneShotSupernet,
    ProxylessSupernet,
)
from keras_nas.supernet.darts import SearchData  # noqa: E402

HALF = 4
OPS = ("skip_connect", "max_pool_3x3")  # cheap to trace
_rng = np.random.default_rng(0)
_x = _rng.normal(size=(2, HALF, 8, 8, 1)).astype("float32")
_y = _rng.integers(0, 3, (2, HALF)).astype("int32")
# Two global batches (training, validation), each one half twice.
X = [np.concatenate([_x[k], _x[k]]) for k in range(2)]
Y = [np.concatenate([_y[k], _y[k]]) for k in range(2)]


def darts(order):
    model = DartsSupernet(
        (8, 8, 1), 3, filters=2, num_cells=1, num_nodes=1, order=order,
        ops=OPS, seed=0,
    )  # fmt: skip
    model.compile(decay_steps=10)
    data = SearchData((X[0], Y[0]), (X[1], Y[1]), 2 * HALF, shuffle=False)
    return model, lambda: model.fit(data, epochs=1, verbose=0)


def one_shot(sampler):
    space = CellSearchSpace(
        input_shape=(8, 8, 1), num_classes=3, filters=2, num_nodes=1,
        num_cells=1, ops=OPS,
    )  # fmt: skip
    model = OneShotSupernet(space, sampler=sampler, seed=0)
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9))
    return model, lambda: model.fit(
        X[0], Y[0], batch_size=2 * HALF, verbose=0, shuffle=False
    )


def proxyless():
    # Two steps: the first a warm-up step (no architecture update), the
    # second with the binary gates' architecture update.
    space = MobileNetSearchSpace(
        (8, 8, 1), 3, stem_filters=4, stages=((4, 2, 1),),
        kernel_sizes=(3,), expansions=(1, 3),
    )  # fmt: skip
    model = ProxylessSupernet(space, warmup_steps=1, seed=0)
    model.compile(decay_steps=10)
    train = np.concatenate([X[0], X[0]]), np.concatenate([Y[0], Y[0]])
    val = np.concatenate([X[1], X[1]]), np.concatenate([Y[1], Y[1]])
    data = SearchData(train, val, 2 * HALF, shuffle=False)
    return model, lambda: model.fit(data, epochs=1, verbose=0)


CASES = {
    "darts_order1": lambda: darts(1),
    "darts_order2": lambda: darts(2),
    "one_shot_uniform": lambda: one_shot(None),
    "proxyless": proxyless,
}


def _values(model):
    return [np.array(v.numpy()) for v in model.weights]


def _replica_spread(model):
    """Largest difference between the 2 replicas' copies of a variable."""
    spread = 0.0
    for v in model.weights:
        copies = getattr(v.value, "values", None) or (v.value, v.value)
        first, second = (np.asarray(c.numpy()) for c in copies)
        if first.dtype.kind == "f":
            spread = max(spread, float(np.max(np.abs(first - second))))
        elif not np.array_equal(first, second):
            spread = float("inf")
    return spread


def _arch_report(model, start, one, two):
    """The path logits' largest change and 1- vs 2-device difference."""
    ids = {id(a) for a in model.arch_variables}
    k = [i for i, v in enumerate(model.weights) if id(v) in ids]
    return {
        "arch_change": max(float(np.abs(one[i] - start[i]).max()) for i in k),
        "arch_diff": max(float(np.abs(one[i] - two[i]).max()) for i in k),
        "arch_updates": int(model.optimizer.arch_optimizer.iterations.numpy()),
    }


def step(make, strategy):
    keras.utils.set_random_seed(0)
    with strategy.scope():
        model, fit = make()
        start = _values(model)
        fit()
    return model, start, _values(model)


def resume(model, one_model, strategy, out_dir):
    """Largest difference after a save, a load in the scope and a second
    step, from the second 1-device step; and the optimizer's iterations."""
    path = pathlib.Path(out_dir) / "one_shot.keras"
    model.save(path)
    keras.utils.set_random_seed(1)
    one_model.fit(X[1], Y[1], batch_size=2 * HALF, verbose=0, shuffle=False)
    keras.utils.set_random_seed(1)
    with strategy.scope():
        loaded = keras.saving.load_model(path)
    loaded.fit(X[1], Y[1], batch_size=2 * HALF, verbose=0, shuffle=False)
    diff = 0.0
    for a, b in zip(_values(one_model), _values(loaded), strict=True):
        if a.dtype.kind == "f":
            diff = max(diff, float(np.abs(a - b).max()))
        elif not np.array_equal(a, b):
            diff = float("inf")
    iterations = int(loaded.optimizer.iterations.numpy())
    return {"max_diff": diff, "iterations": iterations}


def main(out_dir):
    one_device = tf.distribute.get_strategy()  # the default: no strategy
    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    report = {}
    for k, (name, make) in enumerate(CASES.items()):
        cpu = resource.getrusage(resource.RUSAGE_SELF)
        cpu = cpu.ru_utime + cpu.ru_stime
        one_model, start, one = step(make, one_device)
        model, start2, two = step(make, mirrored)
        pairs = list(zip(start, start2, strict=True))
        case = {
            "same_start": all(np.array_equal(a, b) for a, b in pairs),
            "max_diff": 0.0,
            "max_change": 0.0,
            "ints_equal": True,
            "replica_spread": _replica_spread(model),
            "replicas": model.distribute_strategy.num_replicas_in_sync,
        }
        for s, a, b in zip(start, one, two, strict=True):
            if a.dtype.kind != "f":
                case["ints_equal"] &= bool(np.array_equal(a, b))
                continue
            case["max_diff"] = max(case["max_diff"], float(np.abs(a - b).max()))
            change = float(np.abs(a - s).max())
            case["max_change"] = max(case["max_change"], change)
        if isinstance(model, ProxylessSupernet):
            case.update(_arch_report(model, start, one, two))
        if name == "one_shot_uniform":
            case["resumed"] = resume(model, one_model, mirrored, out_dir)
        report[name] = case
        end = resource.getrusage(resource.RUSAGE_SELF)
        print(name, end.ru_utime + end.ru_stime - cpu, file=sys.stderr)
        if k == 0:
            path = pathlib.Path(out_dir)
            model.save(path / "model.keras")
            np.savez(path / "weights.npz", *two)
    print(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1])
