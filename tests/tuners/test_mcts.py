import functools
import json
import math

import keras_tuner
import pytest
from _oracle_testing import (
    STATUS,
    choice_space,
    conditional_space,
    drive,
    make_oracle,
    tiny_digits_search,
    tiny_digits_tuner,
)

from keras_nas.tuners.mcts import (
    MonteCarloTreeSearch,
    MonteCarloTreeSearchOracle,
)

make = functools.partial(
    make_oracle, MonteCarloTreeSearchOracle, max_trials=300
)


def choice_score(v):
    ops = [v[k] for k in sorted(v) if k.startswith("op")]
    return sum("abcd".index(op) * (i + 1) for i, op in enumerate(ops))


def mixed_score(v):
    return choice_score(v) - abs(math.log10(v["lr"]) + 2) + v["bn"]


def keys(seen):
    return [json.dumps(v, sort_keys=True) for v in seen]


def test_same_seed_same_trials(tmp_path):
    a = drive(make(tmp_path, "a", seed=3), mixed_score, 30)
    b = drive(make(tmp_path, "b", seed=3), mixed_score, 30)
    c = drive(make(tmp_path, "c", seed=4), mixed_score, 30)
    assert a == b
    assert a != c


@pytest.mark.parametrize("rollout", ["best", "random"])
def test_exhausts_finite_space_without_duplicates(tmp_path, rollout):
    oracle = make(tmp_path, space=choice_space(3), seed=1, rollout=rollout)
    seen = drive(oracle, choice_score, 100)
    assert len(keys(seen)) == len(set(keys(seen))) == 64
    assert oracle._root.exhausted


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_finds_good_points_of_a_separable_space(tmp_path, seed):
    # 256 points; 4 score >= 28 (optimum 30). Uniform sampling finds one
    # within 60 trials with probability ~0.6.
    oracle = make(tmp_path, space=choice_space(4), seed=seed)
    seen = drive(oracle, choice_score, 60)
    assert max(choice_score(v) for v in seen) >= 28


def test_tree_statistics(tmp_path):
    oracle = make(tmp_path, space=choice_space(3), seed=5)
    drive(oracle, choice_score, 20)
    root = oracle._root
    assert root.n == 20
    assert sum(c.n for c in root.children.values()) == 20
    assert root.best == max(oracle.trials[t].score for t in oracle.end_order)


def test_progressive_widening_of_float(tmp_path):
    hp = keras_tuner.HyperParameters()
    hp.Float("x", 0.0, 1.0)
    hp.Choice("y", [0, 1, 2, 3, 4, 5])
    oracle = make(tmp_path, space=hp, seed=1, widening_exponent=0.5)
    drive(oracle, lambda v: v["y"] / 100 - (v["x"] - 0.3) ** 2, 40)
    # ceil(visits ** 0.5) children, plus one whenever all are closed.
    assert 2 <= len(oracle._root.children) <= math.ceil(40**0.5) + 1
    best = oracle.get_best_trials()[0].hyperparameters.values["x"]
    assert abs(best - 0.3) < 0.2


def test_conditional_space(tmp_path):
    oracle = make(tmp_path, space=conditional_space(), seed=1)
    seen = drive(oracle, lambda v: len(v) + v["dropout"], 40)
    for v in seen:
        assert ("layers" in v) == (v["model"] == "mlp")
        assert ("kernel" in v) == (v["model"] == "cnn")
    # linear: 2 points, mlp: 3*2*2 = 12, cnn: 2*2 = 4.
    assert len(set(keys(seen))) == len(seen) == 18
    # Tree levels follow the active decisions of each branch.
    mlp = oracle._root.children["mlp"]
    assert set(mlp.children) <= {1, 2, 3}


def test_reload_rebuilds_tree_and_continues_identically(tmp_path):
    first = make(tmp_path, "p", seed=11)
    drive(first, mixed_score, 25)
    second = make(tmp_path, "p", seed=999, exploration=3.0)
    second.reload()
    assert second.tree_to_json() == first.tree_to_json()
    assert second.exploration == first.exploration
    json.dumps(second.get_state())
    assert drive(first, mixed_score, 15) == drive(second, mixed_score, 15)


def test_failed_trials_are_tolerated(tmp_path):
    def flaky(v):
        if v["op0"] == "a":
            raise RuntimeError("boom")
        return mixed_score(v)

    oracle = make(tmp_path, seed=1, max_consecutive_failed_trials=50)
    seen = drive(oracle, flaky, 40)
    assert len(seen) == 40
    assert oracle._root.n_failed >= 1
    assert oracle._root.n + oracle._root.n_failed == 40


def test_parallel_workers_spread_out(tmp_path):
    oracle = make(tmp_path, space=choice_space(3), seed=1)
    running = [oracle.create_trial(f"w{i}") for i in range(4)]
    assert all(t.status == STATUS.RUNNING for t in running)
    assert len({t.hyperparameters.values["op0"] for t in running}) == 4
    for trial in running:
        oracle.update_trial(trial.trial_id, {"score": 1.0})
        trial.status = STATUS.COMPLETED
        oracle.end_trial(trial)
    assert oracle._root.pending == 0
    assert oracle._root.n == 4


def test_invalid_arguments():
    with pytest.raises(ValueError, match="rollout"):
        MonteCarloTreeSearchOracle(rollout="greedy")
    with pytest.raises(ValueError, match="max_weight"):
        MonteCarloTreeSearchOracle(max_weight=2.0)


def test_tiny_digits_search(tmp_path, digits):
    tuner = tiny_digits_search(MonteCarloTreeSearch, tmp_path, digits)
    assert len(tuner.oracle.trials) == 3
    assert tuner.oracle._root.n == 3
    again = tiny_digits_tuner(MonteCarloTreeSearch, tmp_path)
    assert again.oracle.tree_to_json() == tuner.oracle.tree_to_json()
    x, y = digits
    again.search(x, y, epochs=1, validation_split=0.3, verbose=0)
    assert len(again.oracle.trials) == 3
