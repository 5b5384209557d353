"""The search oracles are siblings: the same shared arguments, in
keras-tuner's order, checked the same way; each tuner takes exactly its
oracle's arguments and passes every one of them on."""

import inspect

import keras_tuner
import pytest

from keras_nas.tuners import (
    AgingEvolution,
    AgingEvolutionOracle,
    ArchitectureBayesianOptimization,
    ArchitectureBayesianOptimizationOracle,
    Bananas,
    BananasOracle,
    LocalSearch,
    LocalSearchOracle,
    MonteCarloTreeSearch,
    MonteCarloTreeSearchOracle,
    Reinforce,
    ReinforceOracle,
)

TUNERS = {
    AgingEvolutionOracle: AgingEvolution,
    ReinforceOracle: Reinforce,
    MonteCarloTreeSearchOracle: MonteCarloTreeSearch,
    ArchitectureBayesianOptimizationOracle: ArchitectureBayesianOptimization,
    BananasOracle: Bananas,
    LocalSearchOracle: LocalSearch,
}
ORACLES = list(TUNERS)


def _parameters(cls):
    return inspect.signature(cls).parameters


@pytest.mark.parametrize("oracle_cls", ORACLES)
def test_oracles_take_keras_tuners_arguments_in_its_order(oracle_cls):
    # As `keras_tuner.oracles.BayesianOptimizationOracle`: objective,
    # max_trials, the algorithm's own arguments, then seed and the rest.
    reference = _parameters(keras_tuner.oracles.BayesianOptimizationOracle)
    head, tail = list(reference)[:2], list(reference)[-6:]
    names = list(_parameters(oracle_cls))
    assert names[:2] == head and names[-6:] == tail
    for name in tail:
        assert _parameters(oracle_cls)[name].default == reference[name].default


@pytest.mark.parametrize("oracle_cls", ORACLES)
def test_tuner_takes_its_oracles_arguments(oracle_cls):
    oracle = _parameters(oracle_cls)
    tuner = _parameters(TUNERS[oracle_cls])
    names = list(oracle)
    # keras-tuner's tuners list `tune_new_entries` first.
    i = names.index("allow_new_entries")
    names[i : i + 2] = ["tune_new_entries", "allow_new_entries"]
    assert list(tuner) == ["hypermodel", *names, "estimator", "kwargs"]
    for name in names:
        assert tuner[name].default == oracle[name].default, name


@pytest.mark.parametrize("oracle_cls", ORACLES)
def test_tuner_passes_every_argument_to_its_oracle(oracle_cls, tmp_path):
    hp = keras_tuner.HyperParameters()
    hp.Choice("x", [1, 2])
    tuner = TUNERS[oracle_cls](
        hypermodel=lambda hp: None,
        objective="val_loss",
        max_trials=7,
        seed=0,
        hyperparameters=hp,
        tune_new_entries=False,
        allow_new_entries=False,
        max_retries_per_trial=2,
        max_consecutive_failed_trials=5,
        directory=str(tmp_path),
    )
    oracle = tuner.oracle
    assert isinstance(oracle, oracle_cls)
    assert oracle.objective.name == "val_loss"
    assert (oracle.max_trials, oracle.seed) == (7, 0)
    assert oracle.hyperparameters.get("x") == 1
    assert not oracle.tune_new_entries and not oracle.allow_new_entries
    assert oracle.max_retries_per_trial == 2
    assert oracle.max_consecutive_failed_trials == 5


@pytest.mark.parametrize("oracle_cls", ORACLES)
@pytest.mark.parametrize(
    "kwargs, received",
    [
        ({"max_trials": 0}, "max_trials=0"),
        ({"max_trials": 2.0}, "max_trials=2.0"),
        ({"objective": 42}, "objective=42"),
        ({"seed": -1}, "seed=-1"),
        ({"seed": "x"}, "seed='x'"),
    ],
)
def test_shared_arguments_are_checked_alike(oracle_cls, kwargs, received):
    with pytest.raises(ValueError, match=f"Received: {received}$"):
        oracle_cls(**{"objective": "val_accuracy", **kwargs})
