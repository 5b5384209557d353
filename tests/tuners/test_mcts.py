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


@pytest.mark.usefixtures("eager_functions")  # 1 epoch: tracing costs more
def test_tiny_digits_search(tmp_path, digits):
    tuner = tiny_digits_search(MonteCarloTreeSearch, tmp_path, digits)
    assert len(tuner.oracle.trials) == 3
    assert tuner.oracle._root.n == 3
    again = tiny_digits_tuner(MonteCarloTreeSearch, tmp_path)
    assert again.oracle.tree_to_json() == tuner.oracle.tree_to_json()
    x, y = digits
    again.search(x, y, epochs=1, validation_split=0.3, verbose=0)
    assert len(again.oracle.trials) == 3


def _canonical_build_model(hp):
    """keras-tuner's getting-started hypermodel, as users write it."""
    import keras

    model = keras.Sequential()
    model.add(keras.layers.Flatten())
    model.add(
        keras.layers.Dense(
            units=hp.Int("units", min_value=32, max_value=512, step=32),
            activation=hp.Choice("activation", ["relu", "tanh"]),
        )
    )
    if hp.Boolean("dropout"):
        model.add(keras.layers.Dropout(rate=0.25))
    model.add(keras.layers.Dense(10, activation="softmax"))
    learning_rate = hp.Float(
        "lr", min_value=1e-4, max_value=1e-2, sampling="log"
    )
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


@pytest.mark.usefixtures("eager_functions")  # 1 epoch: tracing costs more
def test_canonical_script_explores_the_learning_rate(tmp_path, digits):
    # Seed 2 used the same learning rate in 6 of 6 trials when the "best"
    # rollout copied the best trial's exact value.
    tuner = MonteCarloTreeSearch(
        _canonical_build_model,
        objective="val_accuracy",
        max_trials=5,
        seed=2,
        directory=str(tmp_path),
        project_name="canonical",
    )
    x, y = digits
    tuner.search(x, y, epochs=1, validation_split=0.3, verbose=0)
    rates = [t.hyperparameters["lr"] for t in tuner.oracle.trials.values()]
    assert len(rates) == 5 and len(set(rates)) == 5
    assert all(1e-4 <= r <= 1e-2 for r in rates)
    assert max(rates) / min(rates) > 3  # not one corner of the range


def test_continuous_levels_are_bins_with_fresh_values(tmp_path):
    hp = keras_tuner.HyperParameters()
    hp.Float("lr", 1e-4, 1e-1, sampling="log")  # the root level
    hp.Int("width", 1, 1000)  # a large Int range: binned too
    hp.Choice("op", ["a", "b"])
    oracle = make(tmp_path, space=hp, seed=0, num_bins=4)
    seen = drive(oracle, lambda v: -abs(math.log10(v["lr"]) + 2), 30)
    assert len({v["lr"] for v in seen}) == 30
    assert len({v["width"] for v in seen}) > 20
    # Children of the root are bins of the log range; each holds the
    # trials whose rate falls in its quarter of the decades.
    root = oracle._root
    assert set(root.children) <= {0, 1, 2, 3} and len(root.children) >= 2
    for trial_id in oracle.end_order:
        rate = oracle.trials[trial_id].hyperparameters["lr"]
        (node,) = oracle._trial_nodes(trial_id)[1:2]
        index = min(int((math.log10(rate) + 4) / 3 * 4), 3)
        assert node is root.children[index]
    # The tree learnt the good region: the bin of 1e-2 is the most visited.
    visits = {k: c.n for k, c in root.children.items()}
    assert max(visits, key=visits.get) == 2
    with pytest.raises(ValueError, match="num_bins"):
        MonteCarloTreeSearchOracle(num_bins=1)
