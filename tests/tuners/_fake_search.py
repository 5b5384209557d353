"""Fake-training searches for `test_resume_distributed.py`.

Imported by the test, and run as a script in subprocesses:

    python _fake_search.py ALGO DIRECTORY PROJECT MODE [BLOCK_AT]

MODE is `search` (plain search; with BLOCK_AT the trial of that id blocks
forever after logging its start, so the test can SIGKILL the process
mid-search), `chief` or `worker` (keras-tuner's distributed mode: the
`KERASTUNER_*` environment variables are set by the test). A worker waits
for the file `DIRECTORY/go` so that both workers start together.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time

import keras_tuner

ALGOS = {
    "reinforce": ("keras_nas.tuners.reinforce", "Reinforce"),
    "evolution": ("keras_nas.tuners.evolution", "AgingEvolution"),
    "mcts": ("keras_nas.tuners.mcts", "MonteCarloTreeSearch"),
    "bo": ("keras_nas.tuners.bayesian", "ArchitectureBayesianOptimization"),
    "local": ("keras_nas.tuners.local_search", "LocalSearch"),
}
# Arguments so that the algorithm's own phase starts within MAX_TRIALS.
KWARGS = {
    "bo": {"num_initial_trials": 3},
    "local": {"num_initial_trials": 3},
}
MAX_TRIALS = 10
BLOCK_AT = "05"  # trial ids are "00" .. "09"
DELAY = 0.05


def space() -> keras_tuner.HyperParameters:
    hp = keras_tuner.HyperParameters()
    hp.Choice("a", [0, 1, 2, 3])
    hp.Choice("b", ["x", "y", "z"])
    with hp.conditional_scope("b", ["x"]):
        hp.Int("c", 1, 4)
    hp.Boolean("d")
    return hp


def score(values: dict) -> float:
    return (
        values["a"]
        + 0.5 * (values["b"] == "x")
        + 0.1 * values.get("c", 0)
        + 0.3 * values["d"]
    )


def _log(path: str, **record) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()


def make_tuner(algo, directory, project, overwrite=False, seed=1):
    module, name = ALGOS[algo]
    cls = getattr(importlib.import_module(module), name)

    class FakeTrainingTuner(cls):
        def run_trial(self, trial, log=None, block_at=None, delay=DELAY, **_):
            trial_id = trial.trial_id
            values = dict(trial.hyperparameters.values)
            _log(log, event="start", id=trial_id, tuner=self.tuner_id)
            if trial_id == block_at:
                while True:  # Killed here by the test.
                    time.sleep(1)
            time.sleep(delay)
            _log(log, event="end", id=trial_id, tuner=self.tuner_id)
            return {"score": score(values)}

    return FakeTrainingTuner(
        objective=keras_tuner.Objective("score", "max"),
        max_trials=MAX_TRIALS,
        seed=seed,
        hyperparameters=space(),
        directory=directory,
        project_name=project,
        overwrite=overwrite,
        **KWARGS.get(algo, {}),
    )


def main(argv):
    algo, directory, project, mode = argv[:4]
    block_at = argv[4] if len(argv) > 4 else None
    tuner = make_tuner(algo, directory, project)
    log = os.path.join(directory, f"{project}.log")
    if mode == "worker":
        with open(os.path.join(directory, f"ready_{tuner.tuner_id}"), "w"):
            pass
        while not os.path.exists(os.path.join(directory, "go")):
            time.sleep(0.05)
        tuner.search(log=log, delay=0.3, verbose=0)
    else:
        tuner.search(log=log, block_at=block_at, verbose=0)


if __name__ == "__main__":
    main(sys.argv[1:])
