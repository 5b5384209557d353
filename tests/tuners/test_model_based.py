"""ArchitectureBayesianOptimization, Bananas and LocalSearch oracles.

Crash-resume (SIGKILL) and distributed runs of BO and local search are in
`test_resume_distributed.py` (through `_fake_search.py`); Bananas shares
BO's oracle machinery (`_model_based.SurrogateOracle`) and is checked here
with an in-process reload.
"""

import functools
import json

import keras_tuner
import numpy as np
import pytest
from _oracle_testing import (
    OBJ,
    STATUS,
    choice_space,
    conditional_space,
    drive,
    make_oracle,
    mixed_score,
    mixed_space,
    small_space,
    tiny_digits_search,
)

from keras_nas.spaces import NasBench201SearchSpace
from keras_nas.tuners import _model_based
from keras_nas.tuners.bananas import Bananas, BananasOracle
from keras_nas.tuners.bayesian import (
    ArchitectureBayesianOptimization,
    ArchitectureBayesianOptimizationOracle,
    expected_improvement,
)
from keras_nas.tuners.local_search import LocalSearch, LocalSearchOracle

FAST = {"num_initial_trials": 5, "num_random_candidates": 5}
ORACLES = {
    "bo": functools.partial(ArchitectureBayesianOptimizationOracle, **FAST),
    "thompson": functools.partial(
        ArchitectureBayesianOptimizationOracle, batch="thompson", **FAST
    ),
    "bananas": functools.partial(BananasOracle, num_networks=2, **FAST),
    "bo_regions": functools.partial(
        ArchitectureBayesianOptimizationOracle, num_regions=2, **FAST
    ),
    "local": functools.partial(LocalSearchOracle, num_initial_trials=5),
    "local_unvisited": functools.partial(
        LocalSearchOracle, num_initial_trials=5, restart="best_unvisited"
    ),
}


def ops_score(v):
    return sum("abcd".index(v[k]) for k in v if k.startswith("op"))


def make(name, tmp_path, project="p", **kwargs):
    kwargs.setdefault("max_trials", 100)
    kwargs.setdefault("space", choice_space(5))
    return make_oracle(ORACLES[name], tmp_path, project, **kwargs)


@pytest.mark.parametrize("name", [n for n in ORACLES if n != "bo_regions"])
def test_determinism_no_duplicates_and_progress(name, tmp_path):
    a = drive(make(name, tmp_path, "a", seed=0), ops_score, 18)
    b = drive(make(name, tmp_path, "b", seed=0), ops_score, 18)
    c = drive(make(name, tmp_path, "c", seed=5), ops_score, 18)
    assert a == b  # seed 0 is a seed
    assert a != c
    keys = [json.dumps(v, sort_keys=True) for v in a]
    assert len(set(keys)) == len(keys) == 18
    # The model-based / local phase improves on the random start.
    assert max(map(ops_score, a[5:])) > max(map(ops_score, a[:5]))


@pytest.mark.parametrize(
    "name", ["bo", "bo_regions", "bananas", "local", "local_unvisited"]
)
def test_reload_continues_identically(name, tmp_path):
    first = make(name, tmp_path, "p", seed=11)
    drive(first, ops_score, 12)
    second = make(name, tmp_path, "p", seed=999)
    second.reload()
    json.dumps(second.get_state())  # the whole state is JSON
    assert drive(first, ops_score, 8) == drive(second, ops_score, 8)


@pytest.mark.parametrize("name", ["bo", "bananas", "local"])
def test_conditional_and_mixed_spaces(name, tmp_path):
    space = conditional_space()
    oracle = make(name, tmp_path, space=space, seed=1)
    seen = drive(oracle, lambda v: len(v) + v["dropout"], 14)
    for v in seen:
        assert ("layers" in v) == (v["model"] == "mlp")
        assert ("kernel" in v) == (v["model"] == "cnn")
    keys = [json.dumps(v, sort_keys=True) for v in seen]
    assert len(keys) == len(set(keys))
    mixed = make(name, tmp_path, "m", space=mixed_space(), seed=1)
    assert len(drive(mixed, mixed_score, 10)) == 10


@pytest.mark.parametrize("name", ["bo", "local"])
def test_small_space_is_exhausted_then_stops(name, tmp_path):
    oracle = make(name, tmp_path, space=small_space(), seed=2)
    seen = drive(oracle, lambda v: v["x"] + v["z"], 30)
    keys = {json.dumps(v, sort_keys=True) for v in seen}
    assert len(keys) == len(seen) == 18


@pytest.mark.parametrize(
    "name", ["bo", "thompson", "bo_regions", "bananas", "local"]
)
def test_several_workers_never_idle_and_differ(name, tmp_path):
    oracle = make(name, tmp_path, seed=1)
    drive(oracle, ops_score, 6)
    running = [oracle.create_trial(f"w{i}") for i in range(4)]
    assert all(t.status == STATUS.RUNNING for t in running)
    keys = {json.dumps(t.hyperparameters.values) for t in running}
    assert len(keys) == 4


def test_regions_take_turns_each_from_its_own_random_start(tmp_path):
    oracle = make("bo_regions", tmp_path, seed=4)
    seen = drive(oracle, ops_score, 12)
    assert len({json.dumps(v, sort_keys=True) for v in seen}) == 12
    lineage = [oracle._lineage[t] for t in oracle.start_order]
    assert [o["region"] for o in lineage] == [0, 1] * 6
    # ceil(5 / 2) = 3 random trials per region, then its own GP.
    origins = [o["origin"] for o in lineage]
    assert origins[:6] == ["random"] * 6
    assert "random" not in origins[6:]


def test_failed_and_nan_trials_are_skipped(tmp_path):
    def flaky(v):
        if v["op0"] == "a":
            raise RuntimeError("boom")
        return float("nan") if v["op1"] == "a" else ops_score(v)

    for name in ("bo", "local"):
        oracle = make(
            name, tmp_path, name, seed=1, max_consecutive_failed_trials=50
        )
        assert len(drive(oracle, flaky, 20)) == 20


def test_local_search_walks_the_neighbourhood(tmp_path):
    oracle = make("local", tmp_path, seed=3)
    drive(oracle, ops_score, 40)
    neighbours = 0
    for trial_id, origin in oracle._lineage.items():
        if origin["origin"] != "neighbour":
            continue
        child = oracle.trials[trial_id].hyperparameters.values
        parent = oracle.trials[origin["parents"][0]].hyperparameters.values
        assert sum(child[k] != parent[k] for k in child) == 1
        neighbours += 1
    assert neighbours >= 30
    # 5 random starts, then two full neighbourhoods (15 each): the centre
    # moved twice, each time up by at least one.
    scores = [oracle.trials[t].score for t in oracle.start_order]
    assert max(scores) >= max(scores[:5]) + 2


def test_local_search_restart_from_best_unvisited(tmp_path):
    # A flat score: every centre is a local optimum after its neighbourhood.
    def flat(v):
        return 1.0

    origins = {}
    for name in ("local", "local_unvisited"):
        oracle = make(name, tmp_path, name, seed=3)
        drive(oracle, flat, 40)
        origins[name] = [
            oracle._lineage[t]["origin"] for t in oracle.start_order
        ]
        centres = oracle.get_state()["centres"]
    # A random restart draws a new start; the variant walks on from the
    # trials it already has (a new centre per local optimum).
    assert "start" in origins["local"][5:]
    assert set(origins["local_unvisited"][5:]) == {"neighbour"}
    assert len(centres) == len(set(centres)) >= 3


def test_neighbourhood_of_nb201_cell():
    hp = keras_tuner.HyperParameters()
    NasBench201SearchSpace().declare_hyperparameters(hp)
    values = {h.name: "none" for h in hp.space}
    rng = np.random.default_rng(0)
    neighbours = _model_based.one_step_neighbours(hp, values, rng)
    assert len(neighbours) == 6 * 4


def test_default_encoding_per_space(tmp_path):
    hp = keras_tuner.HyperParameters()
    NasBench201SearchSpace().declare_hyperparameters(hp)
    for name, encoding in (("bo", "reduced_path"), ("bananas", "path")):
        cell = make(name, tmp_path, f"{name}_cell", space=hp)
        assert cell._get_encoder().encoding == encoding
        other = make(name, tmp_path, f"{name}_ops")
        assert other._get_encoder().encoding == "onehot"
    explicit = make("bo", tmp_path, "explicit", space=hp, encoding="onehot")
    assert explicit._get_encoder().encoding == "onehot"
    # A search saved before the default was part of the state resumes with
    # the default it started with (BO: one-hot; BANANAS: path, unchanged).
    for name, encoding in (("bo", "onehot"), ("bananas", "path")):
        saved = make(name, tmp_path, f"{name}_saved", space=hp)
        state = saved.get_state()
        assert state["cell_encoding"] == saved.cell_encoding
        del state["cell_encoding"]
        old = make(name, tmp_path, f"{name}_old", space=hp)
        old.set_state(state)
        assert old._get_encoder().encoding == encoding


def test_normal_scores_keep_the_order():
    z = _model_based.normal_scores(np.array([94.0, 10.0, 93.0, 94.0]))
    assert z[1] < z[2] < z[0] == z[3]
    assert z[1] == pytest.approx(-1.15035, abs=1e-4)  # ndtri(0.5 / 4)


def test_expected_improvement():
    ei = expected_improvement(
        np.array([0.0, 1.0, 1.0]), np.array([1.0, 1.0, 0.0]), best=1.0
    )
    assert ei[1] > ei[0] > 0 and ei[2] == pytest.approx(0.0)


def test_invalid_arguments():
    with pytest.raises(ValueError, match="batch"):
        ArchitectureBayesianOptimizationOracle(batch="kriging")
    with pytest.raises(ValueError, match="num_regions"):
        ArchitectureBayesianOptimizationOracle(num_regions=0)
    with pytest.raises(ValueError, match="encoding"):
        BananasOracle(encoding="graph")
    with pytest.raises(ValueError, match="encoding='path'"):
        BananasOracle(encoding="path", hyperparameters=choice_space())
    with pytest.raises(ValueError, match="num_initial_trials"):
        LocalSearchOracle(num_initial_trials=0)
    with pytest.raises(ValueError, match="restart='best'"):
        LocalSearchOracle(restart="best")
    with pytest.raises(ValueError, match="score_transform"):
        BananasOracle(score_transform="log")
    with pytest.raises(ValueError, match="num_networks"):
        BananasOracle(num_networks=0)


class _TableEstimator:
    def estimate(self, tuner, trial, *args, **kwargs):
        return {"score": ops_score(trial.hyperparameters.values)}


@pytest.mark.parametrize(
    "cls", [ArchitectureBayesianOptimization, Bananas, LocalSearch]
)
def test_tuner_with_estimator(cls, tmp_path):
    tuner = cls(
        objective=OBJ,
        hyperparameters=choice_space(),
        max_trials=8,
        num_initial_trials=4,
        seed=1,
        estimator=_TableEstimator(),
        directory=str(tmp_path),
        project_name="est",
    )
    tuner.search(verbose=0)
    assert len(tuner.oracle.trials) == 8


def test_tiny_digits_search(tmp_path, digits):
    tuner = tiny_digits_search(Bananas, tmp_path, digits, num_initial_trials=2)
    assert len(tuner.oracle.trials) == 3
    assert tuner.get_best_models(1)[0].output_shape == (None, 10)
