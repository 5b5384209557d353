"""The same seed gives the same trials, pinned against a recorded run.

`seeded_trials.json` holds, for each keras-nas search oracle, the first
trials it proposed (with a fixed seed, space and score) when it was
recorded. Any change that alters a strategy's random stream or its
decisions (a refactor must not) fails here. Each sequence is checked twice:
in one run, and with a save + reload into a new oracle half-way (the RNG
state and the algorithm's state resume exactly).

To record the file again after an intended change of behaviour, run
`KERAS_NAS_RECORD_SEEDED_TRIALS=1 python -m pytest
tests/tuners/test_seeded_sequences.py` and review the diff.
"""

import functools
import json
import os
import pathlib

import pytest
from _oracle_testing import (
    conditional_space,
    drive,
    make_oracle,
    mixed_score,
    mixed_space,
)

from keras_nas.tuners.bananas import BananasOracle
from keras_nas.tuners.bayesian import ArchitectureBayesianOptimizationOracle
from keras_nas.tuners.evolution import AgingEvolutionOracle
from keras_nas.tuners.local_search import LocalSearchOracle
from keras_nas.tuners.mcts import MonteCarloTreeSearchOracle
from keras_nas.tuners.reinforce import ReinforceOracle

RECORDED = pathlib.Path(__file__).with_name("seeded_trials.json")
NUM_TRIALS = 14
RESUME_AT = 6
FAST = {"num_initial_trials": 4, "num_random_candidates": 4}

ORACLES = {
    "evolution": functools.partial(
        AgingEvolutionOracle, population_size=4, crossover_rate=0.3
    ),
    "reinforce": ReinforceOracle,
    "mcts": MonteCarloTreeSearchOracle,
    "mcts_random": functools.partial(
        MonteCarloTreeSearchOracle, rollout="random"
    ),
    "bo": functools.partial(ArchitectureBayesianOptimizationOracle, **FAST),
    "bo_thompson": functools.partial(
        ArchitectureBayesianOptimizationOracle, batch="thompson", **FAST
    ),
    "bananas": functools.partial(BananasOracle, num_networks=2, **FAST),
    "local": functools.partial(LocalSearchOracle, num_initial_trials=4),
}
SPACES = {"mixed": mixed_space, "conditional": conditional_space}


def score(values):
    """`mixed_score` on the mixed space (some trials fail); a fixed
    table on the conditional one."""
    if "op0" in values:
        if values["op0"] == "a" and values["op1"] == "a":
            raise RuntimeError("a failed trial")
        return mixed_score(values)
    table = {"linear": 0.0, "mlp": 1.0, "cnn": 2.0}
    return (
        table[values["model"]]
        + values.get("layers", 0) / 3
        + values.get("kernel", 0) / 5
        + values["dropout"]
    )


def run(tmp_path, name, space, resume_at=None):
    def new(project):
        return make_oracle(
            ORACLES[name],
            tmp_path,
            project,
            space=SPACES[space](),
            seed=3,
            max_trials=100,
        )

    oracle = new("p")
    if resume_at is None:
        return drive(oracle, score, NUM_TRIALS)
    first = drive(oracle, score, resume_at)
    again = new("p")
    again.reload()
    return first + drive(again, score, NUM_TRIALS - resume_at)


def _recorded():
    return json.loads(RECORDED.read_text()) if RECORDED.exists() else {}


@pytest.mark.parametrize("space", SPACES)
@pytest.mark.parametrize("name", ORACLES)
def test_same_seed_gives_the_recorded_trials(tmp_path, name, space):
    key = f"{name}/{space}"
    trials = run(tmp_path, name, space)
    if os.environ.get("KERAS_NAS_RECORD_SEEDED_TRIALS"):
        recorded = _recorded()
        recorded[key] = trials
        RECORDED.write_text(json.dumps(recorded, indent=1, sort_keys=True))
    assert len(trials) == NUM_TRIALS
    assert trials == _recorded()[key]
    # Saved and reloaded half-way: the same sequence.
    assert run(tmp_path / "resumed", name, space, RESUME_AT) == trials
