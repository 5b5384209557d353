"""BANANAS' warm-started ensemble: saved with the oracle, restored exactly.

Each decision after the first fit continues from the previous decision's
networks (`refit_steps`); the networks live in `bananas_ensemble_<n>.npz`
next to `oracle.json`, so a reloaded oracle has the very same weights.
"""

import json
import os

import numpy as np
import pytest
from _oracle_testing import STATUS, choice_space, drive, make_oracle

from keras_nas.predictors.models import MLPEnsemblePredictor
from keras_nas.tuners.bananas import BananasOracle

FAST = {"num_initial_trials": 4, "num_random_candidates": 4}


def ops_score(v):
    return sum("abcd".index(v[k]) for k in v if k.startswith("op"))


def make(tmp_path, project="p", **kwargs):
    kwargs.setdefault("seed", 7)
    return make_oracle(
        BananasOracle,
        tmp_path,
        project,
        space=choice_space(5),
        num_networks=2,
        max_trials=100,
        **FAST,
        **kwargs,
    )


def ensemble_files(tmp_path, project="p"):
    folder = os.path.join(tmp_path, project)
    return sorted(f for f in os.listdir(folder) if f.endswith(".npz"))


def test_weights_round_trip_through_save_and_reload(tmp_path):
    first = make(tmp_path)
    drive(first, ops_score, 9)  # 4 random, then 5 fits (1 cold, 4 warm)
    state = json.loads(
        open(os.path.join(tmp_path, "p", "oracle.json")).read()
    )
    assert ensemble_files(tmp_path) == [state["ensemble_file"]]
    assert state["ensemble_fitted_on"] == 8
    # A file left by a crash between the weights and `oracle.json`.
    stray = os.path.join(tmp_path, "p", "bananas_ensemble_999.npz")
    open(stray, "wb").close()

    second = make(tmp_path, seed=123)
    second.reload()
    assert not os.path.exists(stray)
    assert second._fitted_on == first._fitted_on
    assert len(second._weights) == len(first._weights) == 6
    for a, b in zip(first._weights, second._weights, strict=True):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    assert drive(first, ops_score, 5) == drive(second, ops_score, 5)
    assert len(ensemble_files(tmp_path)) == 1  # the old files are removed


def test_no_new_result_reuses_the_ensemble_without_training(tmp_path):
    oracle = make(tmp_path)
    drive(oracle, ops_score, 6)
    trials = [oracle.create_trial("w0")]  # a warm refit on trial 6
    assert oracle._fitted_on == 6
    version, weights = oracle._weights_version, oracle._weights
    # More workers ask before anything completes: the same networks.
    trials += [oracle.create_trial(f"w{i}") for i in (1, 2)]
    assert all(t.status == STATUS.RUNNING for t in trials)
    assert oracle._weights_version == version
    assert oracle._weights is weights
    keys = {json.dumps(t.hyperparameters.values) for t in trials}
    assert len(keys) == 3


def test_cold_refits_keep_no_file(tmp_path):
    oracle = make(tmp_path, refit_steps=None)
    drive(oracle, ops_score, 7)
    assert ensemble_files(tmp_path) == []
    warm = make(tmp_path, "warm")
    assert drive(warm, ops_score, 7)[:5] == drive(
        make(tmp_path, "cold2", refit_steps=None), ops_score, 7
    )[:5]  # the same random start and first (cold) fit
    with pytest.raises(ValueError, match="refit_steps"):
        make(tmp_path, "bad", refit_steps=0)


def test_predictor_warm_start_arguments():
    rng = np.random.default_rng(0)
    x, y = rng.random((12, 6)), rng.random(12)
    cold = MLPEnsemblePredictor(seed=1, num_networks=2, steps=20).fit(x, y)
    same = MLPEnsemblePredictor(
        seed=5, num_networks=2, steps=0, initial_weights=cold.weights
    ).fit(x, y)
    np.testing.assert_array_equal(same.predict(x)[0], cold.predict(x)[0])
    with pytest.raises(ValueError, match="initial_weights"):
        MLPEnsemblePredictor(
            num_networks=2, initial_weights=cold.weights
        ).fit(x[:, :5], y)
    with pytest.raises(ValueError, match="steps"):
        MLPEnsemblePredictor(steps=0)
    with pytest.raises(ValueError, match="fitted"):
        _ = MLPEnsemblePredictor().weights
