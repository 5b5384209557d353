import functools
import json

import numpy as np
import pytest
from _oracle_testing import (
    OBJ,
    STATUS,
    conditional_space,
    drive,
    make_oracle,
    mixed_score,
    mixed_space,
    small_space,
    tiny_digits_search,
)

from keras_nas.tuners import _base
from keras_nas.tuners.evolution import AgingEvolution, AgingEvolutionOracle

make = functools.partial(make_oracle, AgingEvolutionOracle, max_trials=200)


def test_same_seed_same_trials(tmp_path):
    a = drive(make(tmp_path, "a", seed=3), mixed_score, 40)
    b = drive(make(tmp_path, "b", seed=3), mixed_score, 40)
    c = drive(make(tmp_path, "c", seed=4), mixed_score, 40)
    assert a == b
    assert a != c


def test_no_duplicates_and_exhaustion(tmp_path):
    oracle = make(
        tmp_path, space=small_space(), population_size=4, sample_size=2, seed=1
    )
    seen = drive(oracle, lambda v: v["x"] + v["z"], 40)
    keys = [json.dumps(v, sort_keys=True) for v in seen]
    assert len(keys) == len(set(keys)) == 18  # the whole space, then stop


def test_mutation_changes_one_hyperparameter(tmp_path):
    oracle = make(tmp_path, population_size=5, sample_size=3, seed=2)
    drive(oracle, mixed_score, 30)
    mutated = 0
    for trial_id, origin in oracle._lineage.items():
        if origin["origin"] != "mutation":
            continue
        child = oracle.trials[trial_id].hyperparameters.values
        parent = oracle.trials[origin["parents"][0]].hyperparameters.values
        diff = [k for k in child if child[k] != parent[k]]
        # One step; larger only when the whole neighbourhood was tried.
        assert len(diff) >= 1
        mutated += len(diff) == 1
    assert mutated >= 20


def test_population_is_latest_completed(tmp_path):
    oracle = make(tmp_path, population_size=6, sample_size=6, seed=5)
    drive(oracle, mixed_score, 25)
    assert oracle.population == oracle.end_order[-6:]


def test_evolution_improves_over_initial_population(tmp_path):
    oracle = make(tmp_path, population_size=10, sample_size=10, seed=7)
    drive(oracle, mixed_score, 80)
    scores = [oracle.trials[t].score for t in oracle.end_order]
    assert max(scores[40:]) > max(scores[:10])


def test_conditional_space_only_active_values(tmp_path):
    space = conditional_space()
    oracle = make(tmp_path, space=space, population_size=4, seed=1)
    seen = drive(oracle, lambda v: len(v) + v["dropout"], 30)
    for v in seen:
        assert ("layers" in v) == (v["model"] == "mlp")
        assert ("units" in v) == (v["model"] == "mlp")
        assert ("kernel" in v) == (v["model"] == "cnn")
    models = {v["model"] for v in seen}
    assert models == {"linear", "mlp", "cnn"}
    keys = [json.dumps(v, sort_keys=True) for v in seen]
    assert len(keys) == len(set(keys))


def test_reload_continues_identically(tmp_path):
    first = make(tmp_path, "p", seed=11, population_size=6, sample_size=4)
    drive(first, mixed_score, 15)
    # A second process opening the same project (`overwrite=False`).
    second = make(tmp_path, "p", seed=999, population_size=6, sample_size=4)
    second.reload()
    assert second._lineage == first._lineage
    assert second.population == first.population
    json.dumps(second.get_state())  # the whole state is JSON
    more_first = drive(first, mixed_score, 15)
    more_second = drive(second, mixed_score, 15)
    assert more_first == more_second


def test_failed_trials_are_tolerated(tmp_path):
    def flaky(v):
        if v["op0"] == "a":
            raise RuntimeError("boom")
        return mixed_score(v)

    oracle = make(
        tmp_path,
        seed=1,
        population_size=5,
        sample_size=5,
        max_consecutive_failed_trials=50,
    )
    seen = drive(oracle, flaky, 40)
    assert len(seen) == 40
    statuses = [oracle.trials[t].status for t in oracle.end_order]
    assert STATUS.FAILED in statuses
    for trial_id in oracle.population:
        assert oracle.trials[trial_id].status == STATUS.COMPLETED


def test_nan_score_is_not_in_population(tmp_path):
    oracle = make(
        tmp_path,
        space=small_space(),
        seed=2,
        population_size=3,
        sample_size=3,
        max_consecutive_failed_trials=50,
    )
    drive(oracle, lambda v: float("nan") if v["z"] else v["x"], 12)
    for trial_id in oracle.population:
        assert not oracle.trials[trial_id].hyperparameters.values["z"]


def test_asynchronous_workers_never_idle(tmp_path):
    oracle = make(tmp_path, seed=1, population_size=3, sample_size=2)
    running = [oracle.create_trial(f"w{i}") for i in range(5)]
    assert all(t.status == STATUS.RUNNING for t in running)
    for trial in running:
        oracle.update_trial(trial.trial_id, {"score": 1.0})
        trial.status = STATUS.COMPLETED
        oracle.end_trial(trial)
    assert oracle.create_trial("w0").status == STATUS.RUNNING


def test_invalid_arguments():
    with pytest.raises(ValueError, match="sample_size"):
        AgingEvolutionOracle(population_size=3, sample_size=5)
    with pytest.raises(ValueError, match="crossover_rate"):
        AgingEvolutionOracle(crossover_rate=2.0)


def test_crossover(tmp_path):
    oracle = make(tmp_path, seed=4, crossover_rate=1.0, population_size=6)
    seen = drive(oracle, mixed_score, 30)
    assert any(o["origin"] == "crossover" for o in oracle._lineage.values())
    keys = [json.dumps(v, sort_keys=True) for v in seen]
    assert len(keys) == len(set(keys))


def test_rng_json_round_trip():
    rng = _base.make_rng(5)
    rng.random()
    copy = _base.rng_from_json(json.loads(json.dumps(_base.rng_to_json(rng))))
    assert np.array_equal(rng.random(4), copy.random(4))


class _TableEstimator:
    def estimate(self, tuner, trial, *args, **kwargs):
        return {"score": mixed_score(trial.hyperparameters.values)}


def test_tuner_with_estimator(tmp_path):
    tuner = AgingEvolution(
        hypermodel=None,
        objective=OBJ,
        hyperparameters=mixed_space(),
        max_trials=12,
        population_size=4,
        sample_size=2,
        seed=1,
        estimator=_TableEstimator(),
        directory=str(tmp_path),
        project_name="est",
    )
    tuner.search(verbose=0)
    assert len(tuner.oracle.trials) == 12
    best = tuner.oracle.get_best_trials()[0]
    assert best.score == max(t.score for t in tuner.oracle.trials.values())


@pytest.mark.usefixtures("eager_functions")  # 1 epoch: tracing costs more
def test_tiny_digits_search(tmp_path, digits):
    tuner = tiny_digits_search(
        AgingEvolution, tmp_path, digits, population_size=2, sample_size=2
    )
    assert len(tuner.oracle.trials) == 3
    assert tuner.get_best_models(1)[0].output_shape == (None, 10)
    # overwrite=False: the project is reloaded, nothing re-run.
    again = tiny_digits_search(AgingEvolution, tmp_path, digits)
    assert len(again.oracle.trials) == 3
