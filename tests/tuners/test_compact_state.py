"""`oracle.json` without what the trial files hold (`compact_state`)."""

import json
import os
import sys

import keras_tuner
import pytest
from keras_tuner.engine import trial as trial_module

from keras_nas.tuners.mcts import MonteCarloTreeSearchOracle

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _fake_search  # noqa: E402


def _oracle(directory, compact):
    oracle = MonteCarloTreeSearchOracle(
        objective=keras_tuner.Objective("score", "max"),
        max_trials=10,
        seed=2,
        hyperparameters=_fake_search.space(),
    )
    oracle.compact_state = compact
    oracle._set_project_dir(directory, "p")
    return oracle


@pytest.mark.parametrize("compact", [True, False])
def test_reload_rebuilds_hashes(tmp_path, compact):
    oracle = _oracle(str(tmp_path), compact)
    for i in range(4):
        trial = oracle.create_trial(f"w{i}")
        if i < 3:  # The last one is still running.
            values = trial.hyperparameters.values
            oracle.update_trial(
                trial.trial_id, {"score": _fake_search.score(values)}
            )
            trial.status = trial_module.TrialStatus.COMPLETED
            oracle.end_trial(trial)
    with open(os.path.join(str(tmp_path), "p", "oracle.json")) as f:
        saved = json.load(f)
    assert ("tried_so_far" in saved) == (not compact)
    assert len(saved["run_times"]) == (0 if compact else 3)
    # Start times of ended trials (keras-tuner's display) are left out.
    assert len(saved["display"]["trial_start"]) == (0 if compact else 3)

    resumed = _oracle(str(tmp_path), True)
    resumed.reload()
    assert resumed._tried_so_far == oracle._tried_so_far
    assert dict(resumed._id_to_hash) == dict(oracle._id_to_hash)

    def runs(o):
        return {k: v for k, v in o._run_times.items() if v}

    assert runs(resumed) == runs(oracle) == dict.fromkeys(["00", "01", "02"], 1)
    assert resumed._retry_queue == ["03"]
    # The resumed oracle proposes what the first one would have.
    for o in (oracle, resumed):
        o.ongoing_trials.clear()
        o._retry_queue.clear()
    assert (
        resumed.create_trial("x").hyperparameters.values
        == oracle.create_trial("x").hyperparameters.values
    )


def test_failure_streak_stops_the_search(tmp_path):
    oracle = _oracle(str(tmp_path), True)
    oracle.max_consecutive_failed_trials = 2
    statuses = ["FAILED", "COMPLETED", "FAILED"]
    for status in statuses:
        trial = oracle.create_trial("w")
        if status == "COMPLETED":
            oracle.update_trial(trial.trial_id, {"score": 1.0})
        trial.status = status
        oracle.end_trial(trial)
    trial = oracle.create_trial("w")
    trial.status = "FAILED"
    trial.message = "boom"
    with pytest.raises(RuntimeError, match="limit of 2.\nboom"):
        oracle.end_trial(trial)
