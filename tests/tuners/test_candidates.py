"""Exact acquisition maximisation on small finite spaces (`_candidates`)."""

import functools
import json

import numpy as np
from _oracle_testing import (
    choice_space,
    conditional_space,
    drive,
    make_oracle,
    mixed_space,
)

from keras_nas.tuners import _base, _candidates
from keras_nas.tuners.bananas import BananasOracle
from keras_nas.tuners.bayesian import ArchitectureBayesianOptimizationOracle

FAST = {
    "num_initial_trials": 4,
    "num_random_candidates": 3,
    "exhaustive_limit": _candidates.EXHAUSTIVE_LIMIT,
}


def _key(values):
    return json.dumps(values, sort_keys=True)


def ops_score(v):
    return sum("abcd".index(v[k]) for k in v if k.startswith("op"))


def test_enumeration_of_a_conditional_space(tmp_path):
    oracle = make_oracle(
        ArchitectureBayesianOptimizationOracle,
        tmp_path,
        space=conditional_space(),
    )
    space = _candidates.SpaceEnumeration(oracle)
    # linear (1) + mlp (3 layers x 2 units) + cnn (2 kernels), x dropout.
    assert space.finite and len(space.points) == 18
    assert len({_key(v) for v in space.points}) == 18
    for v in space.points:
        assert ("layers" in v) == (v["model"] == "mlp")
        assert ("kernel" in v) == (v["model"] == "cnn")
    tried = set(space.hashes[:5])
    assert list(space.unseen(tried)) == list(range(5, 18))
    # Too many points, or a continuous range: not enumerated.
    assert not _candidates.SpaceEnumeration(oracle, limit=17).finite
    assert not _candidates.SpaceEnumeration(oracle, limit=0).finite
    mixed = make_oracle(BananasOracle, tmp_path, "m", space=mixed_space())
    assert not _candidates.SpaceEnumeration(mixed).finite


def _bo(tmp_path, project, **kwargs):
    return make_oracle(
        functools.partial(
            ArchitectureBayesianOptimizationOracle, **{**FAST, **kwargs}
        ),
        tmp_path,
        project,
        space=choice_space(4),
        seed=3,
        max_trials=50,
    )


def test_exhaustive_proposal_maximises_over_every_unseen_point(tmp_path):
    oracle = _bo(tmp_path, "on")
    drive(oracle, ops_score, 6)
    origins = [oracle._lineage[t]["origin"] for t in oracle.start_order]
    assert origins == ["random"] * 4 + ["exhaustive"] * 2
    values, x, keys = oracle._exhaustive_candidates()
    assert len(values) == len(x) == 4**4 - 6
    assert not any(_base.is_duplicate(oracle, v) for v in values)
    # Any acquisition: the proposal is its argmax over all unseen points.
    w = np.random.default_rng(0).normal(size=x.shape[1])
    sizes = []

    def score(batch, rows, seed, observed, fresh):
        sizes.append(len(rows))
        return batch.x[rows] @ w

    oracle._score = score
    trial = oracle.create_trial("tuner0")
    assert sizes == [len(values)]
    assert trial.hyperparameters.values == values[int(np.argmax(x @ w))]
    # exhaustive_limit=0 (the default): mutations and random points.
    off = _bo(tmp_path, "off", exhaustive_limit=0)
    drive(off, ops_score, 6)
    assert off._exhaustive_candidates() is None
    assert {off._lineage[t]["origin"] for t in off.start_order[4:]} <= {
        "mutation",
        "candidate",
    }


def test_exhaustive_search_finds_the_optimum_of_a_small_space(tmp_path):
    for cls in (ArchitectureBayesianOptimizationOracle, BananasOracle):
        kwargs = dict(FAST, num_networks=2) if cls is BananasOracle else FAST
        oracle = make_oracle(
            functools.partial(cls, **kwargs),
            tmp_path,
            cls.__name__,
            space=choice_space(4),
            seed=1,
            max_trials=40,
        )
        seen = drive(oracle, ops_score, 20)
        assert len({_key(v) for v in seen}) == 20
        assert max(map(ops_score, seen)) == 12
