"""A distributed fake-training search for `test_lost_worker.py`.

Run as a script in subprocesses (keras-tuner's `KERASTUNER_*` environment
variables are set by the test):

    python _lost_worker_search.py ROLE DIRECTORY

The tuner is `AgingEvolution` unless `KERASNAS_LOST_WORKER_TUNER` names
another keras-nas multi-trial tuner (`TUNERS`; for a manual run of
`test_lost_worker.py` against each of them). ROLE is `chief`, `worker` or
`victim`. A `worker` waits for the file
`DIRECTORY/go` before it asks for trials; a `victim` asks at once, writes
`DIRECTORY/victim_<trial id>` when its first trial starts and then blocks in
that trial until the test kills it.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time

import keras_tuner

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import _fake_search  # noqa: E402

MAX_TRIALS = 12
DELAY = 0.2


#: `KERASNAS_LOST_WORKER_TUNER` -> (module, tuner, its own arguments);
#: imported by name, so the default run loads no predictor libraries.
TUNERS = {
    "evolution": ("evolution", "AgingEvolution", {"population_size": 4}),
    "mcts": ("mcts", "MonteCarloTreeSearch", {}),
    "reinforce": ("reinforce", "Reinforce", {}),
    "bananas": ("bananas", "Bananas", {"num_initial_trials": 4}),
    "bo": (
        "bayesian",
        "ArchitectureBayesianOptimization",
        {"num_initial_trials": 4},
    ),
    "local": ("local_search", "LocalSearch", {}),
}


def _tuner_class():
    name = os.environ.get("KERASNAS_LOST_WORKER_TUNER", "evolution")
    module, attr, arguments = TUNERS[name]
    module = importlib.import_module(f"keras_nas.tuners.{module}")
    return getattr(module, attr), arguments


class FakeTraining:
    def run_trial(self, trial, directory=None, role=None, **_):
        record = {"id": trial.trial_id, "tuner": self.tuner_id}
        log = os.path.join(directory, "search.log")
        _fake_search._log(log, event="start", **record)
        if role == "victim":
            with open(os.path.join(directory, f"victim_{trial.trial_id}"), "w"):
                pass
            while True:  # SIGKILLed here by the test.
                time.sleep(1)
        time.sleep(DELAY)
        _fake_search._log(log, event="end", **record)
        return {"score": _fake_search.score(trial.hyperparameters.values)}


def main(argv: list[str]) -> None:
    role, directory = argv
    tuner_class, arguments = _tuner_class()
    cls = type("FakeTrainingTuner", (FakeTraining, tuner_class), {})
    tuner = cls(
        objective=keras_tuner.Objective("score", "max"),
        max_trials=MAX_TRIALS,
        **arguments,
        seed=3,
        hyperparameters=_fake_search.space(),
        directory=directory,
        project_name="search",
    )
    if role == "worker":
        while not os.path.exists(os.path.join(directory, "go")):
            time.sleep(0.05)
    tuner.search(directory=directory, role=role, verbose=0)
    if role == "chief":
        print(json.dumps({"chief": "done"}))


if __name__ == "__main__":
    main(sys.argv[1:])
