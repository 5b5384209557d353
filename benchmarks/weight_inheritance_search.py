"""Aging evolution with full training vs weight inheritance, on digits.

Runs `AgingEvolution` twice on sklearn digits with the same seed and trial
count: (a) every trial trained from scratch for `--epochs` epochs, (b) with
the `WeightInheritance` estimator: children inherit their parent's weights
(Real et al., ICML 2017) and train for `--child-epochs` epochs, trials
without a parent train `--epochs`. Then the best architecture of each
search is retrained from scratch for `--retrain-epochs` epochs and scored on
the validation and the held-out test split. Prints wall and CPU time, the
search's best score and the retrained accuracies. Mode `morphisms` is (b)
with `WeightInheritance(morphisms=True)` (Net2WiderNet before inheritance).

Usage:
    python benchmarks/weight_inheritance_search.py --trials 30 --epochs 6 \
        --child-epochs 2 --retrain-epochs 15 --space chain
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import keras
import numpy as np
from _common import digits_train_test
from sklearn.model_selection import train_test_split

from keras_nas.estimation import WeightInheritance, retrain_top_k
from keras_nas.spaces import CellSearchSpace, ChainSearchSpace
from keras_nas.tuners import AgingEvolution


def _space(name: str):
    if name == "cell":
        return CellSearchSpace(
            input_shape=(8, 8, 1), num_classes=10, num_cells=2, filters=8
        )
    return ChainSearchSpace(input_shape=(8, 8, 1), num_classes=10)


class _FitClock(keras.callbacks.Callback):
    """Records each trial's fit: parameters, epochs, wall and CPU time.

    keras-tuner deep-copies the callbacks of `search`, so the records go to
    a class-level list.
    """

    records: list = []

    def on_train_begin(self, logs=None):
        self._start = (time.perf_counter(), time.process_time())
        self._epochs = 0

    def on_epoch_end(self, epoch, logs=None):
        self._epochs += 1

    def on_train_end(self, logs=None):
        wall, cpu = self._start
        _FitClock.records.append(
            (
                self.model.count_params(),
                self._epochs,
                time.perf_counter() - wall,
                time.process_time() - cpu,
            )
        )


def _run(args, mode, data, directory):
    x_train, y_train, x_val, y_val, x_test, y_test = data
    keras.utils.set_random_seed(args.seed)
    estimator = None
    if mode in ("inheritance", "morphisms"):
        estimator = WeightInheritance(
            epochs=args.child_epochs, morphisms=mode == "morphisms"
        )
    _FitClock.records = []
    wall, cpu = time.perf_counter(), time.process_time()
    tuner = AgingEvolution(
        _space(args.space),
        objective="val_accuracy",
        max_trials=args.trials,
        population_size=args.population,
        seed=args.seed,
        estimator=estimator,
        directory=directory,
        project_name=mode,
    )
    tuner.search(
        x_train,
        y_train,
        validation_data=(x_val, y_val),
        epochs=args.epochs,
        batch_size=32,
        callbacks=[_FitClock()],
        verbose=0,
    )
    fits = np.array(_FitClock.records, dtype="float64")
    search_wall = time.perf_counter() - wall
    search_cpu = time.process_time() - cpu
    best_trial = tuner.oracle.get_best_trials(1)[0]
    keras.utils.set_random_seed(args.seed)
    best = retrain_top_k(
        tuner,
        1,
        x_train,
        y_train,
        (x_val, y_val),
        epochs=args.retrain_epochs,
        batch_size=32,
    )[0]
    test_acc = best.model.evaluate(x_test, y_test, verbose=0)[1]
    if estimator is None:
        epochs = args.trials * args.epochs
        inherited = []
    else:
        reports = estimator.reports.values()
        epochs = sum(r["trained_epochs"] for r in reports)
        inherited = [r["fraction"] for r in reports if r["num_inherited"]]
    print(
        f"{mode}: search wall {search_wall:.1f} s (CPU {search_cpu:.1f} s), "
        f"{epochs} training epochs, {len(inherited)} children inherited "
        f"(mean fraction {np.mean(inherited) if inherited else 0:.2f}); "
        f"best trial {best_trial.trial_id} search val_accuracy "
        f"{best_trial.score:.4f}; retrained {args.retrain_epochs} epochs: "
        f"val_accuracy {best.score:.4f}, test accuracy {test_acc:.4f}; "
        f"total wall {time.perf_counter() - wall:.1f} s",
        flush=True,
    )
    print(
        f"  fits: {len(fits)}, mean params {fits[:, 0].mean():.0f}, "
        f"{fits[:, 1].sum():.0f} epochs, fit CPU {fits[:, 3].sum():.1f} s "
        f"(wall {fits[:, 2].sum():.1f} s), CPU per epoch "
        f"{fits[:, 3].sum() / fits[:, 1].sum():.2f} s"
    )
    print(f"  best architecture: {best_trial.hyperparameters.values}")
    trials = []
    for trial_id in sorted(tuner.oracle.trials):
        trial = tuner.oracle.trials[trial_id]
        parents = tuner.oracle.trial_parents(trial_id)
        note = f"<{parents[0]}" if parents else "rnd"
        if estimator is not None and trial_id in estimator.reports:
            note += f" {estimator.reports[trial_id]['fraction']:.2f}"
        score = "-" if trial.score is None else f"{trial.score:.3f}"
        trials.append(f"{trial_id}:{score}({note})")
    print("  trials (id:score(parent inherited-fraction)): " + " ".join(trials))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--child-epochs", type=int, default=2)
    parser.add_argument("--retrain-epochs", type=int, default=15)
    parser.add_argument("--population", type=int, default=8)
    parser.add_argument("--space", choices=("chain", "cell"), default="chain")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--modes",
        default="full,inheritance",
        help="comma-separated among full, inheritance, morphisms",
    )
    args = parser.parse_args()
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        # Same seed, same random trials in every mode.
        tf.config.experimental.enable_op_determinism()

    x_train, x_test, y_train, y_test = digits_train_test()
    x_train, x_val, y_train, y_val = train_test_split(
        x_train, y_train, test_size=0.2, random_state=0, stratify=y_train
    )
    data = (x_train, y_train, x_val, y_val, x_test, y_test)
    print(
        f"load average at start: {os.getloadavg()}; "
        f"train/val/test {len(x_train)}/{len(x_val)}/{len(x_test)}",
        flush=True,
    )
    with tempfile.TemporaryDirectory() as directory:
        for mode in args.modes.split(","):
            _run(args, mode, data, directory)
            print(f"  load average: {os.getloadavg()}", flush=True)


if __name__ == "__main__":
    main()
