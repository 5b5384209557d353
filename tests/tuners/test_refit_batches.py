"""Batches of proposals between surrogate refits (`keras_nas.tuners._refit`).

With trials running on other workers, BO and BANANAS fit their predictor
once per round of the running trials and draw the proposals in between from
that fit; with none running every proposal refits (the sequential method).
"""

import functools
import json

import pytest
from _oracle_testing import STATUS, choice_space, drive, make_oracle

from keras_nas.tuners import _refit
from keras_nas.tuners.bananas import BananasOracle
from keras_nas.tuners.bayesian import ArchitectureBayesianOptimizationOracle

FAST = {"num_initial_trials": 5, "num_random_candidates": 5}
ORACLES = {
    "bo": functools.partial(ArchitectureBayesianOptimizationOracle, **FAST),
    "thompson": functools.partial(
        ArchitectureBayesianOptimizationOracle, batch="thompson", **FAST
    ),
    "bananas": functools.partial(BananasOracle, num_networks=2, **FAST),
}


def ops_score(v):
    return sum("abcd".index(v[k]) for k in v if k.startswith("op"))


def counted(name, tmp_path, project, seed=1):
    oracle = make_oracle(
        ORACLES[name], tmp_path, project, space=choice_space(5), seed=seed
    )
    oracle.fits = 0
    fit = oracle._fit_surrogate

    def counting_fit(*args):
        oracle.fits += 1
        return fit(*args)

    oracle._fit_surrogate = counting_fit
    return oracle


def end(oracle, trial):
    oracle.update_trial(
        trial.trial_id, {"score": ops_score(trial.hyperparameters.values)}
    )
    trial.status = STATUS.COMPLETED
    oracle.end_trial(trial)


def keys(trials):
    return [
        json.dumps(t.hyperparameters.values, sort_keys=True) for t in trials
    ]


@pytest.mark.parametrize("name", list(ORACLES))
def test_one_fit_per_round_of_running_trials(name, tmp_path):
    oracle = counted(name, tmp_path, "p")
    seen = drive(oracle, ops_score, 8)
    assert oracle.fits == 3  # No trial running: every model proposal.
    running = [oracle.create_trial(f"w{i}") for i in range(4)]
    assert all(t.status == STATUS.RUNNING for t in running)
    assert oracle.fits == 4  # One fit for the 4 proposals...
    tried = {json.dumps(v, sort_keys=True) for v in seen}
    assert len(set(keys(running)) - tried) == 4  # ...all different, new.
    origins = [oracle._lineage[t.trial_id]["origin"] for t in running]
    assert "random" not in origins
    end(oracle, running[0])  # 1 new result, 3 running: not yet due.
    running.append(oracle.create_trial("w4"))
    assert oracle.fits == 4
    for trial in running[1:4]:
        end(oracle, trial)  # 4 new results, 1 running: due.
    running.append(oracle.create_trial("w5"))
    assert oracle.fits == 5
    assert len(set(keys(running))) == 6


@pytest.mark.parametrize("name", list(ORACLES))
def test_reload_inside_a_batch_continues_identically(name, tmp_path):
    first = counted(name, tmp_path, "p", seed=3)
    drive(first, ops_score, 8)
    running = [first.create_trial(f"w{i}") for i in range(3)]
    end(first, running[0])
    second = counted(name, tmp_path, "p", seed=999)
    second.reload()  # The state saved by `end_trial`.
    # keras-tuner queues the running trials for a retry on reload; here
    # they stay with their workers, as in the first oracle.
    second._retry_queue = []
    second.ongoing_trials = {
        w: second.trials[t.trial_id] for w, t in first.ongoing_trials.items()
    }
    json.dumps(second.get_state())
    # The batch was fitted for `w0`, on the 8 trials, none running.
    assert second.get_state()["refit_marks"]["0"]["done"] == 8
    a = [first.create_trial(f"x{i}") for i in range(2)]
    b = [second.create_trial(f"x{i}") for i in range(2)]
    assert keys(a) == keys(b)
    assert second.fits == 1  # The batch's fit, replayed once.


def test_policy_refits_once_per_round():
    policy = _refit.RefitPolicy()
    assert policy.due(0, 0)  # Nothing running: every proposal refits.
    assert not policy.due(0, 3)
    assert not policy.due(30, 31)
    assert policy.due(31, 31)
    assert _refit.RefitPolicy(workers_per_refit=0.5).due(16, 31)
