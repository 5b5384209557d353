"""The README's Python quickstart on each Keras backend, timed on this machine.

Runs the quickstart (digits, `CellSearchSpace`, `AgingEvolution`, 10 trials
of 5 epochs) in a fresh process per backend, the backends
interleaved round after round so that a change in the machine's load hits
them alike. Prints one JSON line per run and, at the end, the median wall
time and CPU time (user + system of the process and its threads, less
sensitive to other processes on a shared machine) of each backend, with
their ratios to TensorFlow.

Usage:

```
python benchmarks/quickstart_backends.py --rounds 2
python benchmarks/quickstart_backends.py --backends tensorflow jax --trials 3
```

A backend that is not installed (e.g. torch) is reported and skipped. The
default `--seed 1`, not the README's 0: keras-tuner's `Oracle` replaces a
seed of 0 by a random one (`seed or random.randint(...)`), so with 0 each
run would time other architectures. With at most `population_size` (5)
trials, every backend trains the same sampled architectures.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

QUICKSTART = """
import json, sys, time
started = time.perf_counter()
from keras_nas.data import load_dataset
from keras_nas.spaces import CellSearchSpace
from keras_nas.tuners import AgingEvolution

data = load_dataset("digits")
space = CellSearchSpace(input_shape=data.input_shape, num_classes=10)
tuner = AgingEvolution(space, objective="val_accuracy", max_trials={trials},
                       population_size=5, seed={seed}, directory={directory!r})
searched = time.perf_counter()
tuner.search(*data.train, validation_data=data.validation, epochs={epochs},
             verbose=0)
done = time.perf_counter()
best = tuner.oracle.get_best_trials(1)[0]
print(json.dumps({{"setup_seconds": round(searched - started, 2),
                  "search_seconds": round(done - searched, 2),
                  "best_val_accuracy": round(best.score, 4)}}))
"""


def _run(backend: str, trials: int, epochs: int, seed: int) -> dict:
    with tempfile.TemporaryDirectory() as directory:
        code = QUICKSTART.format(
            trials=trials, epochs=epochs, seed=seed, directory=directory
        )
        env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
        started = time.perf_counter()
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        out = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            env=env,
        )
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (
            after.ru_stime - before.ru_stime
        )
    if out.returncode != 0:
        raise RuntimeError(f"{backend} failed:\n{out.stderr[-3000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result.update(
        backend=backend, wall_seconds=round(wall, 2), cpu_seconds=round(cpu, 2)
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--backends", nargs="+", default=["tensorflow", "jax", "torch"]
    )
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    backends = []
    for backend in args.backends:
        if importlib.util.find_spec(backend) is None:
            print(f"{backend}: not installed, not measured", flush=True)
        else:
            backends.append(backend)
    walls: dict[str, list[float]] = {b: [] for b in backends}
    cpus: dict[str, list[float]] = {b: [] for b in backends}
    for _ in range(args.rounds):
        for backend in backends:
            result = _run(backend, args.trials, args.epochs, args.seed)
            walls[backend].append(result["wall_seconds"])
            cpus[backend].append(result["cpu_seconds"])
            print(json.dumps(result), flush=True)
    for what, table in (("wall", walls), ("cpu", cpus)):
        base = (
            statistics.median(table["tensorflow"])
            if table.get("tensorflow")
            else None
        )
        for backend, values in table.items():
            median = statistics.median(values)
            ratio = (
                "" if base is None else f" ({median / base:.2f}x tensorflow)"
            )
            print(
                f"{backend}: median {what} {median:.1f}s over {len(values)}"
                f"{ratio}"
            )


if __name__ == "__main__":
    main()
