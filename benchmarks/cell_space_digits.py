"""Time and accuracy of `CellSearchSpace` configurations on sklearn digits.

Trains the default architecture and `--archs - 1` random ones of a
`CellSearchSpace` configuration for `--epochs` epochs each (80/20 split of
the training part for validation, as a search trial would) and reports
wall time, process CPU time and test accuracy per architecture.

Usage:
    python benchmarks/cell_space_digits.py --num-nodes 2 --num-cells 2 \
        --filters 8 --epochs 5 --archs 3
"""

from __future__ import annotations

import argparse
import time

import keras_tuner
from _common import digits_train_test

from keras_nas.spaces import CellSearchSpace


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-nodes", type=int, default=2)
    parser.add_argument("--num-cells", type=int, default=2)
    parser.add_argument("--filters", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--learning-rate", type=float, default=5e-3)
    parser.add_argument("--archs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()

    x_train, x_test, y_train, y_test = digits_train_test()
    space = CellSearchSpace(
        num_nodes=args.num_nodes,
        num_cells=args.num_cells,
        filters=args.filters,
        learning_rate=args.learning_rate,
    )
    for seed in range(args.archs):
        hp = keras_tuner.HyperParameters()
        space.declare_hyperparameters(hp)
        if seed:  # Seed 0 is the space's default architecture.
            oracle = keras_tuner.oracles.RandomSearchOracle(
                hyperparameters=hp, seed=seed, max_trials=1
            )
            hp.values.update(oracle._random_values())
        wall, cpu = time.perf_counter(), time.process_time()
        model = space.build(hp)
        history = model.fit(
            x_train,
            y_train,
            epochs=args.epochs,
            batch_size=args.batch_size,
            validation_split=0.2,
            verbose=0,
        )
        wall = time.perf_counter() - wall
        cpu = time.process_time() - cpu
        test = model.evaluate(x_test, y_test, verbose=0)[1]
        print(
            f"arch={seed} nodes={args.num_nodes} cells={args.num_cells} "
            f"filters={args.filters} epochs={args.epochs} "
            f"params={model.count_params()} wall={wall:.1f}s "
            f"cpu={cpu:.1f}s val_acc={history.history['val_accuracy'][-1]:.3f}"
            f" test_acc={test:.3f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
