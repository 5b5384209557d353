"""Random search on digits (NAS-Bench-201 space) with and without early
stopping of trials by their learning curves.

Runs keras-tuner's `RandomSearch` (same seed, so the same architectures in
the same order in every mode) for `--trials` trials of `--epochs` epochs on
sklearn digits (1,078 training / 359 validation images, 360 held out and
unused; `--learning-rates` searches Adam's learning rate as well), each
trial seeded from its hyperparameters so that its learning curve is the
same in every mode. Modes:

- `none`: every trial trains all epochs (keras-tuner's default);
- `median`: `MedianStopping(tuner, min_epochs=2, min_trials=3)` (Vizier);
- `curve`: `LearningCurveStopping(tuner, threshold=0.05, min_epochs=4,
  value_range=(0, 1))` (Domhan et al., simplified).

For each mode it prints the epochs trained, search wall and CPU time, the
best validation accuracy and, against the `none` run (same process or
`--reference` JSON files), whether the full run's best trial was stopped and the
full-run score of the trial each mode picked.

Usage:
    python benchmarks/early_stopping_search.py --modes none median curve \
        --trials 12 --epochs 10 --json /tmp/es.json
    # or modes in separate processes, compared afterwards:
    python benchmarks/early_stopping_search.py --modes curve --json b.json
    python benchmarks/early_stopping_search.py --modes \
        --reference a.json b.json
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import warnings
import zlib

import keras
import keras_tuner
from _common import digits_train_test
from sklearn.model_selection import train_test_split

from keras_nas.estimation import LearningCurveStopping, MedianStopping
from keras_nas.spaces import NasBench201SearchSpace


class SeededSpace(keras_tuner.HyperModel):
    """The space, with weights and shuffling seeded by the architecture,
    and optionally Adam's learning rate searched too."""

    def __init__(self, space, seed, learning_rates=()):
        super().__init__()
        self.space, self.seed = space, seed
        self.learning_rates = list(learning_rates)

    def declare_hyperparameters(self, hp):
        self.space.declare_hyperparameters(hp)
        if self.learning_rates:
            hp.Choice("learning_rate", self.learning_rates)

    def build(self, hp):
        key = zlib.crc32(json.dumps(sorted(hp.values.items())).encode())
        keras.utils.set_random_seed((self.seed + key) % 2**31)
        model = self.space.build(hp)
        if self.learning_rates:
            rate = hp.Choice("learning_rate", self.learning_rates)
            model.compile(
                optimizer=keras.optimizers.Adam(rate),
                loss="sparse_categorical_crossentropy",
                metrics=["accuracy"],
            )
        return model


class CountEpochs(keras.callbacks.Callback):
    total = 0

    def on_epoch_end(self, epoch, logs=None):
        CountEpochs.total += 1


def _arch(trial) -> str:
    return json.dumps(sorted(trial.hyperparameters.values.items()))


def run_mode(mode, data, args) -> dict:
    (x, y), val = data
    space = NasBench201SearchSpace(
        input_shape=(8, 8, 1), num_classes=10, filters=8, cells_per_stage=1
    )
    with tempfile.TemporaryDirectory() as directory:
        tuner = keras_tuner.RandomSearch(
            SeededSpace(space, args.seed, args.learning_rates),
            objective="val_accuracy",
            max_trials=args.trials,
            seed=args.seed,
            directory=directory,
        )
        callbacks = [CountEpochs()]
        stopping = None
        if mode == "median":
            stopping = MedianStopping(tuner, min_epochs=2, min_trials=3)
        elif mode == "curve":
            stopping = LearningCurveStopping(
                tuner, threshold=0.05, min_epochs=4, value_range=(0.0, 1.0)
            )
        if stopping is not None:
            callbacks.append(stopping)
        CountEpochs.total = 0
        load = os.getloadavg()
        wall, cpu = time.perf_counter(), time.process_time()
        tuner.search(
            x,
            y,
            validation_data=val,
            epochs=args.epochs,
            batch_size=32,
            verbose=0,
            callbacks=callbacks,
        )
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        trials = sorted(
            tuner.oracle.trials.values(), key=lambda t: int(t.trial_id)
        )
        stopped = stopping.stopped_trials if stopping else {}
        best = tuner.oracle.get_best_trials(1)[0]
        return {
            "mode": mode,
            "epochs_trained": CountEpochs.total,
            "wall_s": round(wall, 1),
            "cpu_s": round(cpu, 1),
            "load_before": [round(v, 2) for v in load],
            "load_after": [round(v, 2) for v in os.getloadavg()],
            "best_arch": _arch(best),
            "best_score": float(best.score),
            "trials": [
                {
                    "id": t.trial_id,
                    "arch": _arch(t),
                    "status": t.status,
                    "score": None if t.score is None else float(t.score),
                    "epochs": stopped.get(t.trial_id, args.epochs),
                }
                for t in trials
            ],
        }


def compare(result: dict, full: dict) -> dict:
    """The `none` run's view of an early-stopped run."""
    full_scores = {t["arch"]: t["score"] for t in full["trials"]}
    full_epochs = max(t["epochs"] for t in full["trials"])
    epochs = {t["arch"]: t["epochs"] for t in result["trials"]}
    stopped = [a for a, e in epochs.items() if e < full_epochs]
    best_epochs = epochs.get(full["best_arch"])
    return {
        "same_architectures": set(epochs) == set(full_scores),
        "full_best_score": full["best_score"],
        "full_best_stopped": None
        if best_epochs is None
        else best_epochs < full_epochs,
        "picked_full_score": full_scores.get(result["best_arch"]),
        "stopped": len(stopped),
        "stopped_full_scores": sorted(
            round(full_scores[a], 4) for a in stopped if a in full_scores
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modes", nargs="*", default=["none", "median"])
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=10)
    # keras-tuner treats seed=0 as "no seed": use a positive one.
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", default=None)
    parser.add_argument(
        "--learning-rates",
        type=float,
        nargs="*",
        default=[],
        help="also search Adam's learning rate among these",
    )
    parser.add_argument(
        "--reference", nargs="*", default=[], help="JSON files of other runs"
    )
    args = parser.parse_args()
    warnings.filterwarnings("ignore", message="Gradients do not exist")
    bad = set(args.modes) - {"none", "median", "curve"}
    if bad:
        raise ValueError(
            "Expected `--modes` among none, median, curve. "
            f"Received: modes={args.modes}"
        )

    x_rest, _, y_rest, _ = digits_train_test()
    x_train, x_val, y_train, y_val = train_test_split(
        x_rest, y_rest, test_size=0.25, random_state=0, stratify=y_rest
    )
    data = (x_train, y_train), (x_val, y_val)

    results = {}
    for path in args.reference:
        with open(path) as f:
            results.update(json.load(f))
    for mode in args.modes:
        results[mode] = run_mode(mode, data, args)
        r = results[mode]
        print(
            f"{mode}: epochs={r['epochs_trained']} wall={r['wall_s']}s "
            f"cpu={r['cpu_s']}s best_val_accuracy={r['best_score']:.4f} "
            f"load={r['load_before']}->{r['load_after']}",
            flush=True,
        )
    for mode, r in results.items():
        if mode != "none" and "none" in results:
            r["vs_none"] = compare(r, results["none"])
            print(f"{mode} vs none: {r['vs_none']}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
