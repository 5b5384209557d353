"""`seed=0` is a seed for every keras-nas oracle (keras-tuner's `Oracle`
does `seed or random.randint(...)`), and bad seeds are refused."""

import functools

import pytest
from _oracle_testing import drive, make_oracle, mixed_score

from keras_nas.spaces.cell_space import CellSearchSpace
from keras_nas.tuners.darts import Darts, DartsOracle
from keras_nas.tuners.enas import Enas, EnasOracle
from keras_nas.tuners.evolution import AgingEvolutionOracle
from keras_nas.tuners.mcts import MonteCarloTreeSearchOracle
from keras_nas.tuners.reinforce import ReinforceOracle

SEARCHING = [
    AgingEvolutionOracle,
    MonteCarloTreeSearchOracle,
    ReinforceOracle,
    functools.partial(EnasOracle, controller="factorized"),
]


@pytest.mark.parametrize("cls", SEARCHING)
def test_seed_zero_gives_the_same_trials_twice(tmp_path, cls):
    kwargs = dict(seed=0, max_trials=12)
    if cls is AgingEvolutionOracle:
        kwargs["population_size"] = 4
    first = make_oracle(cls, tmp_path, "a", **kwargs)
    second = make_oracle(cls, tmp_path, "b", **kwargs)
    assert first.seed == second.seed == 0
    a = drive(first, mixed_score, 12)
    assert a == drive(second, mixed_score, 12)
    # A different seed gives different trials (the seed is used).
    other = make_oracle(cls, tmp_path, "c", **{**kwargs, "seed": 1})
    assert drive(other, mixed_score, 12) != a
    # The seed survives a reload.
    again = make_oracle(cls, tmp_path, "a", **{**kwargs, "seed": 5})
    again.reload()
    assert again.seed == 0


@pytest.mark.parametrize("cls", [*SEARCHING, DartsOracle])
@pytest.mark.parametrize("seed", ["x", -1, 2**32, 1.5, True])
def test_bad_seed_is_refused(cls, seed):
    with pytest.raises(ValueError, match=r"`seed`.*Received: seed="):
        cls(objective="val_accuracy", seed=seed)


def test_seed_zero_and_none_in_darts_and_enas():
    assert DartsOracle(seed=0).seed == 0
    assert isinstance(DartsOracle(seed=None).seed, int)
    with pytest.raises(ValueError, match="Received: seed='x'"):
        Darts(CellSearchSpace((8, 8, 1), 3), seed="x")
    with pytest.raises(ValueError, match="Received: seed=-3"):
        Enas(seed=-3)
