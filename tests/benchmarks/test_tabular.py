import functools
import itertools

import keras_tuner
import numpy as np
import pytest

from keras_nas.benchmarks.tabular import TabularBenchmark, run_oracle_on_table
from keras_nas.tuners import AgingEvolutionOracle, MonteCarloTreeSearchOracle

NAMES = ("a", "b", "c")
VALUES = ("w", "x", "y", "z")


def synthetic_table(direction="max"):
    hp = keras_tuner.HyperParameters()
    for name in NAMES:
        hp.Choice(name, list(VALUES))
    table = {}
    for combo in itertools.product(VALUES, repeat=len(NAMES)):
        score = sum(VALUES.index(v) * (i + 1) for i, v in enumerate(combo))
        table["|".join(combo)] = float(score)
    return TabularBenchmark(
        table,
        hp,
        lambda values: "|".join(values[n] for n in NAMES),
        metric="score",
        direction=direction,
        name="synthetic",
    )


def test_query_and_optimum():
    table = synthetic_table()
    assert len(table) == 64
    assert table.optimum == 18.0
    assert table.query({"a": "z", "b": "z", "c": "z"}) == 18.0
    assert synthetic_table("min").optimum == 0.0
    with pytest.raises(ValueError, match="not in the table"):
        table.query({"a": "q", "b": "z", "c": "z"})


def test_random_search_curves():
    table = synthetic_table()
    run = run_oracle_on_table(
        keras_tuner.oracles.RandomSearchOracle, table, budget=20, seeds=3
    )
    assert run.curves.shape == (3, 20)
    assert np.all(np.diff(run.curves, axis=1) >= 0)
    assert all(n >= 20 for n in run.num_trials)
    assert len(run.decision_times()) == sum(run.num_trials)
    assert np.all(run.decision_times() > 0)


def test_exhaustive_budget_reaches_the_optimum():
    table = synthetic_table()
    factory = functools.partial(AgingEvolutionOracle, population_size=4)
    run = run_oracle_on_table(factory, table, budget=64, seeds=[1, 2])
    assert run.share_reaching_optimum() == 1.0
    # 64 unique queries = the whole table, no trial wasted on duplicates.
    assert run.num_trials == [64, 64]
    assert np.all(run.best_at(64) == 18.0)


def test_minimize_direction():
    table = synthetic_table("min")
    run = run_oracle_on_table(
        MonteCarloTreeSearchOracle, table, budget=30, seeds=[1]
    )
    assert np.all(np.diff(run.curves, axis=1) <= 0)
    assert run.best_at(30)[0] <= 4.0


def test_parallel_jobs_match_serial_and_accept_lambdas():
    table = synthetic_table()

    def factory(**kwargs):
        return AgingEvolutionOracle(population_size=5, **kwargs)

    serial = run_oracle_on_table(factory, table, 15, [3, 4, 5])
    parallel = run_oracle_on_table(factory, table, 15, [3, 4, 5], jobs=2)
    np.testing.assert_array_equal(serial.curves, parallel.curves)


def test_nas_bench_201_csv(tmp_path):
    from keras_nas.spaces import nb201_hyperparameters_from_genotype

    archs = {
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|"
        "+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|": 94.36,
        "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|": 10.0,
    }
    path = tmp_path / "nb201.csv"
    lines = ["arch,test_accuracy"] + [f"{a},{v}" for a, v in archs.items()]
    path.write_text("\n".join(lines) + "\n")
    table = TabularBenchmark.from_nas_bench_201_csv(str(path))
    assert table.optimum == 94.36
    names = [hp.name for hp in table.hyperparameters.space]
    assert names == [
        "edge_1_0",
        "edge_2_0",
        "edge_2_1",
        "edge_3_0",
        "edge_3_1",
        "edge_3_2",
    ]
    for arch, acc in archs.items():
        assert table.query(nb201_hyperparameters_from_genotype(arch)) == acc
    with pytest.raises(ValueError, match="test_accuracy2"):
        TabularBenchmark.from_nas_bench_201_csv(
            str(path), metric="test_accuracy2"
        )
    with pytest.raises(ValueError, match="path"):
        TabularBenchmark.from_nas_bench_201_csv(str(tmp_path / "none.csv"))


def test_invalid_arguments():
    table = synthetic_table()
    with pytest.raises(ValueError, match="budget"):
        run_oracle_on_table(AgingEvolutionOracle, table, 0, 1)
    with pytest.raises(ValueError, match="seeds"):
        run_oracle_on_table(AgingEvolutionOracle, table, 5, [0, 1])
