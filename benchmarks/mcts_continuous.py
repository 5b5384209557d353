"""MCTS on the canonical keras-tuner space: is the learning rate explored?

The space of keras-tuner's getting-started script (units Int 32..512 step
32, activation, dropout Boolean, lr Float 1e-4..1e-2 log) with a synthetic
validation accuracy peaked at lr = 10**-2.5 and large units. For each seed:
distinct learning rates among the first 6 trials, and the best score after
10 and 30 trials (mean over seeds). Runs the oracle only (no training).

    PYTHONPATH=. python benchmarks/mcts_continuous.py [SEEDS]

Run it on two checkouts to compare versions of the oracle.
"""

from __future__ import annotations

import math
import sys
import tempfile

import keras_tuner
import numpy as np
from keras_tuner.engine import trial as trial_module

from keras_nas.tuners.mcts import MonteCarloTreeSearchOracle


def space() -> keras_tuner.HyperParameters:
    hp = keras_tuner.HyperParameters()
    hp.Int("units", min_value=32, max_value=512, step=32)
    hp.Choice("activation", ["relu", "tanh"])
    hp.Boolean("dropout")
    hp.Float("lr", min_value=1e-4, max_value=1e-2, sampling="log")
    return hp


def accuracy(v: dict) -> float:
    return (
        0.95
        - 0.15 * (math.log10(v["lr"]) + 2.5) ** 2
        - 0.1 * (1 - v["units"] / 512) ** 2
        - 0.01 * (v["activation"] == "tanh")
        - 0.01 * v["dropout"]
    )


def run(seed: int, n: int) -> list[dict]:
    with tempfile.TemporaryDirectory() as directory:
        oracle = MonteCarloTreeSearchOracle(
            objective=keras_tuner.Objective("score", "max"),
            max_trials=n,
            seed=seed,
            hyperparameters=space(),
        )
        oracle._set_project_dir(directory, "p")
        oracle.verbose = 0
        seen = []
        for _ in range(n):
            trial = oracle.create_trial("tuner0")
            if trial.status != trial_module.TrialStatus.RUNNING:
                break
            values = dict(trial.hyperparameters.values)
            seen.append(values)
            oracle.update_trial(trial.trial_id, {"score": accuracy(values)})
            trial.status = trial_module.TrialStatus.COMPLETED
            oracle.end_trial(trial)
    return seen


def main(seeds: int = 20) -> None:
    distinct, best10, best30 = [], [], []
    for seed in range(1, seeds + 1):
        seen = run(seed, 30)
        distinct.append(len({v["lr"] for v in seen[:6]}))
        scores = [accuracy(v) for v in seen]
        best10.append(max(scores[:10]))
        best30.append(max(scores))
    print(f"seeds 1..{seeds}")
    print(f"distinct lr in the first 6 trials: mean {np.mean(distinct):.2f}")
    print(f"  seeds with one lr in all 6: {sum(d == 1 for d in distinct)}")
    print(f"best accuracy after 10 trials: mean {np.mean(best10):.4f}")
    print(f"best accuracy after 30 trials: mean {np.mean(best30):.4f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
