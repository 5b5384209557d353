"""Time to construct a tuner: keras-tuner's discovery builds.

A keras-tuner `Tuner` builds its hypermodel again and again at construction
until every conditional hyperparameter has been seen
(`BaseTuner._activate_all_conditions`; 47 builds for the default
`ChainSearchSpace`) and throws those models away. keras-nas spaces used to
create each model's optimizer and metric variables at build time
(`build_training_state`); they now defer it to the model's first `fit` or
`evaluate` (`keras_nas.spaces._common.defer_training_state`). This script
constructs a `RandomSearch` tuner on each space both ways, interleaved, in
one process, and prints the CPU time (`time.process_time`: the box may be
shared), the wall time and the number of builds.

Usage:

    python benchmarks/tuner_construction.py --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import keras_tuner

from keras_nas.spaces import (
    CellSearchSpace,
    ChainSearchSpace,
    NasBench201SearchSpace,
)
from keras_nas.spaces import (
    _common as space_common,
)

SPACES = {
    "chain (default)": lambda: ChainSearchSpace(),
    "cell": lambda: CellSearchSpace((8, 8, 1), 10, num_cells=(1, 2, 3)),
    "nb201": lambda: NasBench201SearchSpace((8, 8, 1), 10, filters=4),
}


def _construct(make_space, eager_state: bool) -> tuple[float, float, int]:
    space = make_space()
    builds = []
    original_build = space._build
    space._build = lambda hp: builds.append(1) or original_build(hp)
    defer = space_common.defer_training_state
    if eager_state:  # as before: the state built with every model
        space_common.defer_training_state = (
            space_common.build_training_state
        )
    try:
        cpu0, wall0 = time.process_time(), time.perf_counter()
        with tempfile.TemporaryDirectory() as directory:
            keras_tuner.RandomSearch(
                space, objective="val_accuracy", max_trials=1,
                directory=directory,
            )  # fmt: skip
        return (
            time.process_time() - cpu0, time.perf_counter() - wall0, len(builds)
        )
    finally:
        space_common.defer_training_state = defer


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    print(f"{'space':<16} {'state built':<14} {'builds':>6} "
          f"{'CPU s (median)':>14} {'wall s (median)':>15}")
    for name, make_space in SPACES.items():
        _construct(make_space, False)  # warm-up: imports, first traces
        runs = {True: [], False: []}
        for _ in range(args.repeats):
            for eager_state in (True, False):
                runs[eager_state].append(_construct(make_space, eager_state))
        for eager_state, label in ((True, "at build"), (False, "at 1st fit")):
            cpu = statistics.median(r[0] for r in runs[eager_state])
            wall = statistics.median(r[1] for r in runs[eager_state])
            builds = runs[eager_state][0][2]
            print(f"{name:<16} {label:<14} {builds:>6} {cpu:>14.2f} "
                  f"{wall:>15.2f}")


if __name__ == "__main__":
    main()
