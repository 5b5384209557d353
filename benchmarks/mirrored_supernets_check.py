"""One step of each supernet under `tf.distribute.MirroredStrategy`.

TensorFlow backend, 2 logical CPU devices (set here before TensorFlow
starts). `DartsSupernet` (first and second order), `OneShotSupernet`
(uniform SPOS paths and FairNAS `sampler="fair"`), `HyperNetwork`, the GAN
and `ProxylessSupernet` (without and with a 1-step warm-up) are built,
compiled and fitted inside `strategy.scope()` as Keras users do, for one
step on a global batch of 16 (8 per replica), and the same model takes the
same step on one device from the same initial weights. Prints one JSON line: per
case the largest absolute difference over all weights (architecture
variables included), the largest relative difference of the architecture
update (DARTS) and the largest change of any weight in the step.

`--strategy multiworker` runs the same cases under
`tf.distribute.MultiWorkerMirroredStrategy` instead: this process starts
two worker processes of this script on loopback (`TF_CONFIG`, ports from
the OS, one CPU device each, 8 samples each), takes the 1-device steps
itself, and compares; the DARTS, one-shot and GAN cases are also saved
after the step by each worker, loaded inside the strategy's scope and
trained one more step (`resume_diff`: against two 1-device steps).

Usage:

    python benchmarks/mirrored_supernets_check.py
    python benchmarks/mirrored_supernets_check.py --cases darts_order1
    python benchmarks/mirrored_supernets_check.py --strategy multiworker
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

os.environ["KERAS_BACKEND"] = "tensorflow"
_EARLY = argparse.ArgumentParser(add_help=False)
_EARLY.add_argument("--strategy", default="mirrored")
_EARLY.add_argument("--worker-index", type=int)
_EARLY.add_argument("--ports")
_EARLY = _EARLY.parse_known_args()[0]
if _EARLY.worker_index is not None:
    os.environ["TF_CONFIG"] = json.dumps(
        {
            "cluster": {
                "worker": [f"127.0.0.1:{p}" for p in _EARLY.ports.split(",")]
            },
            "task": {"type": "worker", "index": _EARLY.worker_index},
        }
    )

import tensorflow as tf  # noqa: E402

if _EARLY.worker_index is not None:
    # Created first: the strategy configures TensorFlow's collectives.
    _RING = tf.distribute.experimental.CommunicationImplementation.RING
    WORKERS = tf.distribute.MultiWorkerMirroredStrategy(
        communication_options=tf.distribute.experimental.CommunicationOptions(
            implementation=_RING
        )
    )
elif _EARLY.strategy == "mirrored":
    _CPUS = tf.config.list_physical_devices("CPU")
    tf.config.set_logical_device_configuration(
        _CPUS[0],
        [tf.config.LogicalDeviceConfiguration()] * 2,
    )

import _supernet_cases as cases  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402

BATCH = cases.BATCH
X, Y = cases.data()
SAME = False


def same_halves():
    """Gives both replicas the same 8 samples (then per-replica batch-norm
    statistics are those of the global batch)."""
    global X, Y, SAME
    SAME = True
    h = np.tile(np.arange(BATCH // 2), 2)
    idx = np.concatenate([h, BATCH + h])
    X, Y = X[idx], Y[idx]


def darts(order, **kwargs):
    return cases.darts(X, Y, order, **kwargs)


def one_shot(sampler, step="auto"):
    return cases.one_shot(X, Y, sampler, step)


def hypernetwork():
    # `train` shuffles the batch: with --halves same, one image repeated.
    images = np.repeat(X[:1], BATCH, axis=0) if SAME else X
    return cases.hypernetwork(images, Y)


CASES = {
    "darts_order1": lambda: darts(1),
    "darts_order2": lambda: darts(2),
    "darts_order1_arch_sgd": lambda: darts(1, arch_sgd=True),
    # The CLI's --tuner gdas, pc-darts and (cell space) proxyless.
    "gdas": lambda: darts(1, relaxation="gumbel"),
    "pc_darts": lambda: darts(1, filters=4, partial_channels=2),
    "darts_binary": lambda: darts(1, relaxation="binary"),
    "spos_uniform": lambda: one_shot(None),
    "spos_fair": lambda: one_shot("fair"),
    "spos_eager": lambda: one_shot(None, step="eager"),
    "hypernetwork": hypernetwork,
    "gan": lambda: cases.gan(X),
    "proxyless": lambda: cases.proxyless(X, Y),
    "proxyless_warmup": lambda: cases.proxyless(X, Y, warmup_steps=1),
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


# Saved after the step, loaded in the strategy's scope, one more step.
RESUMED = ("darts_order1", "darts_order2", "spos_uniform", "spos_fair", "gan")


def _values(model):
    return [np.array(v.numpy()) for v in model.weights]


def _save(path, **arrays):
    np.savez(path, **{f"{k}{i}": a for k, v in arrays.items()
                      for i, a in enumerate(v)})  # fmt: skip


def _load(path, key):
    data = np.load(path)
    n = len(key)
    names = [f for f in data.files if f[:n] == key and f[n:].isdigit()]
    names.sort(key=lambda f: int(f[n:]))
    return [data[f] for f in names]


def _worker(args):
    """One worker of `--strategy multiworker`: each case, `.npz` out."""
    index = args.worker_index
    for name in args.cases.split(","):
        path = os.path.join(args.out, f"{name}-w{index}")
        try:
            keras.utils.set_random_seed(0)
            with WORKERS.scope():
                model, fit = CASES[name]()
                start = _values(model)
                fit()
            arrays = {"start": start, "step1": _values(model)}
            if name in RESUMED:
                model.save(path + ".keras")
                with WORKERS.scope():
                    resumed = keras.saving.load_model(path + ".keras")
                    fit(resumed)
                arrays["step2"] = _values(resumed)
            _save(path + ".npz", **arrays)
        except Exception as e:  # noqa: BLE001
            with open(path + ".error", "w") as f:
                f.write(f"{type(e).__name__}: {str(e)[:300]}")


def _max_diff(first, second, ints, names=None, only=None):
    """Largest difference of the float arrays (of those named in `only`);
    appends to `ints` the names of integer arrays that differ."""
    diff = 0.0
    names = names or [str(i) for i in range(len(first))]
    for name, a, b in zip(names, first, second, strict=True):
        if a.dtype.kind != "f":
            if not np.array_equal(a, b):
                ints.append(name)
        elif only is None or name in only:
            diff = max(diff, float(np.max(np.abs(a - b))))
    return diff


def _multi_worker(args):
    """Two workers (subprocesses) vs this process's 1-device steps."""
    sockets = [socket.socket() for _ in range(2)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = ",".join(str(s.getsockname()[1]) for s in sockets)
    for s in sockets:
        s.close()
    out_dir = tempfile.mkdtemp(prefix="multiworker-")
    argv = [sys.executable, __file__, "--cases", args.cases, "--halves",
            args.halves, "--ports", ports, "--out", out_dir]  # fmt: skip
    t0 = time.time()
    workers = [
        subprocess.Popen([*argv, "--worker-index", str(i)]) for i in range(2)
    ]
    out = {}
    for name in args.cases.split(","):  # meanwhile, 1 device
        keras.utils.set_random_seed(0)
        model, fit = CASES[name]()
        start = _values(model)
        fit()
        ref1 = _values(model)
        fit()
        trainable = {v.path for v in model.trainable_weights}
        names = [v.path for v in model.weights]
        out[name] = {"ref": (start, ref1, _values(model), trainable, names)}
    for w in workers:
        w.wait(timeout=3600)
    wall = time.time() - t0
    for name, case in out.items():
        start, ref1, ref2, trainable, names = case.pop("ref")
        prefix = os.path.join(out_dir, name)
        if os.path.exists(prefix + "-w0.error"):
            case["error"] = open(prefix + "-w0.error").read()
            continue
        got = [prefix + f"-w{i}.npz" for i in range(2)]
        ints = {"start": [], "step1": [], "step2": [], "workers": []}
        case["same_start"] = all(
            _max_diff(_load(g, "start"), start, ints["start"]) == 0
            for g in got
        )
        case["max_change"] = _max_diff(start, ref1, [])
        case["max_diff"] = max(
            _max_diff(_load(g, "step1"), ref1, ints["step1"], names)
            for g in got
        )
        case["max_diff_trainable"] = max(
            _max_diff(_load(g, "step1"), ref1, [], names, trainable)
            for g in got
        )
        case["workers_differ_by"] = _max_diff(
            _load(got[0], "step1"), _load(got[1], "step1"), ints["workers"]
        )
        if name in RESUMED:
            case["resume_diff"] = max(
                _max_diff(_load(g, "step2"), ref2, ints["step2"], names)
                for g in got
            )
        case["int_mismatch"] = {k: sorted(set(v)) for k, v in ints.items() if v}
    out["wall_seconds"] = round(wall, 1)
    print(json.dumps(out))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument(
        "--halves",
        choices=("different", "same"),
        default="different",
        help="whether the two replicas' halves of each batch differ",
    )
    parser.add_argument(
        "--strategy", choices=("mirrored", "multiworker"), default="mirrored"
    )
    parser.add_argument("--worker-index", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--ports", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.halves == "same":
        same_halves()
    if args.worker_index is not None:
        return _worker(args)
    if args.strategy == "multiworker":
        return _multi_worker(args)
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
