"""Random search over the default `CellSearchSpace` on sklearn digits.

Runs keras-tuner's `RandomSearch` for `--trials` trials of `--epochs` epochs
(20 % of the training part for validation), retrains the best architecture
for `--retrain-epochs` on the training part and reports test accuracy, wall
and process CPU time.

Usage:
    python benchmarks/cell_space_digits_search.py --trials 4 --epochs 5 \
        --retrain-epochs 15
"""

from __future__ import annotations

import argparse
import tempfile
import time

import keras_tuner
from _common import digits_train_test

from keras_nas.spaces import CellSearchSpace


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--retrain-epochs", type=int, default=15)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    x_train, x_test, y_train, y_test = digits_train_test()
    wall, cpu = time.perf_counter(), time.process_time()
    space = CellSearchSpace()
    with tempfile.TemporaryDirectory() as directory:
        tuner = keras_tuner.RandomSearch(
            space,
            objective="val_accuracy",
            max_trials=args.trials,
            seed=args.seed,
            directory=directory,
        )
        tuner.search(
            x_train,
            y_train,
            epochs=args.epochs,
            batch_size=32,
            validation_split=0.2,
            verbose=0,
        )
        for trial in tuner.oracle.get_best_trials(args.trials):
            hp = trial.hyperparameters
            print(
                f"trial {trial.trial_id} val_accuracy={trial.score:.3f} "
                f"num_cells={hp.get('num_cells')} filters={hp.get('filters')}"
            )
        best = tuner.get_best_hyperparameters()[0]
    print(
        f"search wall={time.perf_counter() - wall:.1f}s "
        f"cpu={time.process_time() - cpu:.1f}s",
        flush=True,
    )
    model = space.build(best)
    model.fit(
        x_train, y_train, epochs=args.retrain_epochs, batch_size=32, verbose=0
    )
    test = model.evaluate(x_test, y_test, verbose=0)[1]
    print(
        f"total wall={time.perf_counter() - wall:.1f}s "
        f"cpu={time.process_time() - cpu:.1f}s test_acc={test:.3f}"
    )


if __name__ == "__main__":
    main()
