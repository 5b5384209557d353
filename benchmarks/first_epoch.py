"""Time to a trial's first epoch: optimizer variables built at compile time.

A search trial builds a new model and fits it. On the TensorFlow backend,
Keras creates the optimizer's and the compiled metrics' variables inside
the first trace of the train step, and `tf.function` then traces the
whole step again. keras-nas spaces now build that state when they compile
the model (`keras_nas.spaces._common.build_training_state`). This script
fits one epoch of a fresh model of each space on digits, with and without
that build, interleaved, in one process, and prints the CPU time of the
`fit` call (`time.process_time`: the box may be shared), its wall time,
how many times the train step was traced, and whether the weights after
the epoch are identical.

Usage:

    python benchmarks/first_epoch.py --repeats 3
"""

from __future__ import annotations

import argparse
import time

import _common
import keras
import keras_tuner
import numpy as np

from keras_nas.spaces import (
    CellSearchSpace,
    ChainSearchSpace,
    NasBench201SearchSpace,
)
from keras_nas.spaces import (
    _common as space_common,
)

SPACES = {
    "chain": lambda: ChainSearchSpace((8, 8, 1), 10),
    "cell": lambda: CellSearchSpace(
        (8, 8, 1), 10, num_cells=3, num_nodes=2, filters=8
    ),
    "nb201": lambda: NasBench201SearchSpace(
        (8, 8, 1), 10, filters=4, cells_per_stage=1
    ),
}


def _one(space_name: str, prebuild: bool, train, val) -> dict:
    space = SPACES[space_name]()
    original = space_common.build_training_state
    if not prebuild:
        space_common.build_training_state = lambda model: None
    try:
        keras.utils.set_random_seed(0)
        hp = keras_tuner.HyperParameters()
        cpu0, wall0 = time.process_time(), time.perf_counter()
        model = space.build(hp)
        traces = []
        step = model.train_step
        model.train_step = lambda data: traces.append(1) or step(data)
        space.fit(
            hp, model, *train, validation_data=val, batch_size=32, verbose=0
        )
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    finally:
        space_common.build_training_state = original
    weights = np.concatenate(
        [np.ravel(keras.ops.convert_to_numpy(w)) for w in model.weights]
    )
    return dict(cpu=cpu, wall=wall, traces=len(traces), weights=weights)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--spaces", default=",".join(SPACES))
    args = parser.parse_args(argv)
    train, val = _common.digits_split(0, 1079, 360)
    print("space  build  cpu_s  wall_s  traces  same_weights")
    for space_name in args.spaces.split(","):
        rows = {True: [], False: []}
        # The first fit of a process differs in the last bits (warm-up, in
        # either mode): discarded, so the weights compare like for like.
        _one(space_name, True, train, val)
        for _ in range(args.repeats):
            for prebuild in (False, True):
                rows[prebuild].append(_one(space_name, prebuild, train, val))
        same = all(
            np.array_equal(a["weights"], b["weights"])
            for a, b in zip(rows[False], rows[True], strict=True)
        )
        for prebuild in (False, True):
            cpu = np.median([r["cpu"] for r in rows[prebuild]])
            wall = np.median([r["wall"] for r in rows[prebuild]])
            traces = rows[prebuild][0]["traces"]
            label = "now" if prebuild else "lazy"
            print(
                f"{space_name:6s} {label:5s} {cpu:6.2f} {wall:7.2f} "
                f"{traces:6d}  {same}",
                flush=True,
            )


if __name__ == "__main__":
    main()
