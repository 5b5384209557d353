"""Times the training steps of `OneShotSupernet` (SPOS), compiled and eager.

One subprocess per measurement: it builds the supernet, runs one `fit` of one
step (the trace of the compiled step, or the lazy per-layer traces of the
eager step), then times `--steps` more steps. With several `--pythonpath`
values the same measurement runs for each source tree in turn, interleaved
over `--rounds` rounds, so that two versions of keras-nas are compared under
the same (shared, loaded) machine.

Spaces: `nb201` (the NAS-Bench-201 supernet of benchmarks/one_shot_ranking.py:
8 filters, 1 cell per stage) and `cell` (a small cell space: 4 filters, 3
cells, 2 nodes, 4 ops). Inputs 8x8x1, 10 classes, batch 64, SGD.

Usage:

    python benchmarks/one_shot_step.py --space nb201 --steps 40
    python benchmarks/one_shot_step.py --pythonpath /old/src \\
        --pythonpath . --rounds 2

Prints one line per measurement and the median ms/step per version and step
kind (CPU time per step, `time.process_time`, and wall time).
"""

import argparse
import json
import os
import subprocess
import sys
import time

CHILD = r"""
import json, sys, time
import numpy as np
import keras
import keras_nas
from keras_nas.spaces import CellSearchSpace, NasBench201SearchSpace
from keras_nas.supernet import OneShotSupernet

space_name, step, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
if space_name == "nb201":
    space = NasBench201SearchSpace(input_shape=(8, 8, 1), num_classes=10,
                                   filters=8, cells_per_stage=1)
else:
    space = CellSearchSpace(
        input_shape=(8, 8, 1), num_classes=10, num_nodes=2, num_cells=3,
        filters=4, ops=("none", "skip_connect", "sep_conv_3x3",
                        "max_pool_3x3"))
rng = np.random.default_rng(0)
x = rng.normal(size=(64 * steps, 8, 8, 1)).astype("float32")
y = rng.integers(0, 10, size=64 * steps).astype("int32")
keras.utils.set_random_seed(0)
net = OneShotSupernet(space, seed=0)
net.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9), step=step)
t0, c0 = time.perf_counter(), time.process_time()
net.fit(x[:64], y[:64], epochs=1, batch_size=64, verbose=0)
first = time.perf_counter() - t0
t0, c0 = time.perf_counter(), time.process_time()
net.fit(x, y, epochs=1, batch_size=64, verbose=0)
wall, cpu = time.perf_counter() - t0, time.process_time() - c0
print("RESULT " + json.dumps({
    "package": keras_nas.__file__, "first_s": first,
    "wall_ms": 1000 * wall / steps, "cpu_ms": 1000 * cpu / steps}))
"""


def measure(pythonpath, space, step, steps):
    env = dict(os.environ, PYTHONPATH=os.path.abspath(pythonpath))
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    out = subprocess.run(
        [sys.executable, "-c", CHILD, space, step, str(steps)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    line = [v for v in out.splitlines() if v.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT ") :])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pythonpath", action="append")
    parser.add_argument("--space", default="nb201", choices=["nb201", "cell"])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument(
        "--step", action="append", choices=["compiled", "eager"]
    )
    args = parser.parse_args()
    paths = args.pythonpath or ["."]
    kinds = args.step or ["compiled", "eager"]
    results = {}
    for r in range(args.rounds):
        for kind in kinds:
            for path in paths:
                t = time.time()
                res = measure(path, args.space, kind, args.steps)
                results.setdefault((path, kind), []).append(res)
                print(
                    f"round {r} {kind:8s} {path}: first fit "
                    f"{res['first_s']:.1f} s, then {res['cpu_ms']:.1f} ms "
                    f"CPU / {res['wall_ms']:.1f} ms wall per step "
                    f"({time.time() - t:.0f} s)",
                    flush=True,
                )
    for (path, kind), runs in results.items():
        cpu = sorted(r["cpu_ms"] for r in runs)[len(runs) // 2]
        wall = sorted(r["wall_ms"] for r in runs)[len(runs) // 2]
        first = sorted(r["first_s"] for r in runs)[len(runs) // 2]
        print(
            f"median {kind:8s} {path}: {cpu:.1f} ms CPU, {wall:.1f} ms wall "
            f"per step; first fit {first:.1f} s"
        )


if __name__ == "__main__":
    main()
