"""BO, BANANAS and local search on real (small) searches on digits.

Runs the model-based tuners of `keras_nas.tuners`
(`ArchitectureBayesianOptimization`, `Bananas`, `LocalSearch`) and
keras-tuner's `RandomSearch` on the chain space and on a small cell space,
training every trial on scikit-learn digits, for a few seeds and a small
budget, and prints the best validation accuracy (mean +- std over the
seeds) and the wall time per search. A check that the defaults work away
from the NAS-Bench-201 table, not a ranking: with tens of trials the
differences are within the noise of training.

Example:

```
python benchmarks/model_based_digits_search.py --seeds 2 --trials 12
```
"""

from __future__ import annotations

import argparse
import functools
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras_tuner  # noqa: E402
import numpy as np  # noqa: E402
from _common import digits_split  # noqa: E402

from keras_nas.spaces import CellSearchSpace, ChainSearchSpace  # noqa: E402
from keras_nas.tuners import (  # noqa: E402
    ArchitectureBayesianOptimization,
    Bananas,
    LocalSearch,
)

SPACES = {
    "chain": lambda: ChainSearchSpace(max_layers=3),
    "cell": lambda: CellSearchSpace(num_nodes=3, num_cells=1, filters=8),
}


def tuners(initial):
    return {
        "random": keras_tuner.RandomSearch,
        "bo": functools.partial(
            ArchitectureBayesianOptimization, num_initial_trials=initial
        ),
        # BO's default encoding before issue 16's reduced path encoding.
        "bo-onehot": functools.partial(
            ArchitectureBayesianOptimization,
            num_initial_trials=initial,
            encoding="onehot",
        ),
        "bo-regions2": functools.partial(
            ArchitectureBayesianOptimization,
            num_initial_trials=initial,
            num_regions=2,
        ),
        "bananas": functools.partial(Bananas, num_initial_trials=initial),
        "local": functools.partial(LocalSearch, num_initial_trials=initial),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument(
        "--initial",
        type=int,
        default=4,
        help="num_initial_trials of the model-based tuners (their default "
        "10 would leave little of a 12-trial budget).",
    )
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--spaces", nargs="+", default=list(SPACES))
    parser.add_argument(
        "--tuners", nargs="+", default=["random", "bo", "bananas", "local"]
    )
    args = parser.parse_args(argv)
    (x, y), (x_val, y_val) = digits_split(0, 1000, 400)
    print(
        f"digits: 1000 train / 400 val, {args.trials} trials of "
        f"{args.epochs} epochs, seeds 1..{args.seeds}"
    )
    print("| space | tuner | best val acc (mean ± std) | per seed | s/search |")
    print("|---|---|---|---|---|")
    for space_name in args.spaces:
        for name, cls in tuners(args.initial).items():
            if name not in args.tuners:
                continue
            best, walls = [], []
            for seed in range(1, args.seeds + 1):
                start = time.perf_counter()
                with tempfile.TemporaryDirectory() as directory:
                    tuner = cls(
                        SPACES[space_name](),
                        objective="val_accuracy",
                        max_trials=args.trials,
                        seed=seed,
                        directory=directory,
                        project_name=name,
                    )
                    tuner.search(
                        x,
                        y,
                        validation_data=(x_val, y_val),
                        epochs=args.epochs,
                        batch_size=64,
                        verbose=0,
                    )
                    best.append(tuner.oracle.get_best_trials(1)[0].score)
                walls.append(time.perf_counter() - start)
            print(
                f"| {space_name} | {name} | {np.mean(best):.4f} ± "
                f"{np.std(best):.4f} | "
                + ", ".join(f"{b:.4f}" for b in best)
                + f" | {np.mean(walls):.0f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
