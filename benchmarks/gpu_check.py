"""GPU run-book check: DARTS, SPOS and a small search on one accelerator.

One script for a machine with JAX and no TensorFlow (the Keras JAX backend;
nothing here imports `tensorflow`, which the script checks). Each part runs
in its own subprocess, so the peak memory printed belongs to that part:

1. `darts`: one first-order DARTS search epoch (`DartsSupernet`, Liu et al.,
   ICLR 2019) at the paper's configuration: 16 filters, 8 cells, batch 64,
   CIFAR-10-size random data, 25,000 training + 25,000 validation images
   32x32x3, 10 classes (390 steps).
2. `spos`: one epoch of single-path one-shot training (`OneShotSupernet`,
   Guo et al., ECCV 2020) of the same cell space (8 cells, 16 filters) on
   the 25,000 training images, batch 64.
3. `gdas`: the same DARTS epoch with `relaxation="gumbel"` (GDAS, Dong &
   Yang, CVPR 2019: one sampled op per edge in the forward pass).
4. `search`: a 3-trial `CellSearchSpace` search (`AgingEvolution`), each
   trial 1 epoch on the 25,000 training images, scored on the 25,000
   validation images (8 cells, 16 filters).

Printed per part: wall time of the first steps (compilation included), of
the epoch or search, and the peak memory: the accelerator's
`peak_bytes_in_use` (JAX `memory_stats()`, where the device has it) and the
process' peak resident host memory. `--smoke` runs a tiny configuration
(8x8 images, 2 filters, 1 cell of 1 node, 64 + 64 images) to check it on
a CPU; its figures mean nothing for a GPU (`--block-tensorflow` makes
`import tensorflow` fail there, as on the GPU machine). Target on an
H100/H200-class GPU: the DARTS epoch under 1 minute; the whole script
under 8 minutes.

Usage:

    python benchmarks/gpu_check.py            # on the GPU machine
    python benchmarks/gpu_check.py --smoke --block-tensorflow  # on a CPU
    python benchmarks/gpu_check.py --parts darts --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

PARTS = ("darts", "spos", "gdas", "search")
FULL = dict(shape=(32, 32, 3), filters=16, cells=8, nodes=4, batch=64, n=25_000)
SMOKE = dict(shape=(8, 8, 3), filters=2, cells=1, nodes=1, batch=32, n=64)


def _data(cfg: dict, seed: int = 0):
    import numpy as np

    rng = np.random.default_rng(seed)
    shape = (2 * cfg["n"], *cfg["shape"])
    x = rng.random(shape, dtype=np.float32)
    y = rng.integers(0, 10, size=2 * cfg["n"]).astype("int32")
    n = cfg["n"]
    return (x[:n], y[:n]), (x[n:], y[n:])


def _device_peak_mib() -> float | None:
    import jax

    stats = jax.local_devices()[0].memory_stats() or {}
    peak = stats.get("peak_bytes_in_use")
    return None if peak is None else peak / 2**20


def _host_peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _progress(text: str) -> None:
    print(f"PROGRESS {text}", flush=True)


def _darts(cfg: dict, relaxation: str = "softmax") -> dict:
    import keras

    from keras_nas.supernet.darts import DartsSupernet, SearchData

    train, val = _data(cfg)
    data = SearchData(train, val, batch_size=cfg["batch"], seed=0)
    model = DartsSupernet(
        cfg["shape"],
        10,
        filters=cfg["filters"],
        num_cells=cfg["cells"],
        num_nodes=cfg["nodes"],
        order=1,
        relaxation=relaxation,
        seed=0,
    )
    model.compile(decay_steps=len(data))
    keras.utils.set_random_seed(0)
    t0 = time.perf_counter()
    model.fit(data, epochs=1, steps_per_epoch=2, verbose=0)
    first = time.perf_counter() - t0
    _progress(f"first 2 steps with compilation {first:.1f} s")
    t0 = time.perf_counter()
    history = model.fit(data, epochs=1, verbose=0)
    epoch = time.perf_counter() - t0
    return {
        "steps": len(data),
        "first_2_steps_s": first,
        "epoch_s": epoch,
        "loss": float(history.history["loss"][-1]),
    }


def _gdas(cfg: dict) -> dict:
    return _darts(cfg, relaxation="gumbel")


def _cell_space(cfg: dict):
    from keras_nas.spaces import CellSearchSpace

    return CellSearchSpace(
        input_shape=cfg["shape"],
        num_classes=10,
        num_cells=cfg["cells"],
        num_nodes=cfg["nodes"],
        filters=cfg["filters"],
    )


def _spos(cfg: dict) -> dict:
    import keras

    from keras_nas.supernet.one_shot import OneShotSupernet

    (x, y), _ = _data(cfg)
    keras.utils.set_random_seed(0)
    model = OneShotSupernet(_cell_space(cfg), seed=0)
    model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9))
    batch = cfg["batch"]
    # Whole batches only (24,960 images): a last, smaller batch would be
    # compiled again inside the timed epoch.
    whole = len(x) // batch * batch
    x, y = x[:whole], y[:whole]
    t0 = time.perf_counter()
    model.fit(x[: 2 * batch], y[: 2 * batch], batch_size=batch, verbose=0)
    first = time.perf_counter() - t0
    _progress(f"first 2 steps with compilation {first:.1f} s")
    t0 = time.perf_counter()
    history = model.fit(x, y, batch_size=batch, epochs=1, verbose=0)
    epoch = time.perf_counter() - t0
    return {
        "steps": len(x) // batch,
        "first_2_steps_s": first,
        "epoch_s": epoch,
        "loss": float(history.history["loss"][-1]),
    }


def _search(cfg: dict) -> dict:
    import keras

    from keras_nas.tuners.evolution import AgingEvolution

    train, val = _data(cfg)
    with tempfile.TemporaryDirectory() as directory:
        tuner = AgingEvolution(
            _cell_space(cfg),
            objective="val_accuracy",
            max_trials=3,
            population_size=2,
            seed=0,
            directory=directory,
            project_name="gpu_check",
        )
        t0 = time.perf_counter()

        def first_step(batch, logs=None):
            if batch == 0:
                _progress(
                    f"a trial's first step at {time.perf_counter() - t0:.1f} s"
                )

        def trial_end(logs=None):
            _progress(f"a trial ended at {time.perf_counter() - t0:.1f} s")

        progress = keras.callbacks.LambdaCallback(
            on_train_batch_end=first_step, on_train_end=trial_end
        )
        tuner.search(
            *train,
            validation_data=val,
            epochs=1,
            batch_size=cfg["batch"],
            callbacks=[progress],
            verbose=0,
        )
        seconds = time.perf_counter() - t0
        scores = [t.score for t in tuner.oracle.trials.values()]
    return {"trials": len(scores), "search_s": seconds, "scores": scores}


def run_part(part: str, smoke: bool, block_tensorflow: bool) -> dict:
    """Runs one part in this process (a subprocess of `main`)."""
    os.environ["KERAS_BACKEND"] = "jax"
    if block_tensorflow:
        # As on a machine without TensorFlow: `import tensorflow` fails
        # (Keras then skips its optional tf.data support).
        sys.modules["tensorflow"] = None
    import jax
    import keras

    cfg = SMOKE if smoke else FULL
    t0 = time.perf_counter()
    parts = {"darts": _darts, "spos": _spos, "gdas": _gdas, "search": _search}
    result = parts[part](cfg)
    result.update(
        part=part,
        wall_s=time.perf_counter() - t0,
        device=str(jax.local_devices()[0].device_kind),
        platform=jax.default_backend(),
        backend=keras.backend.backend(),
        device_peak_mib=_device_peak_mib(),
        host_peak_mib=_host_peak_mib(),
        tensorflow_imported=sys.modules.get("tensorflow") is not None,
    )
    return result


def _say(result: dict) -> None:
    part = result["part"]
    device = result.get("device_peak_mib")
    memory = (
        "device peak n/a" if device is None else f"device peak {device:.0f} MiB"
    )
    memory += f", host peak {result['host_peak_mib']:.0f} MiB"
    if part == "search":
        timing = (
            f"{result['trials']} trials in {result['search_s']:.1f} s "
            f"(val_accuracy {result['scores']})"
        )
    else:
        timing = (
            f"epoch of {result['steps']} steps in {result['epoch_s']:.1f} s "
            f"(first 2 steps with compilation {result['first_2_steps_s']:.1f}"
            f" s; loss {result['loss']:.3f})"
        )
    print(
        f"{part:6s} [{result['platform']} {result['device']}] {timing}; "
        f"{memory}; part wall {result['wall_s']:.1f} s; tensorflow "
        f"imported: {result['tensorflow_imported']}",
        flush=True,
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--parts", default=",".join(PARTS))
    parser.add_argument("--json", help="write the results to this file")
    parser.add_argument(
        "--part-timeout", type=float, default=300.0, help="seconds per part"
    )
    parser.add_argument(
        "--budget",
        type=float,
        default=None,
        help="seconds for all parts together: a part gets at most what "
        "is left (a device lease is short)",
    )
    parser.add_argument(
        "--block-tensorflow",
        action="store_true",
        help="make `import tensorflow` fail, as on the GPU machine",
    )
    parser.add_argument("--run-part", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.run_part:
        result = run_part(args.run_part, args.smoke, args.block_tensorflow)
        print("RESULT " + json.dumps(result))
        return 0
    env = dict(os.environ, KERAS_BACKEND="jax")
    env.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    results, status = [], 0
    started = time.perf_counter()
    for part in args.parts.split(","):
        if part not in PARTS:
            parser.error(f"unknown part {part!r} (choose from {PARTS})")
        command = [sys.executable, __file__, "--run-part", part]
        timeout = args.part_timeout
        if args.budget is not None:
            left = args.budget - (time.perf_counter() - started)
            timeout = min(timeout, left)
            if left < 30:
                print(f"{part:6s} not run: {left:.0f} s of the budget left")
                results.append({"part": part, "skipped_budget_left_s": left})
                status = 1
                continue
        argv = (
            command
            + (["--smoke"] if args.smoke else [])
            + (["--block-tensorflow"] if args.block_tensorflow else [])
        )
        with (
            tempfile.TemporaryFile("w+") as out,
            tempfile.TemporaryFile("w+") as err,
        ):
            child = subprocess.Popen(argv, env=env, stdout=out, stderr=err)
            try:
                child.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
            out.seek(0)
            err.seek(0)
            stdout, stderr = out.read(), err.read()
        if child.returncode is not None and child.returncode < 0:
            # Killed at its timeout: say how far it got.
            print(f"{part:6s} did not finish in {timeout:.0f} s", flush=True)
            for line in stdout.splitlines():
                if line.startswith("PROGRESS "):
                    print(f"{part:6s} {line[len('PROGRESS ') :]}", flush=True)
            results.append({"part": part, "timeout_s": timeout})
            _dump(args.json, time.perf_counter() - started, args.smoke, results)
            status = 1
            continue
        lines = [
            line for line in stdout.splitlines() if line.startswith("RESULT ")
        ]
        if child.returncode != 0 or not lines:
            print(f"{part:6s} failed (exit {child.returncode}):", flush=True)
            print(stderr[-3000:])
            results.append({"part": part, "exit": child.returncode})
            status = 1
            continue
        result = json.loads(lines[-1][len("RESULT ") :])
        _say(result)
        results.append(result)
        _dump(args.json, time.perf_counter() - started, args.smoke, results)
    total = time.perf_counter() - started
    print(
        f"total {total:.1f} s"
        + (" (smoke configuration)" if args.smoke else "")
    )
    _dump(args.json, total, args.smoke, results)
    return status


def _dump(path: str | None, total: float, smoke: bool, results: list) -> None:
    """Writes the results so far (after every part: a killed run keeps them)."""
    if path:
        with open(path, "w") as f:
            json.dump(
                {"total_s": total, "smoke": smoke, "parts": results},
                f,
                indent=1,
            )


if __name__ == "__main__":
    sys.exit(main())
